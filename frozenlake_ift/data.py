"""What a study trains on and is measured against: the MDP, its trajectories as tensors, references.

    build_data(config, mdp=None)  env -> MDP -> value iteration -> pi* -> chosen / rejected trajectories (StudyData)
    Paths                         E members x N trajectories as padded tensors (states, actions, mask)
    blocked_mdp                   the MDP the ``suboptimal`` base is fitted on (the chosen trajectories'
                                  own states made absorbing: on a lake, the chosen route's tiles made holes)
    Reference                     theta_0, theta*, pi* and the MDP as float64 tensors: what every method is
                                  measured against

The MDP comes from the config's MDP source (``mdps``: ``env``), the trajectories from its data rule
(``data_rules``): chosen = pi*'s most likely trajectory from each start, rejected by the rule
``negatives`` names (on a lake: the second route, as App. B.2 of the paper describes for its
two-route map). This module knows no grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from . import data_rules, metrics
from .config import StudyConfig
from .mdp import TabularMDP
from .mdps import env_source, make_env
from .trajectories import Trajectory

DTYPES = {"float32": torch.float32, "float64": torch.float64}  # StudyConfig.dtype -> torch dtype


@dataclass(frozen=True)
class Paths:
    """N trajectories for each of E members, padded to a common length T.

    states: Shape (E, N, T+1) int64, s_0 .. s_T (after a trajectory ends its last state repeats).
    actions: Shape (E, N, T) int64, a_t (0 where not taken). mask: Shape (E, N, T) bool, step t taken.
    Every trajectory has at least one step.
    """

    states: torch.Tensor
    actions: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self) -> None:
        E, N, T = self.actions.shape
        if tuple(self.states.shape) != (E, N, T + 1) or tuple(self.mask.shape) != (E, N, T):
            raise ValueError(
                f"Paths: states must be (E, N, T+1) and mask (E, N, T) for actions {(E, N, T)}, got "
                f"states {tuple(self.states.shape)}, mask {tuple(self.mask.shape)}"
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """(E, N, T)."""
        E, N, T = self.actions.shape
        return E, N, T

    def expand(self, E: int) -> Paths:
        """The same trajectories for E members (from a Paths with E = 1; a view, no copy)."""
        if self.shape[0] == E:
            return self
        if self.shape[0] != 1:
            raise ValueError(f"can only expand Paths with E = 1 to E = {E}, got E = {self.shape[0]}")
        return Paths(self.states.expand(E, -1, -1), self.actions.expand(E, -1, -1), self.mask.expand(E, -1, -1))

    def shared(self) -> Paths:
        """The E = 1 trajectories when every member has the same ones by construction (E = 1, or an
        ``expand``-ed view: stride 0 on the member axis), else self. Lets a batch build per-path
        tensors once and broadcast them over the members."""
        if self.shape[0] == 1 or all(t.stride(0) == 0 for t in (self.states, self.actions, self.mask)):
            return Paths(self.states[:1], self.actions[:1], self.mask[:1])
        return self

    def repeat(self, n: int) -> Paths:
        """Each member's trajectories repeated n times along N (pairs one chosen route with n negatives)."""
        return Paths(self.states.repeat(1, n, 1), self.actions.repeat(1, n, 1), self.mask.repeat(1, n, 1))

    def pad_to(self, T: int) -> Paths:
        """Pad (never cut) to T steps: masked steps, the last state repeated."""
        E, N, T0 = self.shape
        if T < T0:
            raise ValueError(f"cannot pad {T0} steps to {T}")
        if T == T0:
            return self
        extra = T - T0
        return Paths(
            torch.cat([self.states, self.states[..., -1:].expand(E, N, extra)], dim=-1),
            torch.cat([self.actions, self.actions.new_zeros(E, N, extra)], dim=-1),
            torch.cat([self.mask, self.mask.new_zeros(E, N, extra)], dim=-1),
        )

    def cat(self, other: Paths) -> Paths:
        """Both sets of trajectories along N, padded to the longer T."""
        T = max(self.shape[2], other.shape[2])
        a, b = self.pad_to(T), other.pad_to(T)
        return Paths(
            torch.cat([a.states, b.states], 1), torch.cat([a.actions, b.actions], 1), torch.cat([a.mask, b.mask], 1)
        )

    def split(self, n: int) -> tuple[Paths, Paths]:
        """The first n trajectories of each member and the rest."""
        return (
            Paths(self.states[:, :n], self.actions[:, :n], self.mask[:, :n]),
            Paths(self.states[:, n:], self.actions[:, n:], self.mask[:, n:]),
        )

    def trimmed(self) -> Paths:
        """Cut trailing steps that no trajectory takes (at least one step stays)."""
        taken = self.mask.any(dim=(0, 1)).nonzero()
        T = int(taken.max()) + 1 if taken.numel() else 1
        return Paths(self.states[..., : T + 1], self.actions[..., :T], self.mask[..., :T])

    @staticmethod
    def from_trajectories(trajectories: Sequence[Trajectory], device="cpu") -> Paths:
        """Trajectories (``trajectories.Trajectory``) as Paths with E = 1, N = len(trajectories)."""
        T = max(len(t) for t in trajectories)
        states = torch.empty((1, len(trajectories), T + 1), dtype=torch.long)
        actions = torch.zeros((1, len(trajectories), T), dtype=torch.long)
        mask = torch.zeros((1, len(trajectories), T), dtype=torch.bool)
        for i, t in enumerate(trajectories):
            n = len(t)
            states[0, i, : n + 1] = torch.tensor(t.states[: n + 1])
            states[0, i, n + 1 :] = t.states[n]
            actions[0, i, :n] = torch.tensor(t.actions)
            mask[0, i, :n] = True
        return Paths(states.to(device), actions.to(device), mask.to(device))


