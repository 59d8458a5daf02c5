"""Two processes (DDP over gloo, launched with torchrun on CPU) give the same loss curve as one process with
the same global batch, for SFT and IFT, within 1e-4, without DDP's unused-parameter warning. CI-sized: a tiny
GPT-2, 6 steps (about 30-45 s on 2 cores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "llm_ift_tiny.py"
ARGS = ["--methods", "sft,ift", "--steps", "6", "--global-batch-size", "8", "--n-train", "64", "--no-eval"]


@pytest.mark.skipif(
    not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
    reason="needs torch.distributed with gloo",
)
def test_two_processes_give_the_one_process_loss_curve(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone: torchrun's own rendezvous on a free localhost port (no fixed port to collide on)
    two = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(EXAMPLE),
        *ARGS,
        "--log-json",
        str(tmp_path / "two.json"),
    ]
    one = [sys.executable, str(EXAMPLE), *ARGS, "--log-json", str(tmp_path / "one.json")]
    for cmd in (two, one):
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False)
        assert out.returncode == 0, out.stderr[-3000:]
        assert "find_unused_parameters" not in out.stderr  # DDP's per-step warning (IFTConfig sets it False)
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert set(a) == set(b) == {"sft", "ift"}
    for method in a:
        assert (a[method]["processes"], b[method]["processes"]) == (1, 2)
        assert len(a[method]["curve"]) == len(b[method]["curve"]) == 6
        gap = max(abs(x - y) for x, y in zip(a[method]["curve"], b[method]["curve"], strict=True))
        assert gap <= 1e-4, (method, a[method]["curve"], b[method]["curve"])
        assert a[method]["curve"][-1] < a[method]["curve"][0]  # it trained
