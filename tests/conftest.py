"""Shared test settings: hypothesis without per-example deadlines (CI machines are slow and shared)."""

import gc
import os

import pytest
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


def pytest_collectstart(collector):
    """Move every object made so far (torch, transformers, the test modules) out of the garbage collector's
    reach (``gc.freeze``, as the CLI does before exit): otherwise each collection of the oldest generation walks
    them all, and the imports of collection (nbformat's jsonschema builds a grammar of many small objects) spend
    a third of their time in the collector. Frozen objects are still freed by reference counting."""
    gc.freeze()


def pytest_collection_finish(session):
    gc.freeze()  # the same for what collection made, before the tests run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After a module's last test (its fixtures torn down): collect its garbage, then freeze what is still alive
    (caches, imported modules), so that the next module's collections walk only the objects it makes. On six
    test modules in one process the oldest generation's collections took 1.76 s instead of 3.63 s."""
    yield
    if nextitem is None or nextitem.module is not item.module:
        gc.collect()
        gc.freeze()
