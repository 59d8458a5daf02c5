"""Trajectory sampling from tabular policies: one policy in numpy, an ensemble of E policies in torch.

The episodes are those of gymnasium's ``FrozenLake-v1`` driven by a policy table pi[s, a]:

Action space      ``Discrete(A)``; on a lake 0 = left, 1 = down, 2 = right, 3 = up (``lakes.ACTION_NAMES``).
Observation       ``Discrete(S)``: the state index, on a lake ``row * ncol + col``.
Starting state    s_0 ~ rho0 (on a lake: the S tile).
Transitions       a_t ~ pi(. | s_t), then s_{t+1} ~ P(. | s_t, a_t) (a slippery lake slips sideways).
Rewards           Frozen Lake's: r_t = 1.0 when s_{t+1} is a goal entered from a non-terminal s_t, else 0
                  (on a lake E[r_t | s_t, a_t] = mdp.R[s_t, a_t]; on other MDPs R is not used).
Termination       s_t terminal (a hole H or the goal G): step t is not taken (mask False, a_t = 0,
                  r_t = 0) and the terminal state repeats in ``states`` up to s_T.
Truncation        after ``horizon`` = T steps.

Arrays (``Episodes``: one policy, numpy; ``Rollouts``: E policies, torch, a leading axis E):

    states   (N, T+1) int64    s_0 .. s_T
    actions  (N, T)   int64    a_t, 0 where the step was not taken
    rewards  (N, T)   float64  r_t
    mask     (N, T)   bool     step t was taken (s_t non-terminal): True on a prefix of each row
    success  (N,)     bool     s_T is a goal state (the episode ended on G within the horizon)

Random numbers: inverse-CDF sampling, one uniform u in [0, 1) per draw, ``n_uniforms(T) = 2T + 1``
per episode, all drawn before the time loop: column 0 picks s_0, column 1 + 2t picks a_t, column
2 + 2t picks s_{t+1} (used or not). Cumulative sums are float64, successors in increasing state
order, and the last outcome of positive probability takes every u above the sum before it, so a
row summing to slightly under 1 (float32 softmax) never yields a zero-probability outcome.
``episodes_from_uniforms`` / ``rollouts_from_uniforms`` take the uniforms (common random numbers)
and, given the same ones, return the same episodes.

Reproducibility: ``sample_episodes`` with a seed is fixed, and episode n uses draws n (2T+1) ..
of the stream, so the first N' of N episodes equal a run with N'. ``sample_rollouts`` draws one
(E, N, 2T+1) float64 tensor from the given generator: the same generator state gives bit-identical
rollouts. On CPU that tensor is filled in stream order, so member e's rollouts depend only on
pi[e], e, N and T (not on the other members' policies; the first E' members of an E-member call
equal an E'-member call). On CUDA a position's value depends on the tensor's size: there
(seed, E, N, T) together fix the rollouts. Gradients are never tracked.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import torch

from .mdp import TabularMDP
from .metrics import dense_transitions

ROW_SUM_TOL = 1e-5  # |sum - 1| allowed in a probability row of the torch inputs (float32 softmax)


def n_uniforms(horizon: int) -> int:
    """Uniforms one episode of ``horizon`` steps consumes: s_0, then (a_t, s_{t+1}) per step."""
    return 2 * horizon + 1


# ------------------------------------------------------------------ validation helpers
def _check_count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_gamma(gamma) -> float:
    if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not 0 <= float(gamma) <= 1:
        raise ValueError(f"gamma must be a discount in [0, 1], got {gamma!r}")
    return float(gamma)


FIELDS = ("states", "actions", "rewards", "mask", "success")  # the arrays of Episodes and Rollouts, in order
_NP_DTYPES = (np.int64, np.int64, np.float64, np.bool_, np.bool_)
_TORCH_DTYPES = (torch.int64, torch.int64, torch.float64, torch.bool, torch.bool)


def _check_record(record, lead: str, array_type, dtypes) -> None:
    """Types, shapes and dtypes of the five arrays of an Episodes / Rollouts (lead "N" / "E, N")."""
    arrays = [getattr(record, f) for f in FIELDS]
    for name, x in zip(FIELDS, arrays, strict=True):
        if not isinstance(x, array_type):
            raise TypeError(f"{name} must be a {array_type.__module__}.{array_type.__name__}, got {type(x).__name__}")
    k = lead.count(",") + 1  # leading axes
    if arrays[0].ndim != k + 1 or arrays[0].shape[-1] < 2:
        raise ValueError(f"states must have shape ({lead}, T+1) with T >= 1, got {tuple(arrays[0].shape)}")
    head, T = tuple(arrays[0].shape[:k]), arrays[0].shape[-1] - 1
    shapes = (head + (T + 1,),) + (head + (T,),) * 3 + (head,)
    for name, x, shape, dtype in zip(FIELDS, arrays, shapes, dtypes, strict=True):
        if tuple(x.shape) != shape:
            raise ValueError(
                f"{name} must have shape {shape} ({lead}{', T' if name != 'success' else ''}), got {tuple(x.shape)}"
            )
        if x.dtype != dtype:
            raise TypeError(
                f"{name} must have dtype {np.dtype(dtype) if array_type is np.ndarray else dtype}, got {x.dtype}"
            )


# ------------------------------------------------------------------ records
@dataclass(frozen=True)
class Episodes:
    """N episodes of one policy (numpy). See the module docstring for the conventions.

    Attributes:
        states: s_0 .. s_T; after termination the terminal state repeats. Shape (N, T+1), int64.
        actions: a_t; 0 where the step was not taken. Shape (N, T), int64.
        rewards: r_t = 1.0 on entering a goal from a non-terminal state, else 0. Shape (N, T), float64.
        mask: step t was taken (s_t non-terminal). Shape (N, T), bool.
        success: s_T is a goal state. Shape (N,), bool.
    """

    states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    mask: np.ndarray
    success: np.ndarray

    def __post_init__(self) -> None:
        _check_record(self, "N", np.ndarray, _NP_DTYPES)

    @property
    def n_episodes(self) -> int:
        return int(self.states.shape[0])

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Steps taken in each episode. Shape (N,), int64."""
        return self.mask.sum(1, dtype=np.int64)

    def returns(self, gamma: float = 1.0) -> np.ndarray:
        """Discounted return sum_t gamma^t r_t of each episode. Shape (N,), float64."""
        return self.rewards @ (_check_gamma(gamma) ** np.arange(self.horizon, dtype=np.float64))  # (N,)


