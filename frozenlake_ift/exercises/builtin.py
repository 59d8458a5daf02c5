"""The notebooks' "implement it" exercises as data: each one's reference (the package's own code), its
seeded inputs and its common mistakes, and the ``check_*`` function a notebook calls."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .. import lakes, losses, routes, theory
from .judging import Case, Exercise, Mistake, Verdict


# ------------------------------------------------------------------------ notebook 01: Bellman backup
@functools.cache  # judge() copies every input before a call
def _backup_cases() -> list[Case]:
    out = []
    for slippery, gamma in ((False, 0.9), (True, 0.5)):
        lake = lakes.make_lake("4x4", slippery=slippery)
        V = np.random.default_rng(int(slippery)).uniform(0, 1, lake.n_states)  # (S,)
        out.append(
            Case(
                f"the {'slippery' if slippery else 'deterministic'} 4x4 lake, a random V, gamma {gamma}",
                dict(P=lake.dense_P(), R=lake.R.copy(), V=V, gamma=gamma),
            )
        )
    return out


def _backup(P, R, V, gamma):
    return R + gamma * np.einsum("sat,t->sa", P, V)  # (S, A)


def _bellman_exercise() -> Exercise:
    mistakes = (
        Mistake(
            "you returned max_a Q, i.e. V: one backup of Q keeps a value per action, Shape (S, A)",
            lambda P, R, V, gamma: _backup(P, R, V, gamma).max(1),
        ),
        Mistake(
            "gamma is missing: Q = R + gamma * sum_s' P(s'|s,a) V(s')", lambda P, R, V, gamma: _backup(P, R, V, 1.0)
        ),
        Mistake(
            "only the future is discounted: R + gamma * E[V(s')], not gamma * (R + E[V(s')])",
            lambda P, R, V, gamma: gamma * (R + np.einsum("sat,t->sa", P, V)),
        ),
        Mistake(
            "sum over the next state s', the last axis of P[s, a, s'] (your sum runs over the first)",
            lambda P, R, V, gamma: R + gamma * np.einsum("tas,t->sa", P, V),
        ),
        Mistake("the reward R(s, a) is missing", lambda P, R, V, gamma: gamma * np.einsum("sat,t->sa", P, V)),
    )
    return Exercise("one Bellman backup", _backup, _backup_cases, mistakes)


def check_bellman_backup(fn: Callable) -> Verdict:
    """fn(P, R, V, gamma) -> Q: one Bellman backup Q[s, a] = R[s, a] + gamma * sum_s' P[s, a, s'] V[s'].

    P: Shape (S, A, S), R: Shape (S, A), V: Shape (S,); returns Shape (S, A) (``TabularMDP.q_from_v``)."""
    return _bellman_exercise().check(fn)


# ------------------------------------------------------------------------------- notebook 02: SFT
@functools.cache  # judge() copies every input before a call
def _sft_cases() -> list[Case]:
    g = torch.Generator().manual_seed(0)
    logps = -torch.rand(3, 5, generator=g, dtype=torch.float64) * 3  # (B, T)
    full = torch.ones(3, 5, dtype=torch.bool)  # (B, T)
    ragged = torch.arange(5)[None] < torch.tensor([[5], [3], [1]])  # (B, T): lengths 5, 3, 1
    padded = torch.where(ragged, logps, torch.full_like(logps, -30.0))  # padding holds junk, as in a real batch
    return [
        Case("3 sequences of 5 steps, no padding", dict(logps=logps, mask=full)),
        Case("3 sequences of 5, 3 and 1 steps (the rest padding)", dict(logps=padded, mask=ragged)),
    ]


def _masked_sum(logps, mask):
    return torch.where(mask, logps, torch.zeros_like(logps)).sum(-1)  # (B,)


def _sft_exercise() -> Exercise:
    mistakes = (
        Mistake(
            "sign: the loss is the *negative* log-likelihood, -log q",
            lambda logps, mask: -losses.sft_loss(logps, mask),
        ),
        Mistake(
            "you summed each sequence's log-probs: SFT averages them over the sequence's unmasked steps",
            lambda logps, mask: -_masked_sum(logps, mask).mean(),
        ),
        Mistake(
            "padded steps count in your mean: use only the steps where mask is True", lambda logps, mask: -logps.mean()
        ),
        Mistake(
            "you divided by the full length T: divide by each sequence's own number of unmasked steps",
            lambda logps, mask: -(_masked_sum(logps, mask) / logps.shape[-1]).mean(),
        ),
        Mistake(
            "you averaged over all tokens of the batch at once: average within each sequence first, then over "
            "the sequences (the two differ when lengths differ)",
            lambda logps, mask: -_masked_sum(logps, mask).sum() / mask.sum(),
        ),
    )
    return Exercise("the SFT loss", losses.sft_loss, _sft_cases, mistakes)


def check_sft_loss(fn: Callable) -> Verdict:
    """fn(logps, mask) -> loss: SFT's mean negative log-likelihood (``losses.sft_loss``).

    logps: Shape (B, T) log-probs of the target actions; mask: Shape (B, T) bool, True on real steps.
    The loss averages -logps over each sequence's unmasked steps, then over the sequences: a scalar."""
    return _sft_exercise().check(fn)


# ---------------------------------------------------------------- notebooks 02 and 04: Table 1 weights
PREFIX_ROWS = ("truly", "ift")


@functools.cache  # judge() copies every input before a call
def _prefix_cases() -> list[Case]:
    out = []
    for name, slippery in (("two-route", False), ("4x4", True)):
        mdp = lakes.make_lake(name, slippery=slippery)
        path, _ = routes.chosen_and_rejected(mdp, gamma=0.95)
        logits = np.random.default_rng(len(name)).normal(size=(mdp.n_states, mdp.n_actions))  # (S, A)
        pi = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)  # (S, A)
        kind = "slippery" if slippery else "deterministic"
        out.append(
            Case(
                f"the {kind} {name} map, a random policy, lam 0.3",
                dict(mdp=mdp, pi=pi, states=path.states, actions=path.actions, lam=0.3),
            )
        )
    return out


