"""``IFTConfig``: the Trainer's arguments (a ``transformers.TrainingArguments`` subclass) plus the options of
the LLM path's methods, and ``loss_hparams``, the one place where per-method defaults are resolved.

transformers is imported only when ``IFTConfig`` is first used (``build_config_class``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..config import field_default
from ..loss_types import GRPO_LOSS_TYPES
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
    "simpo_gamma",
    "desirable_weight",
    "undesirable_weight",
    "num_generations",
    "max_completion_length",
    "temperature",
    "epsilon",
    "loss_type",
    "num_iterations",
    "use_bias_correction_kl",
)
POSITIVE_BETA = ("dpo", "ipo", "simpo", "kto", "dpo_online")  # beta > 0; the others take beta >= 0
MAX_COMPLETION_LENGTH = 512  # TRL's default, used without an environment to bound the answers


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
    positive = method in POSITIVE_BETA
    if not (math.isfinite(beta) and (beta > 0 if positive else beta >= 0)):
        raise ValueError(f"beta for {method!r} must be {'> 0' if positive else '>= 0'}, got {beta}")
    return beta


def loss_hparams(config: Any) -> dict[str, Any]:
    """Keyword arguments of METHODS[config.method].loss, from an IFTConfig (lam excluded: it is scheduled)."""
    method = config.method
    if method == "ift":
        return {"gamma": config.gamma, "detach_weights": config.detach_weights}
    if method == "dpo":
        return {"beta": config.beta, "label_smoothing": config.label_smoothing}
    if method == "simpo":
        return {"beta": config.beta, "simpo_gamma": config.simpo_gamma}
    if method == "kto":
        return {
            "beta": config.beta,
            "desirable_weight": config.desirable_weight,
            "undesirable_weight": config.undesirable_weight,
        }
    if method == "grpo":
        return {
            "beta": config.beta,
            "epsilon": config.epsilon,
            "loss_type": config.loss_type,
            "max_completion_length": config.max_completion_length,
            "use_bias_correction_kl": config.use_bias_correction_kl,
        }
    if method in ("rloo", "ppo"):
        return {"beta": config.beta, "epsilon": config.epsilon}
    if method in ("orpo", "ipo", "dpo_online"):
        return {"beta": config.beta}
    return {}


def _only_for(config: Any, name: str, default: Any, methods: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value is not None and value != default and config.method not in methods:
        raise ValueError(f"{name}={value} is used by method(s) {list(methods)} only, not {config.method!r}")


def _check_online(config: Any, spec: Any) -> None:
    """Resolve and check the on-policy options in place (None -> the method's default)."""
    for name in ("num_generations", "epsilon", "loss_type"):
        if not spec.online and getattr(config, name) is not None:
            raise ValueError(f"{name}={getattr(config, name)} is used by on-policy methods only, not {config.method!r}")
    if not spec.online:
        if config.max_completion_length is not None or config.num_iterations != 1:
            raise ValueError(
                f"max_completion_length and num_iterations are used by on-policy methods only, not {config.method!r}"
            )
        return
    if config.loss_type is not None and config.method != "grpo":
        raise ValueError(f"loss_type={config.loss_type!r} is used by method 'grpo' only, not {config.method!r}")
    config.num_generations = spec.num_generations if config.num_generations is None else int(config.num_generations)
    least = {"grpo": 2, "rloo": 2, "ppo": 1}.get(config.method, 2)
    if config.method == "dpo_online" and config.num_generations != 2:
        raise ValueError(
            f"dpo_online pairs two completions per prompt: num_generations must be 2, got {config.num_generations}"
        )
    if config.num_generations < least:
        raise ValueError(f"num_generations for {config.method!r} must be >= {least}, got {config.num_generations}")
    if spec.epsilon is not None:
        config.epsilon = spec.epsilon if config.epsilon is None else float(config.epsilon)
        if not (math.isfinite(config.epsilon) and config.epsilon >= 0):
            raise ValueError(f"epsilon (the clip range) must be >= 0, got {config.epsilon}")
    elif config.epsilon is not None:
        raise ValueError(f"epsilon={config.epsilon} is not used by method {config.method!r}")
    if config.method == "grpo":
        config.loss_type = spec.loss_type if config.loss_type is None else config.loss_type
        if config.loss_type not in GRPO_LOSS_TYPES:
            raise ValueError(f"loss_type must be one of {list(GRPO_LOSS_TYPES)}, got {config.loss_type!r}")
    if config.max_completion_length is not None and config.max_completion_length < 1:
        raise ValueError(f"max_completion_length must be >= 1 (or None), got {config.max_completion_length}")
    if not (math.isfinite(config.temperature) and config.temperature > 0):
        raise ValueError(f"temperature must be > 0, got {config.temperature}")
    if config.num_iterations < 1:
        raise ValueError(f"num_iterations must be >= 1, got {config.num_iterations}")


def check_options(config: Any) -> None:
    """Validate the method fields of a config and resolve the per-method defaults in place (IFTConfig.__post_init__)."""
    spec = method_spec(config.method)
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
    _only_for(config, "simpo_gamma", None, ("simpo",))
    _only_for(config, "desirable_weight", 1.0, ("kto",))
    _only_for(config, "undesirable_weight", 1.0, ("kto",))
    if config.method == "simpo":
        config.simpo_gamma = field_default("simpo_margin") if config.simpo_gamma is None else float(config.simpo_gamma)
        if not (math.isfinite(config.simpo_gamma) and config.simpo_gamma >= 0):
            raise ValueError(f"simpo_gamma (SimPO's target margin) must be >= 0, got {config.simpo_gamma}")
    for name in ("desirable_weight", "undesirable_weight"):
        if not (math.isfinite(getattr(config, name)) and getattr(config, name) >= 0):
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")
    config.beta = resolve_beta(config.method, config.beta)
    _check_online(config, spec)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def build_config_class() -> type:
    import transformers

    @dataclass
    class IFTConfig(transformers.TrainingArguments):
        """``transformers.TrainingArguments`` plus the options of the LLM path's methods (``llm.METHODS``).

        Per-method defaults (resolved in ``__post_init__`` from ``METHODS``, i.e. the grid study's
        ``StudyConfig`` defaults): beta = 0.1 for dpo, ipo, kto and dpo_online, 0.25 for orpo, 2.0 for
        simpo, 0.0 for grpo, 0.05 for rloo and ppo (its KL coefficient), unused by sft and ift;
        num_generations 8 (grpo), 2 (rloo, dpo_online), 4 (ppo); epsilon 0.2; loss_type "grpo" (grpo).
        ``remove_unused_columns`` defaults to False: the collator needs the raw text columns.
        ``ddp_find_unused_parameters`` defaults to False: every method's loss reaches every parameter of
        a causal LM, so DDP need not search for unused ones (and warn on every step that it found none).
        """

        method: str = field(default="ift", metadata=_help(" | ".join(METHODS)))
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
        beta: float | None = field(
            default=None, metadata=_help("the method's beta (KL coefficient for grpo, rloo, ppo); None = its default")
        )
        label_smoothing: float = field(default=0.0, metadata=_help("DPO: cDPO flip probability in [0, 0.5]"))
        max_length: int | None = field(default=None, metadata=_help("cut each prompt + answer to this many tokens"))
        simpo_gamma: float | None = field(
            default=None, metadata=_help("SimPO: target reward margin (TRL's simpo_gamma); None = 0.5")
        )
        desirable_weight: float = field(default=1.0, metadata=_help("KTO: weight of the desirable rows' losses"))
        undesirable_weight: float = field(default=1.0, metadata=_help("KTO: weight of the undesirable rows' losses"))
        num_generations: int | None = field(
            default=None, metadata=_help("on-policy: completions sampled per prompt; None = the method's default")
        )
        max_completion_length: int | None = field(
            default=None,
            metadata=_help("on-policy: longest completion in tokens; None = the environment's bound, else 512"),
        )
        temperature: float = field(default=1.0, metadata=_help("on-policy: sampling temperature"))
        epsilon: float | None = field(
            default=None, metadata=_help("grpo, rloo, ppo: clip range of the ratio; None = 0.2")
        )
        loss_type: str | None = field(
            default=None,
            metadata=_help("grpo: how token losses are averaged, one of grpo | bnpo | dapo | dr_grpo; None = grpo"),
        )
        num_iterations: int = field(
            default=1, metadata=_help("on-policy: optimiser steps on each sample (PPO's epochs; TRL's num_iterations)")
        )
        use_bias_correction_kl: bool = field(
            default=field_default("grpo_kl_correction"),
            metadata=_help("grpo, beta > 0: multiply the k3 KL term by the ratio (TRL 1.16's default: True)"),
        )
        remove_unused_columns: bool = field(
            default=False, metadata=_help("keep the dataset's text columns (the collator tokenises them)")
        )
        ddp_find_unused_parameters: bool | None = field(
            default=False, metadata=_help("DDP: look for parameters without gradient (every method reaches all)")
        )

        def __post_init__(self) -> None:
            check_options(self)
            super().__post_init__()

    IFTConfig.__module__, IFTConfig.__qualname__ = "frozenlake_ift.llm", "IFTConfig"
    return IFTConfig
