"""Rerun the study of a saved results.json here and say how closely it reproduces.

    python tools/reproduce_check.py [figures/results.json] [--twice]

Prints, per method, the largest absolute difference over every curve (every metric, seed and evaluation
step) between the saved run and a fresh run of its config on this machine, the final means of success and
of the pi* MSE before and after, and whether the claims' verdicts and the rankings are the same. With
--twice the fresh run is done twice and compared with itself (bit for bit?). The versions the saved run
recorded are printed beside this machine's: differences are only meaningful between equal versions.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from frozenlake_ift import results
from frozenlake_ift.study import StudyConfig, run_study


def _rerun(saved: dict) -> dict:
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in saved["config"].items()}
    return results.to_dict(run_study(StudyConfig(**cfg)))


def _curve_diff(a: dict, b: dict, method: str) -> float:
    return max(
        float(np.nanmax(np.abs(np.asarray(v, float) - np.asarray(b["curves"][method][k], float))))
        for k, v in a["curves"][method].items()
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="?", default="figures/results.json")
    ap.add_argument("--twice", action="store_true", help="also run it a second time and compare the two fresh runs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    saved = results.load(args.results)
    print(f"saved with {saved.get('versions')}; here {results.versions()}")
    fresh = _rerun(saved)
    if args.twice:
        again = _rerun(saved)
        same = all(_curve_diff(fresh, again, m) == 0 for m in fresh["curves"])
        print(f"two fresh runs bit for bit identical: {same}")
    for m in saved["curves"]:
        s = [saved["summary"][m].get(k, {}).get("final_mean") for k in ("success", "policy_mse_opt")]
        f = [fresh["summary"][m].get(k, {}).get("final_mean") for k in ("success", "policy_mse_opt")]
        rel = abs(f[1] - s[1]) / abs(s[1]) if s[1] else float("nan")
        print(
            f"{m:10s} largest curve difference {_curve_diff(saved, fresh, m):.2g}; success final mean "
            f"{s[0]:.6g} -> {f[0]:.6g}; pi* MSE final mean {s[1]:.6g} -> {f[1]:.6g} ({100 * rel:.2g}%)"
        )
    verdicts = [c["holds"] for c in saved["claims"]] == [c["holds"] for c in fresh["claims"]]
    print(f"claims' verdicts identical: {verdicts}; rankings identical: {saved['ranking'] == fresh['ranking']}")
    print(json.dumps({"claims_same": verdicts, "rankings_same": saved["ranking"] == fresh["ranking"]}))


if __name__ == "__main__":
    main()
