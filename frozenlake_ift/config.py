"""StudyConfig: every choice the paper leaves open, as one validated, documented dataclass.

Imports nothing heavy (no torch), so the CLI can build its ``--help`` and validate arguments
before torch loads. Names come from the three registries: methods (``frozenlake_ift.methods``), MDP
sources (``env``: ``frozenlake_ift.mdps``) and data rules (``negatives``: ``frozenlake_ift.data_rules``);
``data.DTYPES`` and ``study.OPTIMIZERS`` map the other names below to torch objects.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import MISSING, asdict, dataclass, field, fields

from . import data_rules
from .loss_types import GRPO_LOSS_TYPES
from .mdps import check_env, env_source
from .methods import get_method, method_names, paper_method_names

BASES = ("random", "uniform", "suboptimal")
OPTIMIZER_NAMES = ("adam", "rmsprop", "sgd")
DTYPE_NAMES = ("float32", "float64")
ACTIVATION_NAMES = ("tanh", "relu", "gelu", "sigmoid")
ROUTE_PAIRS = ("auto", "two-route")
CHOSEN = ("route", "sampled")
SCHEDULERS = ("constant", "cosine")
LAKE = "lake"  # the default MDP source: the Frozen Lake of map and slippery
MAX_SEED = 2**63 - 1  # the members' seeds are seed, seed + 1, ..., seed + seeds - 1


def __getattr__(name: str):
    if name == "METHOD_NAMES":  # the paper's four, from the registry (kept for older code)
        return paper_method_names()
    if name == "NEGATIVES":  # every value negatives takes, from the data-rule registry
        return data_rules.rule_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class StudyConfig:
    """Every choice the paper leaves open, with its documented default (README, "Decisions")."""

    env: str = "lake"  # the MDP: lake (map, slippery) | gym:ID | bandit:R1,R2,.. | chain:N[:P] | tokens:V:N | file:PATH
    map: str | tuple[str, ...] = "two-route"  # a make_lake name or the map's rows
    slippery: bool = False
    route_pair: str = "auto"  # "auto": chosen/rejected for any map; "two-route": demand exactly two routes
    gamma: float = 0.95  # discount of value iteration, of the reported value and of PPO's returns
    temperature: float = 0.0  # pi* = softmax(Q* / temperature); 0 = one-hot argmax (ties split evenly)
    base: str = "random"  # theta_0: random | uniform | suboptimal
    hidden: int = 32
    activation: str = "tanh"
    seeds: int = 20  # ensemble size E: members use seeds seed, seed+1, ...
    seed: int = 0
    steps: int = 300  # optimiser steps per method
    optimizer: str = "adam"
    lr: float = 0.01
    scheduler: str = "constant"  # learning-rate schedule: constant | cosine (Hugging Face's, after warmup)
    warmup_ratio: float = 0.0  # fraction of the steps with a linear warmup (HF: ceil(ratio * steps) steps)
    eval_every: int = 10
    methods: tuple[str, ...] = field(default_factory=paper_method_names)  # the paper's four (registry)
    lam: float = 0.2  # IFT temporal residual (Eq. 17)
    prop_gamma: float = 0.95  # IFT relation propagation (Algorithm 1)
    dpo_beta: float = 0.1  # DPO and online DPO
    orpo_beta: float = 0.25
    ipo_beta: float = 0.1
    simpo_beta: float = 2.0
    simpo_margin: float = 0.5  # SimPO's target reward margin gamma (TRL's simpo_gamma)
    chosen: str = "route"  # pair methods, SFT, IFT, truly: "route" (App. B.2) | "sampled" (pairs draws of pi*)
    negatives: str = "fixed"  # the rejected data rule (data_rules): fixed = the env's own (lakes: second-route)
    max_starts: int = 16  # chosen / rejected trajectories from at most this many of rho0's starts (a seeded subset)
    resample_every: int = 10  # negatives="policy": steps between fresh samples
    pairs: int = 8  # sampled trajectories per member (sampled chosen / negatives; online DPO pairs)
    horizon: int = 50  # longest sampled trajectory (steps)
    ppo_episodes: int = 64  # rollouts per member per sample
    ppo_epochs: int = 4  # optimiser steps on each sample (PPO's K epochs, full batch)
    ppo_clip: float = 0.2
    ppo_kl: float = 0.05  # KL penalty coefficient to theta_0 in the reward
    grpo_group: int = 8  # TRL's num_generations
    grpo_beta: float = 0.0  # TRL's default: no reference model, no KL term
    grpo_clip: float = 0.2
    grpo_iterations: int = 1  # TRL's num_iterations: optimiser steps per sample
    # KTO, RLOO and GRPO's averaging (TRL's names; TRL's defaults unless said)
    grpo_loss_type: str = "grpo"  # loss_types.GRPO_LOSS_TYPES; TRL 1.16's default is "dapo"
    grpo_kl_correction: bool = True  # grpo_beta > 0: k3 times the ratio (TRL 1.16's use_bias_correction_kl)
    kto_beta: float = 0.1  # KTO's beta (TRL's KTOConfig default)
    kto_desirable_weight: float = 1.0  # KTO: weight of the desirable (chosen) rows' losses
    kto_undesirable_weight: float = 1.0  # KTO: weight of the undesirable (rejected) rows' losses
    rloo_k: int = 2  # TRL's num_generations: samples per start, >= 2 (leave-one-out baseline)
    rloo_beta: float = 0.05  # KL penalty (summed log-ratio to theta_0) subtracted from each sample's reward
    rloo_clip: float = 0.2  # RLOO's epsilon: clip range of the whole-rollout ratio
    fit_steps: int = 3000  # theta* (and the suboptimal base) fit: Adam steps at most
    fit_lr: float = 0.02
    fit_tol: float = 1e-3  # theta* fit stops when every member's mean KL(pi* || pi_theta) <= fit_tol
    device: str = "auto"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        _check_types(self)
        object.__setattr__(self, "methods", tuple(self.methods))
        if not isinstance(self.map, str):
            object.__setattr__(self, "map", tuple(self.map))
        if not self.methods:
            raise ValueError(f"methods must name at least one registered method: {', '.join(method_names())}")
        for m in self.methods:
            try:
                get_method(m)  # an unknown name lists the registered ones
            except ValueError as exc:
                raise ValueError(f"methods: {exc}") from None
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods must not repeat a name, got {list(self.methods)}")
        check_env(self.env)  # a registered source, its spec's syntax (the MDP is built by the study)
        if env_source(self.env).name != LAKE and (self.map != field_default("map") or self.slippery):
            raise ValueError(
                f"map and slippery describe the lake (env='lake'); env {self.env!r} takes its parameters in "
                f"its spec: leave map and slippery at their defaults"
            )
        data_rules.split_rule(self.negatives)
        choices = {
            "base": (self.base, BASES),
            "optimizer": (self.optimizer, OPTIMIZER_NAMES),
            "dtype": (self.dtype, DTYPE_NAMES),
            "route_pair": (self.route_pair, ROUTE_PAIRS),
            "activation": (self.activation, ACTIVATION_NAMES),
            "chosen": (self.chosen, CHOSEN),
            "scheduler": (self.scheduler, SCHEDULERS),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
        for name in ("lam", "prop_gamma", "warmup_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must lie in (0, 1], got {self.gamma}")
        for name in (
            "seeds",
            "steps",
            "hidden",
            "eval_every",
            "resample_every",
            "pairs",
            "horizon",
            "max_starts",
            "ppo_episodes",
            "ppo_epochs",
            "grpo_iterations",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.grpo_group < 2:
            raise ValueError(f"grpo_group must be >= 2 (advantages are relative to the group), got {self.grpo_group}")
        for name in ("lr", "fit_lr", "dpo_beta", "ipo_beta", "simpo_beta", "fit_tol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in (
            "orpo_beta",
            "temperature",
            "fit_steps",
            "simpo_margin",
            "ppo_clip",
            "ppo_kl",
            "grpo_beta",
            "grpo_clip",
            "seed",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.seed + self.seeds - 1 > MAX_SEED:  # torch seeds generators with 64-bit integers
            raise ValueError(f"seed + seeds - 1 must be at most {MAX_SEED} (2**63 - 1), got seed {self.seed}")
        _check_kto_rloo_grpo(self)
        if not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {self.device!r}")

    @classmethod
    def preset(cls, name: str, **overrides) -> StudyConfig:
        """A named preset (``PRESETS``) with any field overridden: ``StudyConfig.preset("paper", seeds=50)``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["methods"] = list(self.methods)
        d["map"] = self.map if isinstance(self.map, str) else list(self.map)
        return d