def _truly_weight(mdp, pi, states, actions, lam=0.2):
    return theory.truly_estimate(mdp, pi, states, actions).weight


def _ift_weight(mdp, pi, states, actions, lam=0.2):
    return theory.ift_estimate(mdp, pi, states, actions, lam).weight


def _state_path_weight(mdp, pi, states, actions, lam=0.2):
    T = mdp.state_transition(pi)  # (S, S)
    steps = [T[s, t] for s, t in itertools.pairwise(states)]
    return mdp.rho0[states[0]] * np.cumprod([1.0, *steps])


def _pi_only_weight(mdp, pi, states, actions, lam=0.2):
    steps = [pi[s, a] for s, a in zip(states[:-1], actions, strict=True)]
    return mdp.rho0[states[0]] * np.cumprod([1.0, *steps])


def _prefix_exercise(row: str) -> Exercise:
    mistakes: tuple[Mistake, ...]
    ones = Mistake(
        "that is SFT's weight (the prefix taken as certain): "
        + (
            "truly's is the model's probability of the prefix, rho0(s*_0) * prod_{i<n} q_i"
            if row == "truly"
            else "IFT's is (1 - lam) + lam * m_i[s*_i], below 1 where the greedy move leaves the target"
        ),
        lambda mdp, pi, states, actions, lam=0.2: np.ones(len(states)),
    )
    if row == "truly":
        mistakes = (
            ones,
            Mistake(
                "you multiplied T_theta(s*_{i+1} | s*_i), which also counts the other actions that reach s*_{i+1}: "
                "the target path's factor is q_i = pi(a*_i | s*_i) P(s*_{i+1} | s*_i, a*_i)",
                _state_path_weight,
            ),
            Mistake(
                "P(s*_{i+1} | s*_i, a*_i) is missing: on a slippery map the intended move can slip elsewhere",
                _pi_only_weight,
            ),
            Mistake(
                "that is the probability of being at s*_n after n moves by any path (rho0 T^n); Table 1's weight "
                "is the probability of the target prefix itself",
                lambda mdp, pi, states, actions, lam=0.2: mdp.preference(pi, len(actions))[
                    np.arange(len(states)), list(states)
                ],
            ),
        )
        return Exercise("the truly row's prefix weight", _truly_weight, _prefix_cases, mistakes)
    mistakes = (
        ones,
        Mistake(
            "lam and 1 - lam are swapped: the target state keeps 1 - lam of the input (Eq. 17)",
            lambda mdp, pi, states, actions, lam=0.2: _ift_weight(mdp, pi, states, actions, 1.0 - lam),
        ),
        Mistake(
            "that is the expected residual (the model's whole one-step distribution); the study's input mixes in "
            "the next state of the model's greedy move",
            lambda mdp, pi, states, actions, lam=0.2: (
                theory.ift_estimate(mdp, pi, states, actions, lam, residual="expected").weight
            ),
        ),
    )
    return Exercise("IFT's prefix weight", _ift_weight, _prefix_cases, mistakes)


