#!/usr/bin/env bash
# The prepared GPU check (issue 13, item 6): on a CUDA machine, in under 5 minutes, run the tests that
# exercise the GPU path, the study benchmark and the batched sweep benchmark, and write their output to
# OUT_DIR (nvidia-smi.txt, tests.txt, bench_study.txt, bench_sweep.txt, bench_sweep.json, summary.txt).
#
#     bash benchmarks/gpu_check.sh OUT_DIR              # fails (exit 2) at once without CUDA
#     bash benchmarks/gpu_check.sh OUT_DIR --allow-cpu  # the same steps on CPU (a dry run of the script)
#
# Each step has its own time limit; a step that fails or times out is recorded in summary.txt and the
# script goes on, then exits 1.
set -uo pipefail
OUT=${1:?usage: benchmarks/gpu_check.sh OUT_DIR [--allow-cpu]}
ALLOW=${2:-}
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    DEV=cuda
elif [ "$ALLOW" = "--allow-cpu" ]; then
    DEV=cpu
    echo "gpu_check: no CUDA device; running the steps on CPU (--allow-cpu): these are not GPU figures" | tee "$OUT/summary.txt"
else
    echo "gpu_check: no CUDA device is available to torch (torch.cuda.is_available() is False); run this on a GPU machine, or pass --allow-cpu for a CPU dry run" >&2
    exit 2
fi
export PYTHONUNBUFFERED=1
status=0
step() {  # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
    local rc=$?
    echo "$name: rc=$rc, $((SECONDS - t0)) s: $*" | tee -a "$OUT/summary.txt"
    [ $rc -eq 0 ] || status=1
}
(nvidia-smi || echo "no nvidia-smi") > "$OUT/nvidia-smi.txt" 2>&1
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')" >> "$OUT/summary.txt" 2>&1
# tests that use device="cuda" when available (skipped on CPU), and the batched engine's equality tests
step tests 90 python -m pytest -q -rs tests/test_batched.py -k "cuda or equals_per_cell_offline"
step bench_study 75 python benchmarks/bench_study.py --device "$DEV" --seeds 32 --steps 100
step bench_sweep 120 python benchmarks/bench_sweep.py --device "$DEV" --workers 1 --maps two-route --set slippery=false --json "$OUT/bench_sweep.json"
exit $status
