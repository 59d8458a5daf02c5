"""Hypothesis strategies shared by the test modules: a re-export of ``frozenlake_ift.testing``.

The strategies ship in the wheel (``frozenlake_ift.testing``); this module keeps the test files'
``from strategies import ...`` working.
"""

from frozenlake_ift.testing import (  # noqa: F401  (re-exported for the test modules)
    Inst,
    MaskedBatch,
    instances,
    lake_descs,
    lake_mdps,
    make_inst,
    masked_logps,
    policies,
    tabular_mdps,
)