def check_prefix_weight(fn: Callable, row: str = "truly") -> Verdict:
    """fn(mdp, pi, states, actions, lam) -> weight, Shape (N+1,): one Table 1 row's prefix weight.

    row "truly": weight[n] = T_theta(s*_n | rho0), the model's probability of the target prefix
    s*_0..s*_n, rho0(s*_0) * prod_{i<n} q_i (``theory.truly_estimate``). row "ift": weight[i] =
    delta_i[s*_i] = (1 - lam) + lam * m_i[s*_i] with the greedy residual m_i, and weight[0] = 1
    (``theory.ift_estimate``). pi: Shape (S, A); states: N+1 tiles; actions: N moves."""
    if row not in PREFIX_ROWS:
        raise ValueError(f"row must be one of {PREFIX_ROWS}, got {row!r}")
    return _prefix_exercise(row).check(fn)


# ------------------------------------------------------------------ notebook 02: relation propagation
def _relation_reference(step_losses, kappa):
    L = torch.as_tensor(step_losses, dtype=torch.float64)[None]  # (1, T)
    return losses.relation_weights(L, torch.ones_like(L, dtype=torch.bool), kappa)[0]  # (T,)


def _future_sums(step_losses, kappa, start: int = 0):
    """sum_{j >= i + start} kappa^(j - i) l_j for every i, Shape (T,)."""
    ell = np.asarray(step_losses, dtype=np.float64)
    T = ell.size
    return np.array([sum(kappa ** (j - i) * ell[j] for j in range(i + start, T)) for i in range(T)])


def _rescaled(W):
    return W.size * W / W.sum()


@functools.cache  # judge() copies every input before a call
def _relation_cases() -> list[Case]:
    rng = np.random.default_rng(3)
    return [
        Case(f"{len(ell)} step losses, kappa {k}", dict(step_losses=ell, kappa=k))
        for ell in (rng.gamma(2.0, 0.3, size=6), np.array([0.1, 0.05, 2.0, 0.2, 0.1, 0.3, 0.02, 0.4]))
        for k in (0.95, 0.5, 1.0, 0.0)
    ]


def _relation_exercise() -> Exercise:
    mistakes = (
        Mistake(
            "kappa = 0 is a special case: it switches propagation off, and every weight is 1 (Algorithm 1, as in "
            "the authors' code)",
            lambda step_losses, kappa: _rescaled(_future_sums(step_losses, kappa)),
        ),
        Mistake(
            "these are the unnormalised W_i: rescale them to w_i = T W_i / sum_k W_k",
            lambda step_losses, kappa: (
                np.ones(len(step_losses)) if kappa == 0 else _future_sums(step_losses, kappa) / len(step_losses)
            ),
        ),
        Mistake(
            "your weights sum to 1: Algorithm 1 rescales them to sum to T, the number of steps",
            lambda step_losses, kappa: (
                np.ones(len(step_losses)) / len(step_losses)
                if kappa == 0
                else _rescaled(_future_sums(step_losses, kappa)) / len(step_losses)
            ),
        ),
        Mistake(
            "you summed the losses *before* step i: relation propagation sums the losses from step i on (j >= i)",
            lambda step_losses, kappa: (
                np.ones(len(step_losses))
                if kappa == 0
                else _rescaled(_future_sums(np.asarray(step_losses)[::-1], kappa)[::-1])
            ),
        ),
        Mistake(
            "start the sum at j = i: a step's own loss counts (kappa^0 = 1)",
            lambda step_losses, kappa: (
                np.ones(len(step_losses)) if kappa == 0 else _rescaled(_future_sums(step_losses, kappa, start=1))
            ),
        ),
    )
    return Exercise("IFT's relation weights", _relation_reference, _relation_cases, mistakes)