@dataclass(frozen=True)
class Rollouts:
    """N episodes of each of E policies (torch, on the policy's device); conventions as ``Episodes``.

    Attributes:
        states: Shape (E, N, T+1), int64.   actions: Shape (E, N, T), int64.
        rewards: Shape (E, N, T), float64.  mask: Shape (E, N, T), bool.   success: Shape (E, N), bool.
    """

    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    mask: torch.Tensor
    success: torch.Tensor

    def __post_init__(self) -> None:
        _check_record(self, "E, N", torch.Tensor, _TORCH_DTYPES)

    @property
    def n_members(self) -> int:
        return int(self.states.shape[0])

    @property
    def n_episodes(self) -> int:
        return int(self.states.shape[1])

    @property
    def horizon(self) -> int:
        return int(self.actions.shape[2])

    @property
    def lengths(self) -> torch.Tensor:
        """Steps taken in each episode. Shape (E, N), int64."""
        return self.mask.sum(-1)

    def returns(self, gamma: float = 1.0) -> torch.Tensor:
        """Discounted return sum_t gamma^t r_t of each episode. Shape (E, N), float64."""
        t = torch.arange(self.horizon, dtype=torch.float64, device=self.rewards.device)  # (T,)
        return self.rewards @ torch.pow(_check_gamma(gamma), t)  # (E, N)

    def member(self, e: int) -> Episodes:
        """Member e's episodes as a numpy ``Episodes`` (copied to the host)."""
        if _check_count("e", e, 0) >= self.n_members:
            raise ValueError(f"e must lie in [0, {self.n_members - 1}], got {e}")
        return Episodes(*(getattr(self, f)[e].cpu().numpy() for f in FIELDS))


# ------------------------------------------------------------------ numpy sampler
def _np_guarded_cdf(p: np.ndarray) -> np.ndarray:
    """Cumulative sums along the last axis, +inf from each row's last positive entry on. Shape kept."""
    c = np.cumsum(p, axis=-1)
    last = p.shape[-1] - 1 - np.argmax(p[..., ::-1] > 0, axis=-1)  # (...,) last positive index
    return np.where(np.arange(p.shape[-1]) >= last[..., None], np.inf, c)