@dataclass
class StudyData:
    """Everything the methods train on, as tensors on the study's device.

    mdp, pi_star (S, A); chosen_all / rejected_all: the chosen and rejected trajectories (one chosen
    per start state; rejected one per chosen, or one for all); starts: their start states;
    route_pair: both as Paths (1, Nc + Nr, T), the chosen first (``chosen_paths`` / ``rejected_paths``
    split them); P (S, A, S) in the study's dtype, for IFT's predicted next state; eye (S, S) one-hot
    states; succ, succ_p (S, A, K): the same model sparse (what inputs use above ``policy.SPARSE_STATES``).
    """

    mdp: TabularMDP
    pi_star: np.ndarray  # (S, A)
    chosen_all: tuple[Trajectory, ...]
    rejected_all: tuple[Trajectory, ...]
    P: torch.Tensor  # (S, A, S) transition tensor in the study's dtype, for IFT's predicted next state
    route_pair: Paths  # (1, Nc + Nr, T): the chosen trajectories, then the rejected ones
    eye: torch.Tensor  # (S, S) one-hot state table
    starts: tuple[int, ...] = ()
    succ: torch.Tensor | None = None  # (S, A, K) int64: the successors of each move (the sparse model)
    succ_p: torch.Tensor | None = None  # (S, A, K) their probabilities, in the study's dtype
    v_star: float = 0.0  # V*(rho0): the optimal discounted return at the start
    source: str = "lake"  # where the MDP came from: the config's env spec, or "python" (passed to build_data)

    @property
    def chosen(self) -> Trajectory:
        """The (first) chosen trajectory: pi*'s most likely path from the (first) start."""
        return self.chosen_all[0]

    @property
    def rejected(self) -> Trajectory:
        """The (first) rejected trajectory."""
        return self.rejected_all[0]

    @property
    def chosen_paths(self) -> Paths:
        """The chosen trajectories, Paths (1, Nc, T)."""
        return self.route_pair.split(len(self.chosen_all))[0]

    @property
    def rejected_paths(self) -> Paths:
        """The rejected trajectories, Paths (1, Nr, T)."""
        return self.route_pair.split(len(self.chosen_all))[1]

    @property
    def pair_states(self) -> torch.Tensor:
        """(Nc + Nr, T) int64: the states actions are taken in, the chosen rows first."""
        return self.route_pair.states[0, :, :-1]

    @property
    def pair_actions(self) -> torch.Tensor:
        """(Nc + Nr, T) int64."""
        return self.route_pair.actions[0]

    @property
    def pair_mask(self) -> torch.Tensor:
        """(Nc + Nr, T) bool."""
        return self.route_pair.mask[0]


GridData = StudyData  # the name of earlier versions (the study's data was a lake's)


