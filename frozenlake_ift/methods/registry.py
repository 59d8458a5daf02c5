"""The method registry: the one place a fine-tuning method is named.

A ``Method`` record says how a method trains: its per-member loss, how it builds its batch each
step, whether it needs a frozen reference policy, whether the paper's Frozen-Lake study trained it
(only those methods enter the paper's claims), its Table 1 row, and its plot style. Config
validation, the study, results, plots, the sweep report and the CLI all read their method lists
from here.

Functions may be given as callables or as ``"module:function"`` strings (as gymnasium's
``entry_point``); strings are imported on first use, so this module, and with it ``config`` and
the CLI's argument checks, never imports torch.

    register_method(Method("mine", loss=my_loss))    # a user method: no package edit
    get_method("ift").loss_fn                         # the callable
    method_names()                                    # every registered name, in registration order
    paper_method_names()                              # ("sft", "ift", "dpo", "orpo")
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..metric_table import METRICS
from ..plugins import FunctionRef, Registry, check_ref, resolve

ROUTE_PAIR_BATCH = "frozenlake_ift.methods.batches:pair_batch"  # the default batch builder
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True)
class Method:
    """One fine-tuning method of the study.

    name: lower-case identifier (``[a-z][a-z0-9_]*``), used in configs, files and figures.
    loss: ``loss(params, batch, ctx) -> Tensor (E,)``, one loss per ensemble member (or a
        ``methods.LossOutput`` with extra per-member statistics). ``params`` is the policy
        network's parameter dict (``policy.py``), ``batch`` what ``batch`` built for this step,
        ``ctx`` the study's ``methods.StepContext`` (config, data, reference, generator).
    batch: ``batch(params, ctx, step) -> object``, called every step before the loss, without
        gradient. The default builds the chosen / rejected pair of the study (``ctx.config.
        negatives`` and ``chosen`` say how). On-policy methods sample here.
    needs_reference: the loss reads the frozen reference policy theta_0 (``batch`` then carries
        the reference log-probs).
    in_paper: trained in the paper's Frozen-Lake study (Sec. 5.3): only these enter its claims,
        so registering or running other methods never changes a verdict.
    table1_row: the row of the paper's Table 1 the method trains ("" if none).
    on_policy: the batch is sampled from the current policy.
    fields: the StudyConfig fields the method reads (documentation, and the sweep report).
    color, marker: plot style (matplotlib colour and marker).
    description: one line for ``--help``, docs and figures.
    stats: the names of the statistics the loss logs (``LossOutput.stats``), if you want them checked at
        registration: none may be a metric's name (``metric_table.METRICS``); the study checks again at run time.
    """

    name: str
    loss: FunctionRef
    batch: FunctionRef = ROUTE_PAIR_BATCH
    needs_reference: bool = False
    in_paper: bool = False
    table1_row: str = ""
    on_policy: bool = False
    fields: tuple[str, ...] = ()
    color: str = "#777777"
    marker: str = "o"
    description: str = ""
    stats: tuple[str, ...] = ()
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"method name must match [a-z][a-z0-9_]*, got {self.name!r}")
        for what in ("loss", "batch"):
            check_ref(getattr(self, what), f"method {self.name!r}: {what}")
        object.__setattr__(self, "fields", tuple(self.fields))
        object.__setattr__(self, "stats", tuple(self.stats))
        clash = sorted(set(self.stats) & set(METRICS))
        if clash:
            raise ValueError(
                f"method {self.name!r}: statistics {clash} would overwrite the metrics of that name; rename them"
            )

    @property
    def loss_fn(self) -> Callable:
        """The loss as a callable (imported on first use when given as a string)."""
        if "loss" not in self._cache:
            self._cache["loss"] = resolve(self.loss, f"loss of method {self.name!r}")
        return self._cache["loss"]

    @property
    def batch_fn(self) -> Callable:
        """The batch builder as a callable (imported on first use when given as a string)."""
        if "batch" not in self._cache:
            self._cache["batch"] = resolve(self.batch, f"batch builder of method {self.name!r}")
        return self._cache["batch"]


METHODS: Registry[Method] = Registry("method", Method)  # methods.builtin registers and seals the built-ins


def register_method(method: Method, replace: bool = False) -> Method:
    """Add ``method`` to the registry; returns it. A built-in name is refused; a name a plugin already
    registered needs ``replace=True`` (``plugins.Registry.register``)."""
    return METHODS.register(method, replace)


def unregister_method(name: str) -> None:
    """Remove a registered method (tests and notebooks that register a throw-away method); not a built-in."""
    METHODS.unregister(name)


def get_method(name: str) -> Method:
    """The registered method called ``name``; an unknown name lists the registered ones."""
    return METHODS.get(name)


def method_names() -> tuple[str, ...]:
    """Every registered method name, in registration order (built-ins first)."""
    return METHODS.names()


def paper_method_names() -> tuple[str, ...]:
    """The methods the paper's Frozen-Lake study trained (``in_paper``), in registration order."""
    return tuple(n for n, m in METHODS.records.items() if m.in_paper)
