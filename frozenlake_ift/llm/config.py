"""``IFTConfig``: the Trainer's arguments (a ``transformers.TrainingArguments`` subclass) plus the options of
the four methods, and ``loss_hparams``, the one place where per-method defaults are resolved.

transformers is imported only when ``IFTConfig`` is first used (``build_config_class``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .inputs import check_lambda, scheduled_lambda
from .objectives import METHODS, method_spec

IFT_FIELDS = (
    "method",
    "lam",
    "gamma",
    "detach_weights",
    "lam_start",
    "lam_warmup_steps",
    "lam_noise_std",
    "beta",
    "label_smoothing",
    "max_length",
)


def resolve_beta(method: str, beta: float | None) -> float | None:
    """The beta a method trains with: METHODS[method].beta when ``beta`` is None; errors on misuse."""
    spec = method_spec(method)
    if spec.beta is None:
        if beta is not None:
            raise ValueError(
                f"beta={beta} is not used by method {method!r}; only "
                f"{sorted(n for n, s in METHODS.items() if s.beta is not None)} have a beta"
            )
        return None
    beta = spec.beta if beta is None else float(beta)
    if not (math.isfinite(beta) and (beta > 0 if method == "dpo" else beta >= 0)):
        raise ValueError(f"beta for {method!r} must be {'> 0' if method == 'dpo' else '>= 0'}, got {beta}")
    return beta


def loss_hparams(config: Any) -> dict[str, Any]:
    """Keyword arguments of METHODS[config.method].loss, from an IFTConfig (lam excluded: it is scheduled)."""
    method = config.method
    if method == "ift":
        return {"gamma": config.gamma, "detach_weights": config.detach_weights}
    if method == "dpo":
        return {"beta": config.beta, "label_smoothing": config.label_smoothing}
    if method == "orpo":
        return {"beta": config.beta}
    return {}


def check_options(config: Any) -> None:
    """Validate the IFT fields of a config and resolve beta in place (called by IFTConfig.__post_init__)."""
    method_spec(config.method)
    check_lambda(config.lam)
    scheduled_lambda(0, config.lam, config.lam_start, config.lam_warmup_steps, config.lam_noise_std)
    if not 0.0 <= float(config.gamma) <= 1.0:
        raise ValueError(f"gamma (IFT relation-propagation discount) must lie in [0, 1], got {config.gamma}")
    if not 0.0 <= float(config.label_smoothing) <= 0.5:
        raise ValueError(f"label_smoothing must lie in [0, 0.5], got {config.label_smoothing}")
    if config.label_smoothing and config.method != "dpo":
        raise ValueError(
            f"label_smoothing={config.label_smoothing} is used by method 'dpo' only, not {config.method!r}"
        )
    if config.max_length is not None and config.max_length < 2:
        raise ValueError(f"max_length must be >= 2 (or None), got {config.max_length}")
    config.beta = resolve_beta(config.method, config.beta)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def build_config_class() -> type:
    import transformers

    @dataclass
    class IFTConfig(transformers.TrainingArguments):
        """``transformers.TrainingArguments`` plus the options of sft / ift / dpo / orpo.

        Per-method defaults (resolved in ``__post_init__`` by ``resolve_beta`` from ``METHODS``):
        beta = 0.1 for dpo, 0.25 for orpo (as the IFT authors ran them), unused by sft and ift.
        ``remove_unused_columns`` defaults to False: the collator needs the raw text columns.
        """

        method: str = field(default="ift", metadata=_help("sft | ift | dpo | orpo"))
        lam: float = field(default=0.2, metadata=_help("IFT: temporal-residual weight lambda in [0, 1] (Eq. 17)"))
        gamma: float = field(
            default=0.95,
            metadata=_help("IFT: relation-propagation discount in [0, 1] (Algorithm 1); 0 = uniform weights"),
        )
        detach_weights: bool = field(
            default=False, metadata=_help("IFT: cut the relation weights out of the graph (the authors keep them in)")
        )
        lam_start: float | None = field(
            default=None, metadata=_help("IFT: lambda at step 0 of a linear warm-up to lam")
        )
        lam_warmup_steps: int = field(default=0, metadata=_help("IFT: steps of the lambda warm-up"))
        lam_noise_std: float = field(
            default=0.0, metadata=_help("IFT: relative Gaussian noise on lambda, seeded by (seed, step)")
        )
        beta: float | None = field(default=None, metadata=_help("DPO / ORPO: beta; None = 0.1 (dpo) or 0.25 (orpo)"))
        label_smoothing: float = field(default=0.0, metadata=_help("DPO: cDPO flip probability in [0, 0.5]"))
        max_length: int | None = field(default=None, metadata=_help("cut each prompt + answer to this many tokens"))
        remove_unused_columns: bool = field(
            default=False, metadata=_help("keep the dataset's text columns (the collator tokenises them)")
        )

        def __post_init__(self) -> None:
            check_options(self)
            super().__post_init__()

    IFTConfig.__module__, IFTConfig.__qualname__ = "frozenlake_ift.llm", "IFTConfig"
    return IFTConfig
