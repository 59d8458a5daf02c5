#!/usr/bin/env bash
# Build the wheel, install it into a fresh virtual environment and smoke-test it from an empty
# folder outside the source tree (tools/wheel_smoke.py), so that a file missing from the wheel
# (a module, the shipped sweep spec, py.typed, the gymnasium registrations) fails CI.
#   bash .ci/wheel_smoke.sh        # about 1-2 min; needs `build` (pip install build)
# The venv gets torch==2.13.0 (the CPU wheel) first, then the wheel with its dependencies
# (--no-compile: byte-compiling torch's files on install would double the time).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
start=$SECONDS
stamp() { printf 'wheel-smoke %-28s %4ds\n' "$1" $((SECONDS - start)); }

# 1. the wheel, from a copy of the tracked and untracked-but-not-ignored files (no stale build/)
mkdir -p "$work/src" "$work/dist"
git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$work/src/" 2>/dev/null || \
  cp -r "$repo/." "$work/src/"
python -m build --wheel --no-isolation --outdir "$work/dist" "$work/src" > "$work/build.log" 2>&1 \
  || { tail -n 40 "$work/build.log"; exit 1; }
wheel="$(ls "$work"/dist/*.whl)"
stamp "built $(basename "$wheel")"

# 2. what the source tree says the wheel must hold
python - "$work/expected.json" <<'PY'
import json, re, sys
from pathlib import Path
sys.path.insert(0, "tools")
import gen_ref_pages
pkg = Path("frozenlake_ift")
version = re.search(r'^__version__\s*=\s*"([^"]+)"', (pkg / "__init__.py").read_text(), re.M).group(1)
data = sorted(p.relative_to(pkg).as_posix() for p in pkg.rglob("*")
              if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts)
json.dump({"version": version,
           "modules": ["frozenlake_ift"] + [m.name for m in gen_ref_pages.public_modules()],
           "data_files": data,
           "has_testing": (pkg / "testing.py").is_file() or (pkg / "testing" / "__init__.py").is_file(),
           "has_envs": (pkg / "envs.py").is_file()}, open(sys.argv[1], "w"), indent=1)
PY

# 3. a fresh venv: torch (CPU wheel), then the wheel and its dependencies
python -m venv "$work/venv"
vpy="$work/venv/bin/python"
"$vpy" -m pip install -q --no-compile torch==2.13.0 > "$work/pip.log" 2>&1 || { tail -n 40 "$work/pip.log"; exit 1; }
stamp "venv + torch"
"$vpy" -m pip install -q --no-compile "$wheel" >> "$work/pip.log" 2>&1 || { tail -n 40 "$work/pip.log"; exit 1; }
if python -c 'import json,sys; sys.exit(not json.load(open(sys.argv[1]))["has_testing"])' "$work/expected.json"; then
  "$vpy" -m pip install -q --no-compile hypothesis >> "$work/pip.log" 2>&1 || { tail -n 40 "$work/pip.log"; exit 1; }
fi
stamp "wheel installed"

# 4. the smoke test, from an empty folder, isolated from the source tree
mkdir "$work/run"
cp tools/wheel_smoke.py "$work/run/"
(cd "$work/run" && MPLBACKEND=Agg "$vpy" -I wheel_smoke.py "$work/expected.json")
stamp "smoke test done"
