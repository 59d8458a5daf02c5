"""Rebuild the README's DPO paragraph from a run's saved files alone (steps.csv, params.pt, results.json).

    frozenlake-ift reproduce --out figures/          # or any run folder
    python examples/explain_dpo.py figures/

Prints, as means over the seeds: the summed log-probs of the chosen and rejected routes under DPO at
step 0 (theta_0) and at the last step, SFT's final chosen log-prob for comparison, and DPO's final
policy at the start tile (which move it prefers). Nothing is recomputed by training.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from frozenlake_ift import results
from frozenlake_ift.actions import ACTION_NAMES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="a run folder (results.json, steps.csv, params.pt)")
    args = ap.parse_args()
    run = Path(args.run)
    res = results.load(run)
    rows = list(csv.DictReader((run / "steps.csv").open()))
    first, last = res["steps"][0], res["steps"][-1]

    def mean(method: str, column: str, step: int) -> float:
        return float(np.mean([float(r[column]) for r in rows if r["method"] == method and int(r["step"]) == step]))

    print(
        f"DPO, summed log-prob of the rejected route: {mean('dpo', 'logps/rejected', first):.1f} under theta_0 -> "
        f"{mean('dpo', 'logps/rejected', last):.1f} at step {last}"
    )
    print(
        f"DPO, summed log-prob of the chosen route:   {mean('dpo', 'logps/chosen', first):.1f} -> "
        f"{mean('dpo', 'logps/chosen', last):.1f}"
    )
    if "sft" in res["curves"]:
        saved = results.load_params(run)
        # the chosen route of the same map, to score SFT's final parameters on it
        from frozenlake_ift.study import StudyConfig, build_data, pair_step_logps

        cfg = StudyConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in res["config"].items()})
        data = build_data(cfg)
        lp = pair_step_logps({k: v.to(data.eye.dtype) for k, v in saved.params("sft").items()}, data, cfg.activation)
        chosen = (lp[:, 0] * data.pair_mask[0]).sum(-1).mean().item()
        print(f"SFT, summed log-prob of the chosen route at step {last}: {chosen:.2f}")
    pi = results.load_params(run).policy_table("dpo").numpy()  # (E, S, A)
    start = "".join(res["map"]["desc"]).index("S")
    probs = pi[:, start].mean(0)
    print("DPO's final policy at S: " + ", ".join(f"{ACTION_NAMES[a]} {p:.2f}" for a, p in enumerate(probs)))
    print(f"DPO's final success probability: {np.mean(res['curves']['dpo']['success'][-1]):.2f}")


if __name__ == "__main__":
    main()
