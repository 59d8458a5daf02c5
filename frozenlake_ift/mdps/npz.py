"""``file:PATH.npz``: an MDP of your own, as numpy arrays in a .npz file.

Arrays (``numpy.savez(PATH, P=..., R=..., terminal=..., rho0=...)``; ``save_npz`` writes them):

    P         (S, A, S)  transition probabilities, each P[s, a] a distribution
    R         (S, A)     expected reward of taking a in s
    terminal  (S,)       absorbing states (they must move to themselves and pay 0)
    rho0      (S,)       start distribution
    goal      (S,)       optional: terminal states that count as success
    state_names (S,), action_names (A,)   optional labels

Files are read with ``allow_pickle=False``. Every problem is a ValueError naming the file and the array.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from ..mdp import TabularMDP

REQUIRED = ("P", "R", "terminal", "rho0")
OPTIONAL = ("goal", "state_names", "action_names")


def check(arg: str) -> None:
    if not arg.strip():
        raise ValueError("file needs a path: file:PATH.npz (arrays P, R, terminal, rho0; see docs)")
    return None


def build(arg: str, config=None) -> TabularMDP:
    """The MDP stored in ``arg`` (a .npz path); see the module docstring."""
    check(arg)
    path = Path(arg)
    if not path.is_file():
        raise ValueError(f"file:{arg}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"file:{arg} is not a readable .npz file of numeric arrays: {exc}") from None
    missing = [k for k in REQUIRED if k not in arrays]
    if missing:
        raise ValueError(
            f"file:{arg} lacks the arrays {missing}; it needs {list(REQUIRED)} (optional {list(OPTIONAL)})"
        )
    unknown = sorted(set(arrays) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ValueError(f"file:{arg} holds unknown arrays {unknown}; allowed: {list(REQUIRED + OPTIONAL)}")
    P = arrays["P"]
    if P.ndim != 3 or P.shape[0] != P.shape[2] or not np.issubdtype(P.dtype, np.number):
        raise ValueError(f"file:{arg}: P must be a numeric array of shape (S, A, S), got {P.dtype} {P.shape}")
    S, A, _ = P.shape
    shapes = {"R": (S, A), "terminal": (S,), "rho0": (S,), "goal": (S,), "state_names": (S,), "action_names": (A,)}
    for k, shape in shapes.items():
        if k in arrays and arrays[k].shape != shape:
            raise ValueError(f"file:{arg}: {k} must have shape {shape} (P is {P.shape}), got {arrays[k].shape}")
    P = P.astype(np.float64)
    if not np.isfinite(P).all() or P.min() < 0:
        raise ValueError(f"file:{arg}: P must hold finite, non-negative probabilities (found NaN, inf or < 0)")
    rows = np.abs(P.sum(-1) - 1.0)
    if rows.max() > 1e-9:
        s, a = np.unravel_index(int(rows.argmax()), rows.shape)
        raise ValueError(f"file:{arg}: P[{s}, {a}] sums to {float(P[s, a].sum())!r}; every P[s, a] must sum to 1")
    try:
        return TabularMDP.from_dense(
            P,
            arrays["R"].astype(np.float64),
            arrays["terminal"].astype(bool),
            arrays["rho0"].astype(np.float64),
            goal=arrays["goal"].astype(bool) if "goal" in arrays else None,
            name=f"file:{os.path.basename(arg)}",
            state_names=tuple(map(str, arrays["state_names"])) if "state_names" in arrays else None,
            action_names=tuple(map(str, arrays["action_names"])) if "action_names" in arrays else None,
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"file:{arg}: {exc}") from None


def save_npz(mdp: TabularMDP, path: str | os.PathLike) -> None:
    """Write ``mdp`` as a .npz file that ``file:PATH`` reads back (dense P: small MDPs)."""
    arrays: dict = {"P": mdp.dense_P(), "R": mdp.R, "terminal": mdp.terminal, "rho0": mdp.rho0, "goal": mdp.goal}
    if mdp.state_names is not None:
        arrays["state_names"] = np.asarray(mdp.state_names)
    if mdp.action_names is not None:
        arrays["action_names"] = np.asarray(mdp.action_names)
    np.savez(path, **arrays)
