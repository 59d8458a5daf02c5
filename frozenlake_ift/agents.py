"""Trained policies as gymnasium agents, and Monte-Carlo evaluation in a vector environment.

    agent = Agent.from_run("runs/<timestamp>", method="ift", member=0, greedy=False)
    ev = evaluate(agent, episodes=2000, seed=0)          # on the run's own map, gymnasium's rules
    print(ev.rate, ev.low, ev.high)                       # success rate and its 99% interval
    print(agent.success_probability(ev.max_episode_steps))  # the exact value it estimates

An ``Agent`` holds one policy table pi(a | s), Shape (S, A), and maps a gymnasium observation
(the state index row * ncol + col, or a batch of them) to an action: the most likely one
(``greedy=True``, lowest index on ties) or one drawn from pi. ``action_probs`` is the policy it
really follows (one-hot rows when greedy), so its exact success probability within the
environment's time limit H is ``solve.success_probability(mdp, agent.action_probs, horizon=H)``.

Intervals for a success rate (a binomial proportion) are Clopper-Pearson by default (exact:
coverage >= the confidence level for every true rate) or Wilson (``method="wilson"``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np

from . import envs, lakes, solve
from .stats import DEFAULT_CONFIDENCE, INTERVAL_METHODS, binomial_interval  # noqa: F401  (re-exported: agents.binomial_interval)

ROW_SUM_TOL = 1e-6  # float32 networks: rows of softmax sum to 1 within about 1e-7


@dataclass(frozen=True, eq=False)
class Agent:
    """A tabular policy acting in a Frozen Lake environment.

    Attributes:
        pi: action probabilities, Shape (S, A), rows on the simplex (renormalised to float64).
        greedy: act by argmax_a pi(a | s) (lowest index on ties) instead of sampling.
        desc: the rows of the map it was trained on (``evaluate`` and ``make_env`` use it), or None.
        slippery: whether that map is slippery.
        name: a label such as "ift[0]".
    """

    pi: np.ndarray
    greedy: bool = True
    desc: tuple[str, ...] | None = None
    slippery: bool = False
    name: str = ""
    _greedy_actions: np.ndarray = field(init=False, repr=False)  # (S,) argmax_a pi(a | s)
    _cum: np.ndarray = field(init=False, repr=False)  # (S, A) inverse-CDF table for sampling

    def __post_init__(self) -> None:
        pi = np.asarray(self.pi, dtype=np.float64)
        if pi.ndim != 2 or pi.shape[0] < 1 or pi.shape[1] < 1:
            raise ValueError(f"pi must have Shape (S, A) with S, A >= 1, got {tuple(pi.shape)}")
        if not np.isfinite(pi).all() or pi.min() < 0:
            raise ValueError("pi must hold finite, non-negative probabilities")
        sums = pi.sum(-1)
        if np.abs(sums - 1).max() > ROW_SUM_TOL:
            s = int(np.abs(sums - 1).argmax())
            raise ValueError(f"each row of pi must sum to 1 within {ROW_SUM_TOL}; row {s} sums to {sums[s]!r}")
        pi = pi / sums[:, None]
        if self.desc is not None:
            desc = lakes.validate_desc(self.desc)
            if len(desc) * len(desc[0]) != pi.shape[0]:
                raise ValueError(f"pi has {pi.shape[0]} states but the map {list(desc)} has {len(desc) * len(desc[0])}")
            object.__setattr__(self, "desc", desc)
        if not isinstance(self.greedy, (bool, np.bool_)):
            raise TypeError(f"greedy must be True or False, got {self.greedy!r}")
        # inverse-CDF table for sampling: action = first a with cum[s, a] > u, u ~ U[0, 1). Entries from the
        # last action with non-zero mass on are set to exactly 1 so a zero-mass action is never drawn.
        cum = np.cumsum(pi, -1)  # (S, A)
        last = pi.shape[1] - 1 - np.argmax(pi[:, ::-1] > 0, axis=-1)  # (S,) last action with mass
        cum[np.arange(pi.shape[1])[None, :] >= last[:, None]] = 1.0
        object.__setattr__(self, "pi", pi)
        object.__setattr__(self, "greedy", bool(self.greedy))
        object.__setattr__(self, "_greedy_actions", pi.argmax(-1))  # (S,)
        object.__setattr__(self, "_cum", cum)

    # ------------------------------------------------------------------ sizes and policy
    @property
    def n_states(self) -> int:
        return int(self.pi.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.pi.shape[1])

    @property
    def action_probs(self) -> np.ndarray:
        """The policy the agent follows, Shape (S, A): one-hot argmax rows when greedy, else pi."""
        return np.eye(self.n_actions)[self._greedy_actions] if self.greedy else self.pi

    def act(self, obs, rng: np.random.Generator | None = None):
        """Action(s) for a gymnasium observation: an int for a scalar state, int64 array for a batch.

        Sampling (greedy=False) draws from ``rng`` (a fresh unseeded generator when None).
        """
        s = np.asarray(obs)
        if not np.issubdtype(s.dtype, np.integer) or (s.size and (s.min() < 0 or s.max() >= self.n_states)):
            raise ValueError(f"observations must be state indices in [0, {self.n_states - 1}], got {obs!r}")
        if self.greedy:
            a = self._greedy_actions[s]
        else:
            rng = np.random.default_rng() if rng is None else rng
            u = rng.random(s.shape)
            a = (self._cum[s] <= u[..., None]).sum(-1)  # first action whose cumulative mass exceeds u
        return int(a) if a.ndim == 0 else a.astype(np.int64)

    __call__ = act

    # ------------------------------------------------------------------ the environment
    def _own_map(self) -> tuple[str, ...]:
        if self.desc is None:
            raise ValueError(f"agent {self.name or '(unnamed)'} has no map (desc=None); give the environment")
        return self.desc

    def env_kwargs(self) -> dict:
        """``gym.make`` keyword arguments of ``Lake-v0`` on the agent's own map and its ``envs.episode_limit``."""
        desc = self._own_map()
        return {"desc": list(desc), "is_slippery": self.slippery, "max_episode_steps": envs.episode_limit(desc)}

    def make_env(self, **kwargs):
        """``gym.make`` of the agent's own map (``Lake-v0``); kwargs (render_mode=, max_episode_steps=) override."""
        import gymnasium as gym

        return gym.make(f"{envs.PACKAGE}:{envs.LAKE_ID}", **{**self.env_kwargs(), **kwargs})

    def mdp(self):
        """The exact MDP of the agent's own map (``lakes.make_lake``)."""
        return lakes.make_lake(list(self._own_map()), slippery=self.slippery)

    def success_probability(self, horizon: int | None = None) -> float:
        """Exact probability of reaching G on its own map within ``horizon`` steps (None: ever)."""
        return solve.success_probability(self.mdp(), self.action_probs, horizon=horizon)

    # ------------------------------------------------------------------ from a saved run
    @classmethod
    def from_run(cls, run_dir: str | os.PathLike, method: str, member: int = 0, greedy: bool = True) -> Agent:
        """The policy of one ensemble member of a saved run (``results.save``: results.json + params.pt).

        method: a trained method of the run ("sft", "ift", ...), or "base" (theta_0) or "star" (theta*).
        Raises ValueError for a folder that is not a run, an unknown method or a member out of range.
        """
        from . import results

        try:
            res = results.load(run_dir)
        except FileNotFoundError:
            raise ValueError(
                f"{str(run_dir)!r} is not a run folder: it has no results.json "
                f"(make one with `frozenlake-ift reproduce --out DIR`)"
            ) from None
        if res["map"].get("desc") is None:
            raise ValueError(
                f"{str(run_dir)!r} is a study of {res['map'].get('name') or 'an MDP'!r}, not of a Frozen Lake map: "
                f"agents play lake maps only (its figures: frozenlake-ift plot)"
            )
        try:
            folder = Path(run_dir) if Path(run_dir).is_dir() else Path(run_dir).parent
            saved = results.load_params(folder)  # refuses a params.pt of another run than results.json's
        except FileNotFoundError:
            raise ValueError(
                f"run folder {str(run_dir)!r} has no params.pt (saved by an older version?); "
                f"rerun `frozenlake-ift reproduce --out DIR`"
            ) from None
        allowed = [*saved.methods, "base", "star"]
        if method not in allowed:
            raise ValueError(f"unknown method {method!r} for run {str(run_dir)!r}; allowed: {', '.join(allowed)}")
        table = saved.policy_table(method)  # (E, S, A)
        E = int(table.shape[0])
        if isinstance(member, bool) or not isinstance(member, (int, np.integer)) or not 0 <= member < E:
            raise ValueError(f"member must be an integer in [0, {E - 1}] (the run has {E} seeds), got {member!r}")
        return cls(
            pi=table[int(member)].detach().cpu().double().numpy(),
            greedy=greedy,
            desc=tuple(res["map"]["desc"]),
            slippery=bool(res["config"]["slippery"]),
            name=f"{method}[{int(member)}]",
        )