def check_relation_weights(fn: Callable) -> Verdict:
    """fn(step_losses, kappa) -> w: IFT's relation-propagation weights (Algorithm 1, ``losses.relation_weights``).

    step_losses: Shape (T,) numpy, l_i >= 0; kappa in [0, 1]. W_i = sum_{j >= i} kappa^(j-i) l_j / T,
    w_i = T W_i / sum_k W_k; kappa = 0 switches propagation off (every w_i = 1). Returns Shape (T,)."""
    return _relation_exercise().check(fn)


# ------------------------------------------------------------------------------- notebook 03: DPO
def _dpo_reference(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta):
    return losses.dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta)[0]  # (B,)


def _margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected):
    return (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)  # (B,)


@functools.cache  # judge() copies every input before a call
def _dpo_cases() -> list[Case]:
    g = torch.Generator().manual_seed(1)
    cases = []
    for beta in (0.1, 0.5):
        pc, pr, rc, rr = (-torch.rand(4, generator=g, dtype=torch.float64) * 10 for _ in range(4))  # (B,) each
        cases.append(
            Case(
                f"4 pairs, beta {beta}",
                dict(policy_chosen=pc, policy_rejected=pr, ref_chosen=rc, ref_rejected=rr, beta=beta),
            )
        )
    return cases


def _dpo_exercise() -> Exercise:
    def with_margin(form):
        return lambda policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: form(
            _margin(policy_chosen, policy_rejected, ref_chosen, ref_rejected),
            beta,
            policy_chosen - policy_rejected,
        )

    mistakes = (
        Mistake(
            "the reference model is missing: the margin is log(pi/pi_ref) of the chosen minus that of the rejected",
            with_margin(lambda h, beta, raw: -F.logsigmoid(beta * raw)),
        ),
        Mistake("the margin's sign: chosen minus rejected", with_margin(lambda h, beta, raw: -F.logsigmoid(-beta * h))),
        Mistake(
            "beta is missing: it scales the margin inside the sigmoid",
            with_margin(lambda h, beta, raw: -F.logsigmoid(h)),
        ),
        Mistake(
            "beta goes inside the sigmoid, -log sigmoid(beta * h), not in front of it",
            with_margin(lambda h, beta, raw: -beta * F.logsigmoid(h)),
        ),
        Mistake(
            "DPO takes the log of the sigmoid: -log sigmoid(beta * h)",
            with_margin(lambda h, beta, raw: -torch.sigmoid(beta * h)),
        ),
        Mistake(
            "sign: the loss is -log sigmoid(beta * h), which is positive",
            with_margin(lambda h, beta, raw: F.logsigmoid(beta * h)),
        ),
        Mistake(
            "return one loss per pair, Shape (B,): no mean over the batch",
            with_margin(lambda h, beta, raw: -F.logsigmoid(beta * h).mean()),
        ),
    )
    return Exercise("the DPO loss", _dpo_reference, _dpo_cases, mistakes)


def check_dpo_loss(fn: Callable) -> Verdict:
    """fn(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta) -> losses: DPO, one loss per pair.

    Each input Shape (B,): summed log-probs of the chosen and the rejected trajectory under the policy
    and under the frozen reference. losses = -log sigmoid(beta * h), h the margin of the log-ratios
    (``losses.dpo_loss``). Returns Shape (B,)."""
    return _dpo_exercise().check(fn)


def exercises() -> dict[str, Exercise]:
    """Every exercise by name, each with its reference, inputs and known mistakes (what the tests go through)."""
    return {
        "bellman_backup": _bellman_exercise(),
        "sft_loss": _sft_exercise(),
        "truly_weight": _prefix_exercise("truly"),
        "ift_weight": _prefix_exercise("ift"),
        "relation_weights": _relation_exercise(),
        "dpo_loss": _dpo_exercise(),
    }
