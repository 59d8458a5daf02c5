"""The exact closed-loop judge of a language model on a grid task: the study's metrics, computed over every episode.

``judge(model, tokenizer, task)`` expands the tree of the model's histories on the task's lake: a node
is (the answer so far, the true state), with its probability. At each depth the distinct histories go
through the model in batched forward passes; each move token's probability times each transition of
the lake gives a child, whose history appends the move and the tile reached (the environment's
observation, as ``GridEnvironment`` plays it). A token that is not a move ends the episode
(``stopped``); holes and G end it too; the task's horizon ends the walk (``unfinished``). Children of
the same history and state are merged, so the tree is exact, not sampled. To keep it finite, the
least likely children of each depth are dropped while their total stays within max_pruned / horizon:
every number below is exact up to the reported ``pruned`` mass (<= max_pruned, 1e-6 by default), and
success + fell + stopped + unfinished + pruned = 1. A diffuse model has exponentially many likely
histories (a uniform mover: 4^t after t moves); past ``max_histories`` children at one depth the least
likely beyond that many are dropped too, the pruned mass then exceeds max_pruned, and ``exact`` is False
(the bounds still hold: success lies in [success, success + pruned + unfinished]).

The metrics carry the tabular study's names (``metrics.METRICS``), read on the model's behaviour:
    success          P(reach G within the horizon)  (exact in [success, success + pruned + unfinished])
    value            E[sum_t gamma^t r_t], r_t = 1 on the move entering G
    policy_mse_opt   mean over the visited non-terminal states s and actions a of (pi(a|s) - pi*(a|s))^2,
                     pi(a|s) = the model's move probabilities averaged over its histories at s, weighted
                     by their discounted occupancy gamma^t P(history) and renormalised over the moves
                     (the Markov policy with the same discounted state-action occupancy)
    tmatrix_mse_opt  the same for T_pi(s'|s) = sum_a pi(a|s) P(s'|s, a) against pi*'s (Eq. 2)
    kl               mean over the visited states of KL(pi*(.|s) || pi(.|s))
The tabular study averages the MSEs over every non-terminal state; a history-dependent model has no
policy at a state it never visits, so here only visited states count (``visited``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import solve
from ..metrics import kl_rows
from .grid import GridEnvironment, GridTask
from .logps import context_length, model_logits


@dataclass(frozen=True)
class GridJudgement:
    """The judge's record. Arrays: policy (S, A) (NaN rows: unvisited), transitions (S, S), occupancy (S,),
    visited (S,) bool. Masses: success, fell (into a hole), stopped (a non-move token), unfinished (at the
    horizon), pruned (dropped: <= max_pruned unless the history cap was hit, see ``exact``). histories: rows
    of model input expanded; horizon: moves."""

    success: float
    value: float
    policy_mse_opt: float
    tmatrix_mse_opt: float
    kl: float
    fell: float
    stopped: float
    unfinished: float
    pruned: float
    max_pruned: float
    policy: np.ndarray
    transitions: np.ndarray
    occupancy: np.ndarray
    visited: np.ndarray
    histories: int
    horizon: int

    @property
    def exact(self) -> bool:
        """True when the pruned mass stayed within max_pruned (no history cap was hit)."""
        return self.pruned <= self.max_pruned

    @property
    def metrics(self) -> dict[str, float]:
        """The study's metrics by ``metrics.METRICS`` name."""
        return {k: getattr(self, k) for k in ("success", "value", "policy_mse_opt", "tmatrix_mse_opt", "kl")}


def optimal_policy(task: GridTask) -> np.ndarray:
    """pi* of the task as the study defines it: softmax(Q* / temperature) (one-hot argmax at 0). Shape (S, A)."""
    sol = solve.value_iteration(task.mdp, gamma=task.config.gamma)
    return solve.optimal_action_probs(sol.Q, temperature=task.config.temperature)


