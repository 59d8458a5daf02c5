"""Shared test settings: hypothesis without per-example deadlines (CI machines are slow and shared)."""

import os

import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default",
    deadline=None,
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "60")),
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("default")

# The networks are tiny: one torch thread is fastest, and the default (one per core) oversubscribes
# a shared 2-core CI machine (a 10x slowdown was measured on some sampling calls).
torch.set_num_threads(1)
