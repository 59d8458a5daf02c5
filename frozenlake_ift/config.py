"""StudyConfig: every choice the paper leaves open, as one validated, documented dataclass.

Imports nothing heavy (no torch), so the CLI can build its ``--help`` and validate arguments
before torch loads. ``study.py`` maps the names below to torch objects.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

METHOD_NAMES = ("sft", "ift", "dpo", "orpo")
BASES = ("random", "uniform", "suboptimal")
OPTIMIZER_NAMES = ("adam", "rmsprop", "sgd")
DTYPE_NAMES = ("float32", "float64")
ACTIVATION_NAMES = ("tanh", "relu", "gelu", "sigmoid")
ROUTE_PAIRS = ("auto", "two-route")


@dataclass(frozen=True)
class StudyConfig:
    """Every choice the paper leaves open, with its documented default (see DESIGN.md and README)."""

    map: str | tuple[str, ...] = "two-route"  # a make_lake name or the map's rows
    slippery: bool = False
    route_pair: str = "auto"  # "auto": chosen/rejected for any map; "two-route": demand exactly two routes
    gamma: float = 0.95  # discount of value iteration and of the reported value
    temperature: float = 0.0  # pi* = softmax(Q* / temperature); 0 = one-hot argmax (ties split evenly)
    base: str = "random"  # theta_0: random | uniform | suboptimal
    hidden: int = 32
    activation: str = "tanh"
    seeds: int = 20  # ensemble size E: members use seeds seed, seed+1, ...
    seed: int = 0
    steps: int = 300
    optimizer: str = "adam"
    lr: float = 0.01
    eval_every: int = 10
    methods: tuple[str, ...] = METHOD_NAMES
    lam: float = 0.2  # IFT temporal residual (Eq. 17)
    prop_gamma: float = 0.95  # IFT relation propagation (Algorithm 1)
    dpo_beta: float = 0.1
    orpo_beta: float = 0.25
    fit_steps: int = 3000  # theta* (and the suboptimal base) fit: Adam steps at most
    fit_lr: float = 0.02
    fit_tol: float = 1e-3  # theta* fit stops when every member's mean KL(pi* || pi_theta) <= fit_tol
    device: str = "auto"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "methods", tuple(self.methods))
        if not isinstance(self.map, str):
            object.__setattr__(self, "map", tuple(self.map))
        bad = [m for m in self.methods if m not in METHOD_NAMES]
        if bad or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {METHOD_NAMES}, got {list(self.methods)}")
        choices = {"base": (self.base, BASES), "optimizer": (self.optimizer, OPTIMIZER_NAMES),
                   "dtype": (self.dtype, DTYPE_NAMES), "route_pair": (self.route_pair, ROUTE_PAIRS),
                   "activation": (self.activation, ACTIVATION_NAMES)}
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}")
        for name, lo, hi in (("lam", 0, 1), ("prop_gamma", 0, 1)):
            if not lo <= getattr(self, name) <= hi:
                raise ValueError(f"{name} must lie in [{lo}, {hi}], got {getattr(self, name)}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must lie in (0, 1], got {self.gamma}")
        for name in ("seeds", "steps", "hidden", "eval_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "fit_lr", "dpo_beta", "fit_tol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("orpo_beta", "temperature", "fit_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["methods"] = list(self.methods)
        d["map"] = self.map if isinstance(self.map, str) else list(self.map)
        return d


def coerce_field(name: str, text: str):
    """Parse the text form of one StudyConfig field (``--set name=text``) into its type."""
    defaults = StudyConfig()
    if name not in StudyConfig.field_names():
        raise ValueError(f"unknown StudyConfig field {name!r}; allowed: {', '.join(StudyConfig.field_names())}")
    default = getattr(defaults, name)
    text = text.strip()
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if name == "methods":
            return tuple(m.strip() for m in text.replace("+", ",").split(",") if m.strip())
        return text
    except ValueError:
        raise ValueError(f"cannot read {text!r} as a value of {name!r} (expects {type(default).__name__})") from None
