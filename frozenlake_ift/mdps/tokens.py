"""``tokens:V:N[:TARGET]``: the paper's own MDP over token sequences (Sec. 3).

A state is a prefix of at most N tokens over a vocabulary of V tokens (the empty prefix is the
start); an action is the next token; transitions are deterministic (the prefix grows by the token).
Prefixes of N tokens are terminal. Entering the target sequence pays 1: it is the goal. TARGET is
written as N tokens in [0, V), digits or comma-separated (``tokens:2:3:011``, ``tokens:12:2:3,11``);
the default is 0, 1, 2, ... (mod V). States are numbered by length, then lexicographically: the
empty prefix is 0, the prefix (t_1 .. t_k) is (V^k - 1) / (V - 1) + sum_i t_i V^(k - i) (V > 1).

Since the target is the only way to its own prefixes, Table 1's "truly" estimate rho0^T T_pi^n
[s*_n] equals the product of the policy's token probabilities pi(t_i | t_1 .. t_{i-1}) along the
target: the preference of a language model for the sequence, as the paper writes it.
"""

from __future__ import annotations

import numpy as np

from ..mdp import TabularMDP

EXAMPLE = "tokens:2:3"
MAX_STATES = 2**18  # the study forms dense (E, S, S) matrices: keep S small (``--max-memory`` bounds the study)


def n_prefixes(V: int, N: int) -> int:
    """The number of prefixes of at most N tokens over V tokens: sum_{k=0..N} V^k."""
    return N + 1 if V == 1 else (V ** (N + 1) - 1) // (V - 1)


def parse(arg: str) -> tuple[int, int, tuple[int, ...]]:
    """(V, N, target); ValueError naming what is allowed, including the state-count bound."""
    parts = arg.split(":")
    try:
        V, N = int(parts[0]), int(parts[1])
        ok = len(parts) in (2, 3) and V >= 1 and N >= 1
    except (ValueError, IndexError):
        ok = False
    if not ok:
        raise ValueError(
            f"the token MDP is written tokens:V:N[:TARGET] with a vocabulary size V >= 1 and a length N >= 1 "
            f"(e.g. {EXAMPLE}), got 'tokens:{arg}'"
        )
    S = n_prefixes(V, N) if V < 10**6 and N < 10**6 else MAX_STATES + 1
    if S > MAX_STATES:
        raise ValueError(
            f"tokens:{V}:{N} has {'more than ' + format(MAX_STATES, ',') if S > 10**18 else format(S, ',')} states "
            f"(prefixes of at most {N} tokens over {V}); the limit is {MAX_STATES:,}: use a smaller V or N"
        )
    if len(parts) == 3:
        text = parts[2]
        try:
            target = tuple(int(t) for t in (text.split(",") if "," in text else text))
        except ValueError:
            target = ()
        if len(target) != N or any(not 0 <= t < V for t in target):
            raise ValueError(f"the target of tokens:{V}:{N} must be {N} tokens in [0, {V}), got {text!r}")
    else:
        target = tuple(i % V for i in range(N))
    return V, N, target


def check(arg: str) -> int:
    V, N, _ = parse(arg)
    return n_prefixes(V, N)


def prefix_state(prefix, V: int) -> int:
    """The state of a token prefix (numbering of the module docstring)."""
    k = len(prefix)
    s = n_prefixes(V, k - 1) if k else 0
    for i, t in enumerate(prefix):
        s += int(t) * V ** (k - 1 - i)
    return s


def build(arg: str, config=None) -> TabularMDP:
    """The token MDP of ``tokens:V:N[:TARGET]`` (see the module docstring)."""
    V, N, target = parse(arg)
    S = n_prefixes(V, N)
    first = [n_prefixes(V, k - 1) if k else 0 for k in range(N + 1)]  # state of the first prefix of length k
    length = np.zeros(S, dtype=np.int64)
    for k in range(N + 1):
        length[first[k] : first[k] + V**k] = k
    offset = np.arange(S) - np.asarray(first)[length]  # index among the prefixes of its length
    ns = np.empty((S, V, 1), dtype=np.int64)
    child = np.asarray(first + [S])[np.minimum(length + 1, N + 1)][:, None] + offset[:, None] * V + np.arange(V)
    terminal = length == N
    ns[..., 0] = np.where(terminal[:, None], np.arange(S)[:, None], np.minimum(child, S - 1))
    goal = np.zeros(S, dtype=bool)
    goal[prefix_state(target, V)] = True
    rewards = (goal[ns] & ~terminal[:, None, None]).astype(np.float64)  # (S, V, 1): 1 on entering the target
    names = [""] * S
    for s in range(S):  # prefixes as text, e.g. "<>" for the start, "0 1" for (0, 1)
        k, o, toks = int(length[s]), int(offset[s]), []
        for _ in range(k):
            o, t = divmod(o, V)
            toks.append(t)
        names[s] = " ".join(map(str, toks[::-1])) if k else "<>"
    return TabularMDP(
        ns,
        np.ones((S, V, 1)),
        rewards[..., 0],
        terminal=terminal,
        rho0=(np.arange(S) == 0).astype(np.float64),
        goal=goal,
        name=f"tokens:{arg}",
        rewards=rewards,
        state_names=tuple(names),
        action_names=tuple(f"token {t}" for t in range(V)),
    )