@dataclass
class Reference:
    """What every method is measured against, on the study's device (float64 where exact).

    P (S, A, S), R (S, A), terminal / goal / rho0 (S,): the MDP; reward (S, A, S): the reward of each
    transition r(s, a, s') (a lake pays 1 on entering G). pi_star (S, A): pi*. v_star: V*(rho0). base, star:
    the parameter dicts of theta_0 and theta* (E members). star_pi (E, S, A): pi_theta*.
    star_flat, base_flat (E, D): flattened parameters. truly_pi (E, S, A) or None: the final
    policy of the ``truly`` method, once it has trained (the Table 1 comparison metric).
    """

    P: torch.Tensor
    R: torch.Tensor
    terminal: torch.Tensor
    goal: torch.Tensor
    rho0: torch.Tensor
    pi_star: torch.Tensor
    base: dict
    star: dict
    star_pi: torch.Tensor
    star_flat: torch.Tensor
    base_flat: torch.Tensor
    star_T: torch.Tensor  # (E, N, S) T_pi of pi_theta* (Eq. 2) on the N non-terminal rows
    opt_T: torch.Tensor  # (N, S) T_pi of pi* on the non-terminal rows
    solve_states: torch.Tensor  # (S,) bool: the non-terminal states reachable from rho0, where values are solved
    preferred: torch.Tensor  # (S,) bool: tiles pi* visits (metrics.preferred_tiles)
    gram: torch.Tensor | None = None  # (N, A, A) P[s] P[s]^T of the non-terminal rows, above policy.SPARSE_STATES
    solve_model: metrics.SolveModel | None = None  # the value systems' model, above policy.SPARSE_STATES
    reward: torch.Tensor | None = None  # (S, A, S) float64: r(s, a, s'), what a sampled step earns (online methods)
    v_star: float = 0.0  # V*(rho0): the optimal return at the start (value_ratio)
    truly_pi: torch.Tensor | None = field(default=None)


def blocked_mdp(data: StudyData) -> TabularMDP:
    """The MDP the ``suboptimal`` base is fitted on: the states only the chosen trajectories visit (not a
    start, not terminal, not on a rejected trajectory) made absorbing (``TabularMDP.with_absorbing``).

    On a lake these are the chosen route's own tiles turned into holes: the same model ``make_lake``
    builds from that map. ValueError when nothing is left to block (a bandit) or no goal stays reachable.
    """
    mdp = data.mdp
    keep = {s for t in data.rejected_all for s in t.states} | set(data.starts)
    own = sorted({s for t in data.chosen_all for s in t.states if not mdp.terminal[s]} - keep)
    if not own:
        raise ValueError(
            f"base='suboptimal' blocks the states only the chosen trajectories visit, and on {mdp.name!r} there "
            f"are none; use base='random' or 'uniform'"
        )
    blocked = mdp.with_absorbing(own, name=f"{mdp.name} (chosen states blocked)")
    if mdp.goal.any() and not _reaches(blocked, data.starts):
        raise ValueError(
            f"base='suboptimal' blocks the chosen route's own tiles, which leaves {mdp.name!r} without a "
            f"route to G from the start; use base='random' or 'uniform'"
        )
    return blocked


def _reaches(mdp: TabularMDP, starts) -> bool:
    """Whether a goal is reachable (with positive probability) from every state in ``starts``."""
    succ: list[set[int]] = [set() for _ in range(mdp.n_states)]
    for s, a, k in zip(*np.nonzero(mdp.probs > 0), strict=True):
        if not mdp.terminal[s]:
            succ[int(s)].add(int(mdp.next_states[s, a, k]))
    for start in starts:
        seen, todo, found = {int(start)}, [int(start)], False
        while todo and not found:
            s = todo.pop()
            found = bool(mdp.goal[s])
            for t in succ[s] - seen:
                seen.add(t)
                todo.append(t)
        if not found:
            return False
    return True


def reachable(mdp: TabularMDP) -> np.ndarray:
    """The states some policy reaches from rho0's support with positive probability, Shape (S,) bool.

    A softmax policy gives every action positive probability, so it reaches exactly these: the exact
    value and success of a start need only them (Taxi: 400 of 496 non-terminal states).
    """
    succ: list[set[int]] = [set() for _ in range(mdp.n_states)]
    for s, a, k in zip(*np.nonzero(mdp.probs > 0), strict=True):
        if not mdp.terminal[s]:
            succ[int(s)].add(int(mdp.next_states[s, a, k]))
    seen = set(np.flatnonzero(mdp.rho0 > 0).tolist())
    todo = list(seen)
    while todo:
        for t in succ[todo.pop()] - seen:
            seen.add(t)
            todo.append(t)
    out = np.zeros(mdp.n_states, dtype=bool)
    out[list(seen)] = True
    return out


