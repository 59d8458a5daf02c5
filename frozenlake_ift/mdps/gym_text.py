"""``gym:ID[,key=value...]``: any gymnasium environment whose unwrapped env holds its exact model ``P``.

gymnasium's toy-text environments (FrozenLake-v1, CliffWalking-v1, CliffWalkingSlippery-v1, Taxi-v4)
keep the model as ``env.unwrapped.P[s][a] = [(prob, next_state, reward, terminated), ...]``. From it:

- transitions: the listed successors, a successor listed twice merged (probabilities added, its
  reward the probability-weighted mean: CliffWalkingSlippery's start re-entered by a step (-1) or by
  the cliff (-100) becomes one successor worth -50.5, the same expectation);
- terminal states: every state some transition enters with ``terminated=True`` (absorbing here, with
  no further reward, as the episode ends there; gymnasium's P also lists moves out of them);
- goals: the terminal states entered with a positive reward (Taxi's four drop-offs, FrozenLake's G);
  where no terminal state pays, every terminal state (CliffWalking's end: reaching it is success);
- rho0: the env's ``initial_state_distrib``, else its ``reset`` when that always gives one state;
- a FrozenLake-like env (an unwrapped ``desc`` of S/F/H/G letters) keeps its map, so it is drawn as one.

Values in the spec: true/false, integers, floats, or text: ``gym:FrozenLake-v1,map_name=8x8,is_slippery=false``.
"""

from __future__ import annotations

import numpy as np

from ..mdp import TabularMDP


def parse(arg: str) -> tuple[str, dict]:
    """``ID[,key=value...]`` -> (ID, keyword arguments of gym.make); ValueError naming what is wrong."""
    parts = [p.strip() for p in arg.split(",")]
    env_id, kwargs = parts[0], {}
    if not env_id:
        raise ValueError(
            "gym needs an environment id, e.g. gym:CliffWalking-v1, gym:Taxi-v4 or "
            "gym:FrozenLake-v1,map_name=8x8,is_slippery=false"
        )
    for item in parts[1:]:
        key, eq, text = item.partition("=")
        if not eq or not key.strip().isidentifier():
            raise ValueError(f"gym options are key=value pairs after the id, got {item!r} in 'gym:{arg}'")
        kwargs[key.strip()] = _value(text.strip())
    return env_id, kwargs


def _value(text: str):
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def check(arg: str) -> None:
    """The spec's syntax (the id is looked up only when the MDP is built)."""
    parse(arg)
    return None


def build(arg: str, config=None) -> TabularMDP:
    """The exact TabularMDP of ``gym:ID[,key=value...]`` (see the module docstring)."""
    import warnings

    import gymnasium as gym

    env_id, kwargs = parse(arg)
    try:
        with warnings.catch_warnings():  # gymnasium's deprecation warnings: the error below says it in one line
            warnings.simplefilter("ignore")
            env = gym.make(env_id, **kwargs)
    except gym.error.Error as exc:  # unknown or deprecated id, missing dependency
        raise ValueError(f"gymnasium cannot make {env_id!r}: {exc}") from None
    except TypeError as exc:  # an option the env does not take
        raise ValueError(f"gymnasium's {env_id!r} does not take the options {kwargs}: {exc}") from None
    try:
        return from_env(env.unwrapped, name=f"gym:{arg}")
    finally:
        env.close()


def from_env(env, name: str = "") -> TabularMDP:
    """The TabularMDP of an unwrapped toy-text env (one with ``P``, discrete spaces)."""
    P = getattr(env, "P", None)
    if not isinstance(P, dict) or not P:
        raise ValueError(
            f"{name or type(env).__name__} has no exact model: its unwrapped env has no P dict (gymnasium's "
            f"toy-text envs have one: FrozenLake-v1, CliffWalking-v1, CliffWalkingSlippery-v1, Taxi-v4)"
        )
    S = int(getattr(env.observation_space, "n", len(P)))
    A = int(getattr(env.action_space, "n", 0))
    if S != len(P) or A < 1 or any(len(P[s]) != A for s in range(S)):
        raise ValueError(f"{name}: P must list every state 0..{S - 1} and every action 0..{A - 1}")
    rows: list[list[tuple[int, float, float]]] = []  # per (s, a): (next state, prob, reward)
    entered_done = np.zeros(S, dtype=bool)
    pays = np.zeros(S, dtype=bool)
    for s in range(S):
        for a in range(A):
            acc: dict[int, list[float]] = {}
            for p, t, r, done in P[s][a]:
                p, t, r = float(p), int(t), float(r)
                if not 0 <= t < S or not np.isfinite(p) or not np.isfinite(r) or p < 0:
                    raise ValueError(f"{name}: P[{s}][{a}] holds an invalid entry {(p, t, r, done)}")
                if p == 0:
                    continue
                pr, wr = acc.setdefault(t, [0.0, 0.0])
                acc[t] = [pr + p, wr + p * r]
                if done:
                    entered_done[t] = True
                    pays[t] |= r > 0
            rows.append([(t, pw[0], pw[1] / pw[0]) for t, pw in acc.items()])
    K = max(1, max(len(r) for r in rows))
    ns = np.repeat(np.arange(S, dtype=np.int64), A * K).reshape(S, A, K)
    probs, rewards = np.zeros((S, A, K)), np.zeros((S, A, K))
    for i, row in enumerate(rows):
        for k, (t, p, r) in enumerate(row):
            ns[i // A, i % A, k], probs[i // A, i % A, k], rewards[i // A, i % A, k] = t, p, r
    total = probs.sum(-1, keepdims=True)  # gymnasium's float probabilities, e.g. 3 x 0.333..., renormalised
    probs = probs / np.where(total > 0, total, 1.0)
    terminal = entered_done
    ns[terminal], probs[terminal], rewards[terminal] = np.flatnonzero(terminal)[:, None, None], 0.0, 0.0
    probs[terminal, :, 0] = 1.0
    goal = terminal & pays if (terminal & pays).any() else terminal.copy()
    desc = _desc(env)
    return TabularMDP(
        ns,
        probs,
        (probs * rewards).sum(-1),
        terminal,
        _rho0(env, S, name),
        goal=goal,
        shape=(len(desc), len(desc[0])) if desc else None,
        desc=desc,
        name=name,
        rewards=rewards,
    )


def _desc(env) -> tuple[str, ...] | None:
    desc = getattr(env, "desc", None)
    if desc is None:
        return None
    rows = tuple("".join(c.decode() if isinstance(c, bytes) else str(c) for c in row) for row in np.asarray(desc))
    ok = rows and len({len(r) for r in rows}) == 1 and all(set(r) <= set("SFHG") for r in rows)
    return rows if ok else None


def _rho0(env, S: int, name: str) -> np.ndarray:
    isd = getattr(env, "initial_state_distrib", None)
    if isd is not None:
        rho0 = np.asarray(isd, dtype=np.float64).reshape(-1)
        if rho0.shape == (S,) and rho0.min() >= 0 and rho0.sum() > 0:
            return rho0 / rho0.sum()
    starts = {int(env.reset(seed=seed)[0]) for seed in range(16)}
    if len(starts) != 1:
        raise ValueError(
            f"{name}: the env has no initial_state_distrib and its reset gives several states "
            f"({sorted(starts)[:5]}...), so its exact start distribution is unknown"
        )
    rho0 = np.zeros(S)
    rho0[starts.pop()] = 1.0
    return rho0
