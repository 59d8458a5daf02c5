"""What a study trains on and is measured against: the route-pair rule, trajectories as tensors, references.

    build_data(config)   map -> MDP -> value iteration -> pi* -> chosen / rejected trajectories (GridData)
    Paths                E members x N trajectories as padded tensors (states, actions, mask)
    blocked_map          the map the ``suboptimal`` base is fitted on (the chosen route's own tiles made holes)
    Reference            theta_0, theta*, pi* and the MDP as float64 tensors: what every method is measured against

The chosen trajectory is the optimal policy's most likely path and the rejected one a sub-optimal
route (``routes.chosen_and_rejected``), as App. B.2 of the paper describes for its two-route map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from . import lakes, metrics, routes, solve
from .config import StudyConfig, field_default
from .mdp import TabularMDP

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
    def from_trajectories(trajectories: Sequence[routes.Trajectory], device="cpu") -> Paths:
        """Route trajectories (``routes.Trajectory``) as Paths with E = 1, N = len(trajectories)."""
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
class GridData:
    """Everything the methods train on, as tensors on the study's device."""

    mdp: TabularMDP
    pi_star: np.ndarray  # (S, A)
    chosen: routes.Trajectory
    rejected: routes.Trajectory
    P: torch.Tensor  # (S, A, S) transition tensor in the study's dtype, for IFT's predicted next state
    route_pair: Paths  # (1, 2, T): trajectory 0 the chosen route, 1 the rejected one
    eye: torch.Tensor  # (S, S) one-hot state table

    @property
    def pair_states(self) -> torch.Tensor:
        """(2, T) int64: the states actions are taken in, row 0 chosen, row 1 rejected."""
        return self.route_pair.states[0, :, :-1]

    @property
    def pair_actions(self) -> torch.Tensor:
        """(2, T) int64."""
        return self.route_pair.actions[0]

    @property
    def pair_mask(self) -> torch.Tensor:
        """(2, T) bool."""
        return self.route_pair.mask[0]


@dataclass
class Reference:
    """What every method is measured against, on the study's device (float64 where exact).

    P (S, A, S), R (S, A), terminal / goal / rho0 (S,): the MDP. pi_star (S, A): pi*. base, star:
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
    star_T: torch.Tensor  # (E, S, S) T_pi of pi_theta* (Eq. 2)
    opt_T: torch.Tensor  # (S, S) T_pi of pi*
    preferred: torch.Tensor  # (S,) bool: tiles pi* visits (metrics.preferred_tiles)
    truly_pi: torch.Tensor | None = field(default=None)


def blocked_map(desc: Sequence[str], chosen: routes.Trajectory, rejected: routes.Trajectory) -> list[str]:
    """The map with the chosen route's own tiles (on the chosen route only, not S or G) turned into holes."""
    rows = [list(r) for r in desc]
    ncol = len(rows[0])
    for s in set(chosen.states[1:-1]) - set(rejected.states):
        rows[s // ncol][s % ncol] = "H"
    return ["".join(r) for r in rows]


def make_mdp(config: StudyConfig) -> TabularMDP:
    """The config's map as a TabularMDP."""
    return lakes.make_lake(config.map if isinstance(config.map, str) else list(config.map), slippery=config.slippery)


def build_data(config: StudyConfig, device: torch.device | str = "cpu") -> GridData:
    """Solve the map, derive pi*, pick the chosen (optimal) and rejected (sub-optimal) trajectories."""
    mdp = make_mdp(config)
    if config.route_pair == "two-route" and not routes.has_two_routes(mdp):
        raise ValueError(
            f"route_pair='two-route' needs a map whose frozen tiles form exactly two S->G routes of "
            f"different lengths; map {config.map!r} does not (use route_pair='auto')"
        )
    sol = solve.value_iteration(mdp, gamma=config.gamma)
    pi_star = solve.optimal_action_probs(sol.Q, temperature=config.temperature)  # (S, A)
    try:
        chosen, rejected = routes.chosen_and_rejected(mdp, gamma=config.gamma)
    except ValueError as exc:
        if config.gamma == 1 and "never reaches a goal" in str(exc):  # name the cause: the missing discount
            raise ValueError(
                f"gamma=1 (no discount) makes every move that keeps the goal reachable equally optimal, "
                f"so the greedy optimal policy stalls among tied actions: {exc}; use gamma < 1 "
                f"(default {field_default('gamma'):g}), e.g. --set gamma=0.99"
            ) from None
        raise
    dtype = DTYPES[config.dtype]
    return GridData(
        mdp=mdp,
        pi_star=pi_star,
        chosen=chosen,
        rejected=rejected,
        P=torch.as_tensor(mdp.dense_P(), dtype=dtype, device=device),
        route_pair=Paths.from_trajectories([chosen, rejected], device),
        eye=torch.eye(mdp.n_states, dtype=dtype, device=device),
    )


def policy_probs(params: dict, data: GridData, activation: str) -> torch.Tensor:
    """pi_theta(a | s) on every one-hot state, in float64 (differentiable). Shape: (E, S, A)."""
    from . import policy

    if params["W1"].shape[1] != data.eye.shape[0]:
        raise ValueError(f"params have {params['W1'].shape[1]} inputs, the map has {data.eye.shape[0]} states")
    lg = policy.table_logits(params, activation)  # (E, S, A)
    return torch.softmax(lg.double(), dim=-1)


def make_reference(config: StudyConfig, data: GridData, base: dict, star: dict) -> Reference:
    """The Reference of a study from its data, theta_0 and theta*."""
    from . import policy

    mdp, device = data.mdp, data.P.device
    with torch.no_grad():
        P = metrics.dense_transitions(mdp, device)
        pi_star = torch.as_tensor(data.pi_star, dtype=torch.float64, device=device)
        star_pi = policy_probs(star, data, config.activation)
        terminal, rho0 = torch.as_tensor(mdp.terminal, device=device), torch.as_tensor(mdp.rho0, device=device)
        return Reference(
            P=P,
            R=torch.as_tensor(mdp.R, device=device),
            terminal=terminal,
            goal=torch.as_tensor(mdp.goal, device=device),
            rho0=rho0,
            pi_star=pi_star,
            base=base,
            star=star,
            star_pi=star_pi,
            star_flat=policy.flatten_params(star).double(),
            base_flat=policy.flatten_params(base).double(),
            star_T=torch.einsum("esa,sat->est", star_pi, P),
            opt_T=torch.einsum("sa,sat->st", pi_star, P),
            preferred=metrics.preferred_tiles(P, rho0, terminal, pi_star, config.gamma),
        )
