"""The paper's theory as code: preferences, transition targets and Table 1 (IFT, arXiv 2405.11870).

Setting (paper Sec. 3). A TabularMDP, a model policy pi[s, a] (Shape (S, A)) and a target path

    s*_0 --a*_0--> s*_1 --a*_1--> ... --a*_{N-1}--> s*_N      states (N+1,), actions (N,)

(a ``routes.Trajectory`` passes as ``traj.states, traj.actions``). The per-step preference of pi
from rho0 is ``TabularMDP.preference`` (rows rho0 T_pi^n, Eq. 3-6) and the probability of one path
is ``TabularMDP.path_probability`` (Eq. 19); this module builds on both and repeats neither.

The model's one-step transition along the target (the factor of Eq. 19) is

    q_i = T_theta(s*_{i+1} | s*_i) = pi(a*_i | s*_i) * P(s*_{i+1} | s*_i, a*_i).

Every Table 1 estimate has the form  est[n] = weight[n-1] * q_{n-1}  (est[0] = weight[0]): the
model's one-step transition times the weight the method gives to the conditioning prefix
s*_0..s*_{n-1}, i.e. its stand-in for T_theta(s*_{n-1} | rho0). Estimates concern the target
*path*: in the paper's MDP a state is a prefix, so only the path itself reaches s*_n that way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .mdp import Indices, TabularMDP
from .residual import RESIDUALS, temporal_residual


@dataclass(frozen=True)
class Estimate:
    """One row of Table 1 along a target path of N steps.

    method: its name. prob: Shape (N+1,), the estimate of the model's probability of reaching s*_n
    along the target prefix. weight: Shape (N+1,), the weight given to the prefix ending at s*_i
    (1 = taken as certain). cond: Shape (N+1, S), the distribution the conditioning state of step
    i is drawn from. target: Shape (N, A), the action distribution step i is pushed toward.
    """

    method: str
    prob: np.ndarray
    weight: np.ndarray
    cond: np.ndarray
    target: np.ndarray


@dataclass(frozen=True)
class TransitionTargets:
    """Transition-optimisation targets along a target path (Eq. 7-10).

    action: Shape (N, A), one-hot a*_i (the per-step target of pi(. | s*_i)). next_state: Shape
    (N, S), P(. | s*_i, a*_i). attainable: Shape (N+1,), rho0[s*_0] * prod_{i<n} P(s*_{i+1} | s*_i,
    a*_i), the value T*(s*_n | rho0) that optimisation drives T_theta(s*_n | rho0) toward (1 on a
    deterministic map started at s*_0). markov: whether one Markov policy can take a*_i at every
    s*_i (False when the path revisits a state with a different action).
    """

    action: np.ndarray
    next_state: np.ndarray
    attainable: np.ndarray
    markov: bool


@dataclass(frozen=True)
class Path:
    """A state-action path: states (n+1,), actions (n,), and its probability under the policy."""

    states: tuple
    actions: tuple
    prob: float


# ------------------------------------------------------------------------------------- helpers
def _path(mdp: TabularMDP, states: Indices, actions: Indices | None) -> tuple[np.ndarray, np.ndarray]:
    """Validated target path as int arrays, Shape (N+1,) and (N,); actions=None checks the states only."""
    s = np.asarray(states, dtype=np.int64)
    a = np.zeros(max(s.size - 1, 0), dtype=np.int64) if actions is None else np.asarray(actions, dtype=np.int64)
    if s.ndim != 1 or s.size < 1 or a.shape != (s.size - 1,):
        raise ValueError(f"a target path needs states Shape (N+1,) and actions Shape (N,), got {s.shape} and {a.shape}")
    if s.min() < 0 or s.max() >= mdp.n_states or (a.size and (a.min() < 0 or a.max() >= mdp.n_actions)):
        raise ValueError(f"path states must lie in [0, {mdp.n_states - 1}] and actions in [0, {mdp.n_actions - 1}]")
    return s, a


def _lam(lam: float) -> float:
    lam = float(lam)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must lie in [0, 1], got {lam}")
    return lam


def _onehot(idx: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((idx.size, n))  # Shape (len(idx), n), without an (n, n) identity
    out[np.arange(idx.size), idx] = 1.0
    return out


def _prefix_probs(mdp: TabularMDP, pi: np.ndarray, s: np.ndarray, a: np.ndarray) -> np.ndarray:
    """T_pi(s*_n | rho0) along the target path for n = 0..N (Eq. 19), Shape (N+1,)."""
    return np.array([mdp.path_probability(s[: n + 1], pi, a[:n]) for n in range(s.size)])


def _estimate(method: str, weight: np.ndarray, q: np.ndarray, cond: np.ndarray, target: np.ndarray) -> Estimate:
    prob = np.concatenate([weight[:1], weight[:-1] * q])  # est[n] = weight[n-1] * q_{n-1}
    return Estimate(method, prob, weight, cond, target)


# ------------------------------------------------------------------------- preference (Eq. 3-6)
def path_preference(mdp: TabularMDP, pi: np.ndarray, n_steps: int, max_paths: int = 100_000) -> dict:
    """The preference of pi from rho0 over state paths of n_steps transitions (Eq. 3-6, 19).

    Returns {(s_0, ..., s_n): probability} over every path of positive probability, each value
    from ``TabularMDP.path_probability``. Summed over paths ending in s' it equals rho0 T_pi^n [s']
    (``TabularMDP.preference(pi, n)[n]``). Exponential in n_steps: small MDPs only.
    """
    T = mdp.state_transition(pi)  # (S, S)
    paths: list[tuple[int, ...]] = [(int(s),) for s in np.flatnonzero(mdp.rho0 > 0)]
    for _ in range(n_steps):
        paths = [p + (int(t),) for p in paths for t in np.flatnonzero(T[p[-1]] > 0)]
        if len(paths) > max_paths:
            raise ValueError(f"more than max_paths={max_paths} paths of positive probability; lower n_steps")
    return {p: mdp.path_probability(p, pi) for p in paths}


def step_probabilities(mdp: TabularMDP, pi: np.ndarray, states: Indices, actions: Indices) -> np.ndarray:
    """q_i = pi(a*_i | s*_i) P(s*_{i+1} | s*_i, a*_i), the factors of Eq. 19. Shape (N,)."""
    pi = mdp.check_policy(pi)
    s, a = _path(mdp, states, actions)
    step = np.where(mdp.next_states[s[:-1], a] == s[1:, None], mdp.probs[s[:-1], a], 0.0).sum(-1)
    return pi[s[:-1], a] * step


def transition_targets(mdp: TabularMDP, states: Indices, actions: Indices) -> TransitionTargets:
    """The transition-optimisation targets of a target path (Eq. 7-10); see ``TransitionTargets``."""
    s, a = _path(mdp, states, actions)
    nxt = mdp.next_state_distribution(s[:-1], a)  # (N, S)
    reach = mdp.rho0[s[0]] * np.cumprod(np.concatenate([[1.0], nxt[np.arange(a.size), s[1:]]]))
    chosen: dict[int, int] = {}
    markov = all(chosen.setdefault(int(si), int(ai)) == int(ai) for si, ai in zip(s[:-1], a, strict=True))
    return TransitionTargets(_onehot(a, mdp.n_actions), nxt, reach, markov)


def follow_path_policy(mdp: TabularMDP, pi: np.ndarray, states: Indices, actions: Indices) -> np.ndarray:
    """pi with row s*_i replaced by one-hot a*_i: the policy meeting the Eq. 7-10 targets. Shape (S, A)."""
    if not transition_targets(mdp, states, actions).markov:
        raise ValueError("the path revisits a state with a different action: no Markov policy follows it")
    out = mdp.check_policy(pi).copy()
    s, a = _path(mdp, states, actions)
    out[s[:-1]] = _onehot(a, mdp.n_actions)
    return out


# --------------------------------------------------------------------------------- Table 1
def truly_estimate(mdp: TabularMDP, pi: np.ndarray, states: Indices, actions: Indices) -> Estimate:
    """Truly (Eq. 19): the model's own prefix probability, est[n] = T_theta(s*_n | rho0) = rho0[s*_0] prod q_i.

    It conditions on the target's states s*_i, weighted by the model's probability of the prefix.
    """
    pi = mdp.check_policy(pi)
    s, a = _path(mdp, states, actions)
    w = _prefix_probs(mdp, pi, s, a)
    return _estimate("truly", w, step_probabilities(mdp, pi, s, a), _onehot(s, mdp.n_states), _onehot(a, mdp.n_actions))


def sft_estimate(mdp: TabularMDP, pi: np.ndarray, states: Indices, actions: Indices) -> Estimate:
    """SFT (Table 1, teacher forcing): the prefix is taken as certain, T_theta(s*_{n-1} | rho0) := 1,
    so est[n] = T_theta(s*_n | s*_{n-1}) = q_{n-1} (est[0] = 1). Conditions on the target's states.
    """
    s, a = _path(mdp, states, actions)
    return _estimate(
        "sft", np.ones(s.size), step_probabilities(mdp, pi, s, a), _onehot(s, mdp.n_states), _onehot(a, mdp.n_actions)
    )


def _on_policy(method: str, mdp, pi, states, actions, behaviour: np.ndarray, target_policy=None) -> Estimate:
    s, a = _path(mdp, states, actions)
    behaviour = mdp.check_policy(behaviour, "behaviour policy")
    cond = mdp.preference(behaviour, s.size - 1)  # (N+1, S): rho0 T_behaviour^i
    target = (
        _onehot(a, mdp.n_actions) if target_policy is None else cond[:-1] @ mdp.check_policy(target_policy, "pi_star")
    )
    return _estimate(method, _prefix_probs(mdp, behaviour, s, a), step_probabilities(mdp, pi, s, a), cond, target)


def ppo_estimate(mdp: TabularMDP, pi: np.ndarray, states: Indices, actions: Indices, pi_star: np.ndarray) -> Estimate:
    """PPO (Table 1): the model's own rollouts. cond[i] = rho0 T_theta^i (its own states); in
    expectation its rollouts follow the prefix with probability T_theta(s*_{n-1} | rho0), so
    est = truly. target[i] = cond[i] @ pi_star: the optimal policy's actions on those states.
    """
    return _on_policy("ppo", mdp, pi, states, actions, pi, pi_star)


def dpo_online_estimate(mdp: TabularMDP, pi: np.ndarray, states: Indices, actions: Indices) -> Estimate:
    """DPO online (Table 1): pairs sampled from the model itself; est = truly, cond[i] = rho0 T_theta^i,
    target = the chosen (target) path's actions.
    """
    return _on_policy("dpo_online", mdp, pi, states, actions, pi)


def dpo_offline_estimate(
    mdp: TabularMDP, pi: np.ndarray, states: Indices, actions: Indices, pi_old: np.ndarray
) -> Estimate:
    """DPO offline (Table 1): pairs sampled from an older policy pi_old, so the prefix weight is
    T_old(s*_{n-1} | rho0): est[n] = T_old(s*_{n-1} | rho0) * q_{n-1}; cond[i] = rho0 T_old^i.
    """
    return _on_policy("dpo_offline", mdp, pi, states, actions, pi_old)


def ift_input(
    mdp: TabularMDP, pi: np.ndarray, states: Indices, lam: float = 0.2, residual: str = "greedy"
) -> np.ndarray:
    """The temporal residual connection (Eq. 17) on a grid, Shape (N+1, S):

        delta_0 = onehot(s*_0),   delta_i = (1 - lam) onehot(s*_i) + lam * m_i   (i >= 1),

    m_i = P(. | s*_{i-1}, argmax_a pi(a | s*_{i-1})) for residual="greedy" (the grid study's input:
    the state the model's greedy prediction leads to, in expectation over slips), or the model's
    full one-step distribution T_theta(. | s*_{i-1}) for residual="expected". Rows sum to 1.
    """
    pi, lam = mdp.check_policy(pi), _lam(lam)
    s, _ = _path(mdp, states, None)
    prev = s[:-1]
    if residual == "greedy":
        m = mdp.next_state_distribution(prev, pi[prev].argmax(-1))
    elif residual == "expected":
        m = sum(
            pi[prev, b][:, None] * mdp.next_state_distribution(prev, np.full_like(prev, b))
            for b in range(mdp.n_actions)
        )
    else:
        raise ValueError(f"residual must be one of {RESIDUALS}, got {residual!r}")
    return temporal_residual(_onehot(s, mdp.n_states), m, lam)  # (N+1, S): Eq. 17, shared with the study


def ift_estimate(
    mdp: TabularMDP,
    pi: np.ndarray,
    states: Indices,
    actions: Indices,
    lam: float = 0.2,
    residual: str = "greedy",
) -> Estimate:
    """IFT (Eq. 17-18): the step to s*_n is conditioned on the mixed state delta_{n-1} of ``ift_input``.

    Acting on a mixed state. A tabular policy acts linearly on a mixed input, pi(. | delta) =
    sum_s delta[s] pi(. | s) (as a one-hot-input layer would), and so does the transition. Of
    T_theta(s*_n | delta_{n-1}) only the mass on the target state continues the target path, so

        weight[i] = delta_i[s*_i] = (1 - lam) + lam * m_i[s*_i],   est[n] = weight[n-1] * q_{n-1}:

    the prefix is taken as certain with weight 1 - lam (SFT) and, with weight lam, replaced by the
    model's own one-step prediction. lam = 0 gives SFT exactly; est is non-increasing in lam and at
    most SFT; lam = 1 gives the model's own (greedy or expected) transition into s*_{n-1}. With
    residual="expected", m_i[s*_i] = T_theta(s*_i | s*_{i-1}) >= q_{i-1} >= T_theta(s*_i | rho0), so
    truly <= IFT <= SFT always; with "greedy" the lower bound needs the greedy action at s*_{i-1}
    to be a*_{i-1} (otherwise IFT can fall below truly).
    """
    s, a = _path(mdp, states, actions)
    delta = ift_input(mdp, pi, s, lam, residual)
    weight = delta[np.arange(s.size), s]
    return _estimate("ift", weight, step_probabilities(mdp, pi, s, a), delta, _onehot(a, mdp.n_actions))


def table1(
    mdp: TabularMDP,
    pi: np.ndarray,
    states: Indices,
    actions: Indices,
    *,
    lam: float = 0.2,
    residual: str = "greedy",
    pi_star: np.ndarray | None = None,
    pi_old: np.ndarray | None = None,
) -> dict:
    """Every row of Table 1 for one target path: {method: Estimate}. PPO needs pi_star and DPO
    offline needs pi_old; each is left out when its policy is None."""
    rows = {
        "truly": truly_estimate(mdp, pi, states, actions),
        "sft": sft_estimate(mdp, pi, states, actions),
        "dpo_online": dpo_online_estimate(mdp, pi, states, actions),
        "ift": ift_estimate(mdp, pi, states, actions, lam, residual),
    }
    if pi_star is not None:
        rows["ppo"] = ppo_estimate(mdp, pi, states, actions, pi_star)
    if pi_old is not None:
        rows["dpo_offline"] = dpo_offline_estimate(mdp, pi, states, actions, pi_old)
    return rows


# ------------------------------------------------------------------------- Corollary (Eq. 11-12)
def most_likely_path(mdp: TabularMDP, pi: np.ndarray, n_steps: int) -> Path:
    """The model's most likely state-action path of n_steps transitions from rho0 (Eq. 12), exactly,
    by max-product dynamic programming (Viterbi): best_{t+1}[s'] = max_{s,a} best_t[s] pi[s,a] P[s,a,s'].
    """
    pi = mdp.check_policy(pi)
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    S, A, K = mdp.next_states.shape
    src = np.broadcast_to(np.arange(S)[:, None, None], (S, A, K)).ravel()
    act = np.broadcast_to(np.arange(A)[None, :, None], (S, A, K)).ravel()
    dst, edge = mdp.next_states.ravel(), (pi[:, :, None] * mdp.probs).ravel()
    # Duplicate successors of one (s, a) (walls) must be summed before maximising.
    key = (src * A + act) * S + dst
    uniq, inv = np.unique(key, return_inverse=True)
    edge = np.bincount(inv, weights=edge)
    src, act, dst = uniq // (A * S), (uniq // S) % A, uniq % S
    score, back = mdp.rho0.copy(), []
    for _ in range(n_steps):
        cand = score[src] * edge
        order = np.lexsort((-cand, dst))  # by destination, best candidate first
        first = order[np.unique(dst[order], return_index=True)[1]]
        score, bp = np.zeros(S), np.full(S, -1)
        score[dst[first]], bp[dst[first]] = cand[first], first
        back.append(bp)
    states, actions = [int(score.argmax())], []
    for bp in reversed(back):
        e = bp[states[-1]]
        actions.append(int(act[e]))
        states.append(int(src[e]))
    return Path(tuple(states[::-1]), tuple(actions[::-1]), float(score.max()))


def greedy_path(mdp: TabularMDP, pi: np.ndarray, n_steps: int) -> Path:
    """Greedy decoding: s_0 = argmax rho0, then a_t = argmax pi(. | s_t) and s_{t+1} = argmax P(. | s_t, a_t)."""
    pi = mdp.check_policy(pi)
    states, actions = [int(mdp.rho0.argmax())], []
    for _ in range(n_steps):
        a = int(pi[states[-1]].argmax())
        actions.append(a)
        states.append(int(mdp.next_state_distribution(np.array([states[-1]]), np.array([a]))[0].argmax()))
    return Path(tuple(states), tuple(actions), mdp.path_probability(states, pi, actions))