# App. B.2: "We keep the similar hyper-parameters as in NLP setting"; the NLP setting (Table 4) is
# RMSprop with a cosine schedule and warmup ratio 0.1. Its LLM learning rate means nothing on a 5x5
# grid; the toy keeps the study's lr 0.01, under which SFT converges with RMSprop + cosine as well
# (README, "The paper preset").
PRESETS: dict[str, dict] = {
    "default": {},
    "paper": {"optimizer": "rmsprop", "scheduler": "cosine", "warmup_ratio": 0.1, "lr": 0.01},
}

_DEFAULTS: dict = {}


def _check_kto_rloo_grpo(config: StudyConfig) -> None:
    """The KTO / RLOO / GRPO-loss-type fields: one clear line naming the value and what is allowed."""
    if config.grpo_loss_type not in GRPO_LOSS_TYPES:
        raise ValueError(f"grpo_loss_type must be one of {list(GRPO_LOSS_TYPES)}, got {config.grpo_loss_type!r}")
    if config.rloo_k < 2:
        raise ValueError(f"rloo_k must be >= 2 (the leave-one-out baseline needs another sample), got {config.rloo_k}")
    if not config.kto_beta > 0:
        raise ValueError(f"kto_beta must be > 0, got {config.kto_beta}")
    for name in ("kto_desirable_weight", "kto_undesirable_weight", "rloo_beta", "rloo_clip"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)}")


