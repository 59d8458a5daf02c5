"""Smoke test of an installed frozenlake_ift wheel, run from outside the source tree.

``.ci/wheel_smoke.sh`` builds the wheel, installs it into a fresh virtual environment, copies
this file into an empty temporary folder and runs it there with ``python -I`` (isolated: no
script folder, no PYTHONPATH, no user site), so every import comes from the installed wheel.

    python -I wheel_smoke.py EXPECTED.json

EXPECTED.json (written by the shell script from the source tree) lists the public modules
found in the source (``tools/gen_ref_pages.py``), so a module missing from the wheel fails.
Checks, one line each: the package is imported from site-packages; every public module
imports (a module whose import needs an optional extra that is not installed, such as
transformers, is reported and skipped; a missing ``frozenlake_ift`` module fails); the shipped
files (the default sweep spec, py.typed) are in the wheel; ``frozenlake_ift.testing`` imports
(when the source has it); ``frozenlake-ift solve --map 4x4 --json`` runs and reports an exact
success probability; the gymnasium environments are registered (when the source has
``envs.py``). Exits 1 if any check fails.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

CORE = {"gymnasium", "numpy", "torch", "matplotlib", "tqdm"}  # must import: core dependencies
failures: list[str] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"smoke {'ok    ' if ok else 'FAILED'} {name}{': ' + detail if detail else ''}", flush=True)
    if not ok:
        failures.append(name)


def main(expected_path: str) -> int:
    expected = json.loads(Path(expected_path).read_text())
    import frozenlake_ift

    location = Path(frozenlake_ift.__file__).resolve()
    check("installed package", "site-packages" in location.parts, str(location.parent))
    check(
        "version",
        frozenlake_ift.__version__ == expected["version"],
        f"{frozenlake_ift.__version__} (source: {expected['version']})",
    )

    skipped = []
    for name in expected["modules"]:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            top = (err.name or "").split(".")[0]
            if top == "frozenlake_ift" or top in CORE or not top:
                check(f"import {name}", False, f"{type(err).__name__}: {err}")
            else:
                skipped.append(f"{name} (needs {top})")
        except Exception as err:  # any other failure at import is a bug
            check(f"import {name}", False, f"{type(err).__name__}: {err}")
    n_ok = len(expected["modules"]) - len(skipped) - sum(f.startswith("import ") for f in failures)
    check(
        "import public modules",
        not any(f.startswith("import ") for f in failures),
        f"{n_ok} of {len(expected['modules'])} imported"
        + (f"; skipped (optional extra not installed): {', '.join(skipped)}" if skipped else ""),
    )

    package_files = resources.files("frozenlake_ift")
    for rel in expected["data_files"]:
        check(f"shipped file {rel}", package_files.joinpath(rel).is_file())
    if "frozenlake_ift/sweeps/default.json" in [f"frozenlake_ift/{r}" for r in expected["data_files"]]:
        spec = json.loads(package_files.joinpath("sweeps/default.json").read_text())
        check("default sweep spec parses", isinstance(spec, dict) and "grid" in spec, ", ".join(sorted(spec)))

    if expected["has_testing"]:
        try:
            importlib.import_module("frozenlake_ift.testing")
            check("import frozenlake_ift.testing", True)
        except Exception as err:
            check("import frozenlake_ift.testing", False, f"{type(err).__name__}: {err}")

    exe = Path(sys.executable).with_name("frozenlake-ift")
    check("console script installed", exe.is_file(), str(exe))
    done = subprocess.run(
        [str(exe), "solve", "--map", "4x4", "--json"], capture_output=True, text=True, timeout=120, check=False
    )
    try:
        out = json.loads(done.stdout)
        ok = done.returncode == 0 and 0.0 <= float(out["success_probability"]) <= 1.0
        detail = f"success_probability {out['success_probability']:.6f}, iterations {out.get('iterations')}"
    except (ValueError, KeyError, TypeError):
        ok, detail = False, f"exit {done.returncode}: {(done.stderr or done.stdout)[-500:]}"
    check("frozenlake-ift solve --map 4x4 --json", ok, detail)

    if expected["has_envs"]:
        try:
            import gymnasium as gym

            env = gym.make("frozenlake_ift:TwoRoute-v0")
            obs, _ = env.reset(seed=0)
            check('gym.make("frozenlake_ift:TwoRoute-v0")', True, f"reset -> {obs!r}")
            env.close()
        except Exception as err:
            check('gym.make("frozenlake_ift:TwoRoute-v0")', False, f"{type(err).__name__}: {err}")

    print(f"smoke: {'all checks passed' if not failures else 'FAILED: ' + ', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(f"usage: python -I {Path(__file__).name} EXPECTED.json")
    sys.exit(main(sys.argv[1]))