def make_mdp(config: StudyConfig) -> TabularMDP:
    """The config's MDP (``config.env``; the default is the lake of ``config.map`` and ``config.slippery``)."""
    return make_env(config.env, config)


def build_data(config: StudyConfig, device: torch.device | str = "cpu", mdp: TabularMDP | None = None) -> StudyData:
    """Solve the MDP, derive pi*, pick the chosen (optimal) and rejected trajectories (``data_rules``).

    ``mdp``: a TabularMDP of your own instead of the config's ``env`` (its data rule is then
    ``second-best`` for ``negatives="fixed"``, ``second-route`` if it is a lake map).
    """
    given = mdp
    if mdp is None:
        mdp = make_mdp(config)
        default_rule = env_source(config.env).default_rule
    elif not isinstance(mdp, TabularMDP):
        raise TypeError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    else:
        default_rule = "second-route" if mdp.desc is not None else "second-best"
    plan = data_rules.make_plan(mdp, config)
    rejected = data_rules.rejected_trajectories(plan, config, default_rule)
    dtype = DTYPES[config.dtype]
    return StudyData(
        mdp=mdp,
        pi_star=plan.pi_star,
        chosen_all=plan.chosen,
        rejected_all=rejected,
        P=torch.as_tensor(mdp.dense_P(), dtype=dtype, device=device),
        route_pair=Paths.from_trajectories(list(plan.chosen) + list(rejected), device),
        eye=torch.eye(mdp.n_states, dtype=dtype, device=device),
        starts=plan.starts,
        succ=torch.as_tensor(mdp.next_states, device=device),
        succ_p=torch.as_tensor(mdp.probs, dtype=dtype, device=device),
        v_star=float(mdp.rho0 @ plan.Q.max(1)),
        source=config.env if given is None else "python",
    )


def policy_probs(params: dict, data: StudyData, activation: str) -> torch.Tensor:
    """pi_theta(a | s) on every one-hot state, in float64 (differentiable). Shape: (E, S, A)."""
    from . import policy

    if params["W1"].shape[1] != data.eye.shape[0]:
        raise ValueError(f"params have {params['W1'].shape[1]} inputs, the MDP has {data.eye.shape[0]} states")
    lg = policy.table_logits(params, activation)  # (E, S, A)
    return torch.softmax(lg.double(), dim=-1)


def make_reference(config: StudyConfig, data: StudyData, base: dict, star: dict) -> Reference:
    """The Reference of a study from its data, theta_0 and theta*."""
    from . import policy

    mdp, device = data.mdp, data.P.device
    with torch.no_grad():
        P = metrics.dense_transitions(mdp, device)
        pi_star = torch.as_tensor(data.pi_star, dtype=torch.float64, device=device)
        star_pi = policy_probs(star, data, config.activation)
        terminal, rho0 = torch.as_tensor(mdp.terminal, device=device), torch.as_tensor(mdp.rho0, device=device)
        R, goal = torch.as_tensor(mdp.R, device=device), torch.as_tensor(mdp.goal, device=device)
        solve = torch.as_tensor(reachable(mdp) & ~mdp.terminal, device=device)
        large = mdp.n_states > policy.SPARSE_STATES  # the sparse forms of the metrics (equal up to rounding)
        return Reference(
            P=P,
            R=R,
            terminal=terminal,
            goal=goal,
            rho0=rho0,
            pi_star=pi_star,
            base=base,
            star=star,
            star_pi=star_pi,
            star_flat=policy.flatten_params(star).double(),
            base_flat=policy.flatten_params(base).double(),
            star_T=metrics.state_matrix(P, star_pi)[:, ~terminal],
            opt_T=torch.einsum("sa,sat->st", pi_star, P)[~terminal],
            solve_states=solve,
            gram=metrics.tmatrix_gram(P[~terminal]) if large else None,
            solve_model=metrics.solve_model(P, R, goal, rho0, solve) if large else None,
            preferred=metrics.preferred_tiles(P, rho0, terminal, pi_star, config.gamma),
            reward=torch.as_tensor(mdp.dense_rewards(), device=device),
            v_star=data.v_star,
        )