def field_default(name: str):
    """The documented default of one StudyConfig field."""
    if not _DEFAULTS:
        _DEFAULTS.update(
            {
                f.name: f.default_factory() if f.default is MISSING and callable(f.default_factory) else f.default
                for f in fields(StudyConfig)
            }
        )
    return _DEFAULTS[name]


def _check_types(config: StudyConfig) -> None:
    """Each field has its default's type (bool is not a number; ints pass as floats; floats are finite)."""
    for f in fields(config):
        value, default = getattr(config, f.name), field_default(f.name)
        if f.name == "map":
            ok = isinstance(value, str) or (
                isinstance(value, (list, tuple)) and value and all(isinstance(r, str) for r in value)
            )
            if not ok:
                raise TypeError(f"map must be a map name or a non-empty list of row strings, got {value!r}")
            continue
        if f.name == "methods":
            if (
                isinstance(value, str)
                or not isinstance(value, (list, tuple))
                or not all(isinstance(m, str) for m in value)
            ):
                raise TypeError(f"methods must be a list or tuple of method names, got {value!r}")
            continue
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):  # numpy integers pass and are stored as int
            ok = isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"
            if ok and type(value) is not int:
                object.__setattr__(config, f.name, int(value))
        elif isinstance(default, float):  # ints and numpy floats pass and are stored as float
            ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"
            if ok and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number, got {value!r}")
            if ok and type(value) is not float:
                object.__setattr__(config, f.name, float(value))
        else:
            ok = isinstance(value, type(default))
        if not ok:
            kind = {"bool": "bool (True or False)", "int": "an int", "float": "a finite float", "str": "a str"}.get(
                type(default).__name__, type(default).__name__
            )
            raise TypeError(f"{f.name} must be {kind} (default {default!r}), got {type(value).__name__} {value!r}")


def coerce_field(name: str, text: str):
    """Parse the text form of one StudyConfig field (``--set name=text``) into its type."""
    if name not in StudyConfig.field_names():
        raise ValueError(f"unknown StudyConfig field {name!r}; allowed: {', '.join(StudyConfig.field_names())}")
    default = field_default(name)
    text = text.strip()
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {text!r}")
            return value
        if name == "methods":
            return tuple(m.strip() for m in text.replace("+", ",").split(",") if m.strip())
        return text
    except ValueError as exc:
        if exc.args and "finite" in str(exc.args[0]):
            raise
        kind = {"bool": "bool: true/false, yes/no or 1/0", "int": "an integer", "float": "a finite number"}.get(
            type(default).__name__, type(default).__name__
        )
        raise ValueError(f"cannot read {text!r} as a value of {name!r} (expects {kind})") from None