# ---------------------------------------------------------------------------- evaluation
@dataclass(frozen=True)
class Evaluation:
    """Monte-Carlo outcome of ``episodes`` rollouts.

    successes: episodes that terminated on a goal tile. truncated: episodes cut by the time limit.
    low, high: the ``confidence`` interval of the success rate (``method``). mean_length: mean
    steps per episode. max_episode_steps: the environment's time limit (None: no TimeLimit).
    """

    episodes: int
    successes: int
    truncated: int
    low: float
    high: float
    confidence: float
    method: str
    mean_length: float
    max_episode_steps: int | None
    seed: int

    @property
    def rate(self) -> float:
        return self.successes / self.episodes

    def contains(self, p: float) -> bool:
        """Whether p lies in [low, high]."""
        return self.low <= p <= self.high


def time_limit(env) -> int | None:
    """The time limit gymnasium's ``TimeLimit`` puts on env (``env.spec.max_episode_steps``; None: none)."""
    spec = getattr(env, "spec", None)
    steps = None if spec is None else spec.max_episode_steps
    return None if steps is None else int(steps)


def evaluate(
    agent: Agent,
    episodes: int = 1000,
    seed: int = 0,
    *,
    env_id: str | None = None,
    num_envs: int = 16,
    confidence: float = DEFAULT_CONFIDENCE,
    method: str = "clopper-pearson",
    **make_kwargs,
) -> Evaluation:
    """Roll the agent out for ``episodes`` episodes in a gymnasium vector environment (SyncVectorEnv).

    env_id: a registered id (``gym.make_vec(env_id, **make_kwargs)``); None: the agent's own map
    (``Lake-v0`` with ``agent.env_kwargs()``: its desc, slippery flag and ``envs.episode_limit``).
    make_kwargs such as ``max_episode_steps=`` go to gymnasium and override those.

    Seeded: sub-environment i is reset with seed + i, sampled actions come from
    ``np.random.default_rng(seed)``, so the same call gives the same result.

    Each of the ``num_envs`` sub-environments runs a fixed quota of whole episodes (surplus episodes
    are not counted): counting the first N episodes to finish would favour short ones.
    """
    import gymnasium as gym
    from gymnasium.vector import AutoresetMode, SyncVectorEnv

    if isinstance(episodes, bool) or not isinstance(episodes, (int, np.integer)) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
        raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
    n = min(int(num_envs), int(episodes))
    if env_id is None:
        env_id = f"{envs.PACKAGE}:{envs.LAKE_ID}"
        make_kwargs = {**agent.env_kwargs(), **make_kwargs}
    vec = cast(
        SyncVectorEnv,
        gym.make_vec(
            env_id,
            num_envs=n,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
            **make_kwargs,
        ),
    )
    try:
        space = vec.single_observation_space
        if getattr(space, "n", None) != agent.n_states:
            raise ValueError(
                f"environment {env_id!r} has observation space {space}, the agent has {agent.n_states} states"
            )
        desc = np.asarray(vec.get_attr("desc")[0])  # (nrow, ncol) bytes, gymnasium's own map
        goal = desc.reshape(-1) == b"G"  # (S,)
        limit = time_limit(vec.envs[0])
        quota = np.full(n, episodes // n)
        quota[: episodes % n] += 1
        finished, successes, truncated, steps = np.zeros(n, np.int64), 0, 0, 0
        length = np.zeros(n, np.int64)
        rng = np.random.default_rng(seed)
        obs, _ = vec.reset(seed=int(seed))
        while (finished < quota).any():
            obs, _, term, trunc, info = vec.step(agent.act(obs, rng))
            length += 1
            end = term | trunc
            if end.any():
                final = np.asarray(obs, dtype=np.int64).copy()  # (n,) the state each episode ended in
                final[end] = [int(info["final_obs"][i]) for i in np.flatnonzero(end)]
                counted = end & (finished < quota)
                successes += int((counted & term & goal[final]).sum())
                truncated += int((counted & trunc & ~term).sum())
                steps += int(length[counted].sum())
                finished += counted
                length[end] = 0
    finally:
        vec.close()
    low, high = binomial_interval(successes, int(episodes), confidence, method)
    return Evaluation(
        episodes=int(episodes),
        successes=successes,
        truncated=truncated,
        low=low,
        high=high,
        confidence=confidence,
        method=method,
        mean_length=steps / episodes,
        max_episode_steps=limit,
        seed=int(seed),
    )