@torch.no_grad()
def _move_probs(model: torch.nn.Module, prompt: list[int], histories: list[tuple[int, ...]], moves, batch_size: int):
    """P(move | prompt + history) for each history (all of one length) and the rest of the mass. -> (n, A), (n,)."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(histories), batch_size):
        chunk = [prompt + list(h) for h in histories[i : i + batch_size]]
        ids = torch.tensor(chunk, device=device)  # (n, P + 2t)
        logits = model_logits(model, input_ids=ids)[:, -1]  # (n, V)
        out.append(torch.softmax(logits.double(), -1)[:, list(moves)].cpu().numpy())  # (n, A)
    probs = np.concatenate(out)
    return probs, np.clip(1.0 - probs.sum(-1), 0.0, 1.0)


def judge(
    model: torch.nn.Module,
    tokenizer: Any,
    task: GridTask,
    max_pruned: float = 1e-6,
    horizon: int | None = None,
    batch_size: int = 256,
    max_histories: int = 20_000,
) -> GridJudgement:
    """Exact success, value and the study's policy metrics of ``model`` on ``task``, closed loop (module doc)."""
    if not 0.0 <= max_pruned < 1.0:
        raise ValueError(f"max_pruned must lie in [0, 1), got {max_pruned}")
    if max_histories < 1:
        raise ValueError(f"max_histories must be >= 1, got {max_histories}")
    H = task.horizon if horizon is None else int(horizon)
    if H < 1:
        raise ValueError(f"horizon must be >= 1, got {H}")
    mdp, gamma = task.mdp, task.config.gamma
    env = GridEnvironment([task], tokenizer)
    obs = [env.observation_id(task, s) for s in range(mdp.n_states)]
    prompt = list(tokenizer(task.prompt, add_special_tokens=False)["input_ids"])
    limit = context_length(model)
    if limit is not None and len(prompt) + 2 * H > limit:
        raise ValueError(
            f"judging {H} moves needs {len(prompt)} + 2 x {H} tokens; the model's context holds {limit} "
            f"(pass a smaller horizon)"
        )
    S, A = mdp.n_states, mdp.n_actions
    occ_sa, occ = np.zeros((S, A)), np.zeros(S)
    success = value = fell = stopped = pruned = 0.0
    frontier: dict[tuple[tuple[int, ...], int], float] = {}
    for s0 in np.flatnonzero(mdp.rho0 > 0).tolist():
        p = float(mdp.rho0[s0])
        if mdp.goal[s0]:
            success += p
        elif mdp.terminal[s0]:
            fell += p
        else:
            frontier[((), s0)] = p
    histories, budget = 0, max_pruned / H
    for t in range(H):
        if not frontier:
            break
        keys = sorted({h for h, _ in frontier})
        row = {h: i for i, h in enumerate(keys)}
        moves, rest = _move_probs(model, prompt, keys, env.action_token_ids, batch_size)  # (n, A), (n,)
        histories += len(keys)
        children: dict[tuple[tuple[int, ...], int], float] = {}
        for (h, s), p in frontier.items():
            pa = moves[row[h]]  # (A,)
            occ[s] += gamma**t * p
            occ_sa[s] += gamma**t * p * pa
            stopped += p * rest[row[h]]
            for a in range(A):
                for s2, ps in zip(mdp.next_states[s, a], mdp.probs[s, a], strict=True):
                    c = p * pa[a] * ps
                    if c == 0.0:
                        continue
                    if mdp.goal[s2]:
                        success += c
                        value += gamma**t * c
                    elif mdp.terminal[s2]:
                        fell += c
                    else:
                        key = (h + (env.action_token_ids[a], obs[int(s2)]), int(s2))
                        children[key] = children.get(key, 0.0) + c
        order = sorted(children, key=children.__getitem__)  # least likely first
        dropped = np.cumsum([children[k] for k in order])
        n_drop = max(int(np.searchsorted(dropped, budget, side="right")), len(order) - max_histories)
        pruned += float(dropped[n_drop - 1]) if n_drop else 0.0
        frontier = {k: children[k] for k in order[n_drop:]}
    unfinished = float(sum(frontier.values()))
    moved = occ_sa.sum(-1)  # (S,)
    visited = (moved > 0) & ~mdp.terminal  # (S,)
    policy = np.full((S, A), np.nan)
    policy[visited] = occ_sa[visited] / moved[visited, None]
    P = mdp.dense_P()  # (S, A, S)
    pi_star = optimal_policy(task)
    T = np.einsum("sa,sat->st", np.nan_to_num(policy), P)  # (S, S)
    T_star = np.einsum("sa,sat->st", pi_star, P)
    if visited.any():
        policy_mse = float(((policy[visited] - pi_star[visited]) ** 2).mean())
        tmatrix_mse = float(((T[visited] - T_star[visited]) ** 2).mean())
        kl = float(kl_rows(torch.as_tensor(pi_star[visited]), torch.as_tensor(policy[visited])).mean())
    else:
        policy_mse = tmatrix_mse = kl = float("nan")
    return GridJudgement(
        success=float(success),
        value=float(value),
        policy_mse_opt=policy_mse,
        tmatrix_mse_opt=tmatrix_mse,
        kl=kl,
        fell=float(fell),
        stopped=float(stopped),
        unfinished=unfinished,
        pruned=float(pruned),
        max_pruned=float(max_pruned),
        policy=policy,
        transitions=T,
        occupancy=occ,
        visited=visited,
        histories=histories,
        horizon=H,
    )