def _np_pick(cdf_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse CDF: the number of cumulative sums <= u. Shape: (N, K), (N,) -> (N,)."""
    return (cdf_rows <= u[:, None]).sum(-1)


def episodes_from_uniforms(mdp: TabularMDP, pi: np.ndarray, uniforms: np.ndarray) -> Episodes:
    """Episodes of pi on mdp driven by given uniforms (common random numbers).

    Args:
        mdp: the MDP (its ``probs`` / ``next_states``, ``terminal``, ``goal``, ``rho0``).
        pi: policy table pi[s, a], Shape (S, A), rows sum to 1.
        uniforms: numbers in [0, 1), Shape (N, 2T+1); layout in the module docstring.
    """
    pi = mdp.check_policy(pi)
    u = np.asarray(uniforms)
    if u.ndim != 2 or u.shape[1] < 3 or u.shape[1] % 2 == 0 or u.shape[0] < 1:
        raise ValueError(f"uniforms must have shape (N, 2T+1) with N >= 1, T >= 1, got {u.shape}")
    if not np.issubdtype(u.dtype, np.floating) or not (np.isfinite(u).all() and u.min() >= 0 and u.max() < 1):
        raise ValueError("uniforms must be floating-point numbers in [0, 1)")
    u = u.astype(np.float64, copy=False)
    N, T = u.shape[0], (u.shape[1] - 1) // 2
    order = np.argsort(mdp.next_states, axis=-1, kind="stable")  # successors by state index, as in dense P
    succ = np.take_along_axis(mdp.next_states, order, -1)  # (S, A, K)
    cdf_P = _np_guarded_cdf(np.take_along_axis(mdp.probs, order, -1))  # (S, A, K)
    cdf_pi, cdf_rho = _np_guarded_cdf(pi), _np_guarded_cdf(mdp.rho0)  # (S, A), (S,)
    goal = np.asarray(mdp.goal, dtype=bool)  # (S,)
    states = np.empty((N, T + 1), dtype=np.int64)
    actions = np.zeros((N, T), dtype=np.int64)
    rewards = np.zeros((N, T))
    mask = np.zeros((N, T), dtype=bool)
    s = _np_pick(np.broadcast_to(cdf_rho, (N, cdf_rho.size)), u[:, 0])  # (N,)
    states[:, 0] = s
    for t in range(T):
        alive = ~mdp.terminal[s]  # (N,)
        if not alive.any():  # every episode has ended: the rest is already in place
            states[:, t + 1 :] = s[:, None]
            break
        a = _np_pick(cdf_pi[s], u[:, 1 + 2 * t])  # (N,)
        s_next = succ[s, a, _np_pick(cdf_P[s, a], u[:, 2 + 2 * t])]  # (N,)
        actions[:, t] = np.where(alive, a, 0)
        s = np.where(alive, s_next, s)
        mask[:, t] = alive
        rewards[:, t] = alive & goal[s]
        states[:, t + 1] = s
    return Episodes(states, actions, rewards, mask, goal[s])


def sample_episodes(
    mdp: TabularMDP, pi: np.ndarray, n_episodes: int, horizon: int, seed: int | np.random.Generator = 0
) -> Episodes:
    """Sample ``n_episodes`` episodes of ``horizon`` steps of policy pi (Shape (S, A)) on mdp.

    seed: an integer >= 0 or a ``numpy.random.Generator`` (advanced by N * (2T + 1) draws).
    Vectorised over episodes (a loop over time steps only, stopping once all have ended).
    """
    n_episodes, horizon = _check_count("n_episodes", n_episodes), _check_count("horizon", horizon)
    if isinstance(seed, np.random.Generator):
        rng = seed
    elif isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0:
        rng = np.random.default_rng(int(seed))
    else:
        raise TypeError(f"seed must be an integer >= 0 or a numpy.random.Generator, got {seed!r}")
    return episodes_from_uniforms(mdp, pi, rng.random((n_episodes, n_uniforms(horizon))))


# ------------------------------------------------------------------ torch sampler
@dataclass(frozen=True)
class MDPTensors:
    """The tensors ``sample_rollouts`` needs, built once per MDP and device.

    Attributes:
        P: P[s, a, s'], Shape (S, A, S), float64.  rho0: Shape (S,), float64.
        terminal: Shape (S,), bool.  goal: Shape (S,), bool.
    """

    P: torch.Tensor
    rho0: torch.Tensor
    terminal: torch.Tensor
    goal: torch.Tensor


def mdp_tensors(mdp: TabularMDP, device: str | torch.device = "cpu") -> MDPTensors:
    """Dense float64 tensors of a (small) TabularMDP on ``device``; P costs S^2 * A memory."""
    return MDPTensors(
        P=dense_transitions(mdp, device),
        rho0=torch.as_tensor(mdp.rho0, dtype=torch.float64, device=device),
        terminal=torch.as_tensor(mdp.terminal, device=device),
        goal=torch.as_tensor(mdp.goal, device=device),
    )


def _same_device(a: torch.device, b: torch.device) -> bool:
    def index(d: torch.device) -> int:
        return d.index if d.index is not None else (torch.cuda.current_device() if d.type == "cuda" else 0)

    return a.type == b.type and index(a) == index(b)


def _check_inputs(P, pi, rho0, terminal, goal) -> int:
    """Types, shapes and devices of the torch inputs (no host-device sync). Returns E."""
    named = (("P", P), ("pi", pi), ("rho0", rho0), ("terminal", terminal), ("goal", goal))
    for name, x in named:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    for i, (name, x) in enumerate(named):
        if i < 3 and not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        if i >= 3 and x.dtype != torch.bool:
            raise TypeError(f"{name} must be a bool tensor, got dtype {x.dtype}")
        if not _same_device(x.device, pi.device):
            raise ValueError(f"{name} must be on pi's device {pi.device}, got {x.device}")
    if P.ndim != 3 or P.shape[0] != P.shape[2] or P.shape[0] < 1 or P.shape[1] < 1:
        raise ValueError(f"P must have shape (S, A, S) with S, A >= 1, got {tuple(P.shape)}")
    S, A = int(P.shape[0]), int(P.shape[1])
    if pi.ndim != 3 or tuple(pi.shape[1:]) != (S, A) or pi.shape[0] < 1:
        raise ValueError(f"pi must have shape (E, S={S}, A={A}) with E >= 1, got {tuple(pi.shape)}")
    for name, x in named[2:]:
        if tuple(x.shape) != (S,):
            raise ValueError(f"{name} must have shape (S={S},), got {tuple(x.shape)}")
    return int(pi.shape[0])


def _check_values(P, pi, rho0, terminal, goal, u=None) -> int:
    """Probability rows, goal subset of terminal, uniforms in [0, 1): one host-device sync in all.

    Returns K, the most successors of positive probability of any (s, a).
    """
    dists = (("P", P, "P[s, a, :]"), ("pi", pi, "pi[e, s, :]"), ("rho0", rho0, "rho0"))
    stats = []
    for _, x, _ in dists:  # a NaN makes the minimum NaN, an inf the row sum
        x = x.detach().double()
        stats += [x.amin(), (x.sum(-1) - 1).abs().amax()]
    stats += [(goal & ~terminal).any().double(), (P > 0).sum(-1).amax().double()]
    if u is not None:
        stats += [u.detach().double().amin(), u.detach().double().amax()]
    v = torch.stack(stats).tolist()  # the one sync
    for i, (name, x, row) in enumerate(dists):
        lo, err = v[2 * i : 2 * i + 2]
        if not lo >= 0:
            raise ValueError(f"{name} must hold finite, non-negative probabilities, got minimum {lo!r}")
        if not err <= ROW_SUM_TOL:
            sums = x.detach().double().sum(-1)
            where = tuple(int(i) for i in np.unravel_index(int((sums - 1).abs().argmax()), tuple(sums.shape)))
            raise ValueError(
                f"{name} rows ({row}) must sum to 1 within {ROW_SUM_TOL}; the row at index "
                f"{where} sums to {float(sums[where])!r}"
            )
    if v[6]:
        bad = int(torch.nonzero(goal & ~terminal)[0])
        raise ValueError(f"goal states must be terminal, got goal state {bad} with terminal[{bad}] = False")
    if u is not None and not (v[8] >= 0 and v[9] < 1):
        raise ValueError(f"uniforms must lie in [0, 1), got range [{v[8]!r}, {v[9]!r}]")
    return int(v[7])


def _guarded_cdf(p: torch.Tensor) -> torch.Tensor:
    """Float64 cumulative sums along the last axis, +inf from each row's last positive entry on."""
    p = p.detach().double()
    K = p.shape[-1]
    last = (K - 1) - (p > 0).flip(-1).to(torch.uint8).argmax(-1)  # (...,) last positive index
    idx = torch.arange(K, device=p.device)  # (K,)
    return torch.where(idx >= last.unsqueeze(-1), torch.inf, p.cumsum(-1))


def _pick(cdf: torch.Tensor, rows: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse CDF: the first index of row rows[m] of cdf above u[m]. Shape: (R, K), (M,), (M,) -> (M,)."""
    return torch.searchsorted(cdf.index_select(0, rows), u.unsqueeze(-1), right=True).squeeze(-1)  # (M,)


def _rollouts(P, pi, rho0, terminal, goal, u: torch.Tensor, K: int) -> Rollouts:
    """The time loop on validated inputs; u Shape (E, N, 2T+1); K successors per (s, a) at most.

    Tables are built once per call so that a step is a few gathers on M = E * N episodes, O(M (A + K))
    whatever S: the state is kept as z = e * S + s (one row per member and state); P becomes sparse,
    (E*S*A, K) successors in increasing state order, and terminal states self-loop there, so that an
    ended episode stays put without a per-step test; masks and rewards are computed after the loop.
    A deterministic P (K = 1) needs no draw for s_{t+1} (its uniform is drawn all the same). On CPU
    the loop stops once every episode has ended (checked every 4 steps): the result is the same.
    """
    (E, N, W), S, A = u.shape, P.shape[0], P.shape[1]
    T, dev, M = (W - 1) // 2, pi.device, E * N
    P = torch.where(
        terminal[:, None, None], torch.eye(S, dtype=torch.float64, device=dev)[:, None, :], P.detach().double()
    )  # (S, A, S) terminal rows absorbing
    succ = torch.sort((P <= 0).to(torch.uint8), dim=-1, stable=True).indices[..., :K]  # (S, A, K) positive first
    cdf_P = _guarded_cdf(P.gather(-1, succ)).reshape(1, S * A * K).expand(E, -1).reshape(E * S * A, K)
    offset = torch.arange(E, device=dev) * S  # (E,) first row of each member
    succ = (succ.reshape(1, S * A * K) + offset[:, None]).reshape(E * S * A * K)  # entry ((z*A) + a)*K + k -> z'
    cdf_pi = _guarded_cdf(pi).reshape(E * S, A)  # (E*S, A): row z = e*S + s
    u = u.detach().double().reshape(M, W).t().contiguous()  # (2T+1, M)
    z_steps = torch.empty((T + 1, M), dtype=torch.int64, device=dev)
    a_steps = torch.zeros((T, M), dtype=torch.int64, device=dev)
    z0 = offset.repeat_interleave(N)  # (M,) each episode's member offset e*S
    z = torch.searchsorted(_guarded_cdf(rho0), u[0], right=True) + z0  # (M,)
    z_steps[0] = z
    terminal_z = terminal.repeat(E)  # (E*S,)
    for t in range(T):
        if dev.type == "cpu" and t % 4 == 0 and bool(terminal_z.take(z).all()):  # free on CPU, a sync elsewhere
            z_steps[t + 1 :] = z  # every episode has ended: terminal states repeat, a_t stays 0
            break
        a = _pick(cdf_pi, z, u[1 + 2 * t])  # (M,)
        row = torch.add(a, z, alpha=A)  # (M,) row z*A + a of the P tables
        z = succ.take(row if K == 1 else torch.add(_pick(cdf_P, row, u[2 + 2 * t]), row, alpha=K))  # (M,)
        a_steps[t] = a
        z_steps[t + 1] = z
    states = (z_steps.t() - z0[:, None]).contiguous().view(E, N, T + 1)  # (E, N, T+1)
    mask = ~terminal.take(states[..., :-1])  # (E, N, T)
    actions = torch.where(mask, a_steps.t().reshape(E, N, T), 0)  # (E, N, T)
    rewards = (mask & goal.take(states[..., 1:])).double()  # (E, N, T)
    return Rollouts(states, actions, rewards, mask, goal.take(states[..., -1]))


def rollouts_from_uniforms(
    P: torch.Tensor,
    pi: torch.Tensor,
    rho0: torch.Tensor,
    terminal: torch.Tensor,
    goal: torch.Tensor,
    uniforms: torch.Tensor,
) -> Rollouts:
    """Rollouts of E policies driven by given uniforms (common random numbers, or a custom stream).

    Shapes: P (S, A, S), pi (E, S, A), rho0 / terminal / goal (S,), uniforms (E, N, 2T+1) floats in
    [0, 1) on pi's device (layout in the module docstring). With float64 inputs equal to a
    TabularMDP's and the same uniforms, member e equals ``episodes_from_uniforms(mdp, pi[e], u[e])``.
    """
    E = _check_inputs(P, pi, rho0, terminal, goal)
    if not isinstance(uniforms, torch.Tensor) or not uniforms.is_floating_point():
        got = getattr(uniforms, "dtype", type(uniforms).__name__)
        raise TypeError(f"uniforms must be a floating-point torch.Tensor, got {got}")
    W = uniforms.shape[-1] if uniforms.ndim == 3 else 0
    if uniforms.ndim != 3 or uniforms.shape[0] != E or uniforms.shape[1] < 1 or W < 3 or W % 2 == 0:
        raise ValueError(f"uniforms must have shape (E={E}, N, 2T+1) with N >= 1, T >= 1, got {tuple(uniforms.shape)}")
    if not _same_device(uniforms.device, pi.device):
        raise ValueError(f"uniforms must be on pi's device {pi.device}, got {uniforms.device}")
    K = _check_values(P, pi, rho0, terminal, goal, uniforms)
    return _rollouts(P, pi, rho0, terminal, goal, uniforms, K)


def sample_rollouts(
    P: torch.Tensor,
    pi: torch.Tensor,
    rho0: torch.Tensor,
    terminal: torch.Tensor,
    goal: torch.Tensor,
    n_episodes: int,
    horizon: int,
    generator: torch.Generator,
) -> Rollouts:
    """Sample ``n_episodes`` episodes of ``horizon`` steps from each of the E policies pi[e].

    Args:
        P: transitions P[s, a, s'], Shape (S, A, S), float, rows sum to 1.
        pi: policy tables pi[e, s, a], Shape (E, S, A), float, rows sum to 1 (e.g. ``policy_table``).
        rho0: initial distribution, Shape (S,), float.  terminal, goal: Shape (S,), bool; goal ⊆ terminal.
        n_episodes, horizon: N >= 1 episodes per member, T >= 1 steps.
        generator: the only source of randomness; on pi's device. Advanced by E * N * (2T + 1)
            float64 draws.
    Rows must sum to 1 within ``ROW_SUM_TOL``; terminal states are absorbing whatever their rows of P
    say. Vectorised over E and N; the loop runs over time
    steps only. Validation costs one host-device sync; the loop none on CUDA (on CPU it stops
    once every episode has ended, which changes nothing in the result).
    """
    n_episodes, horizon = _check_count("n_episodes", n_episodes), _check_count("horizon", horizon)
    E = _check_inputs(P, pi, rho0, terminal, goal)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    if not _same_device(generator.device, pi.device):
        raise ValueError(f"generator must be on pi's device {pi.device}, got {generator.device}")
    K = _check_values(P, pi, rho0, terminal, goal)
    u = torch.rand(
        (E, n_episodes, n_uniforms(horizon)), generator=generator, dtype=torch.float64, device=pi.device
    )  # (E, N, 2T+1)
    return _rollouts(P, pi, rho0, terminal, goal, u, K)


def rollouts_from_mdp(
    mdp: TabularMDP, pi: torch.Tensor, n_episodes: int, horizon: int, generator: torch.Generator
) -> Rollouts:
    """``sample_rollouts`` on the tensors of ``mdp`` built on pi's device (for many calls, build
    ``mdp_tensors`` once and call ``sample_rollouts``)."""
    if not isinstance(pi, torch.Tensor):
        raise TypeError(f"pi must be a torch.Tensor, got {type(pi).__name__}")
    m = mdp_tensors(mdp, pi.device)
    return sample_rollouts(m.P, pi, m.rho0, m.terminal, m.goal, n_episodes, horizon, generator)
