"""The built-in MDP sources, as registry records (functions named by "module:function": nothing heavy imported)."""

from __future__ import annotations

from .registry import SOURCES, MDPSource, register_env

_M = "frozenlake_ift.mdps"
BUILTIN_SOURCES = (
    MDPSource(
        "lake",
        "frozenlake_ift.lakes:build_source",
        "frozenlake_ift.lakes:check_source",
        default_rule="second-route",
        example="lake",
        description="a Frozen Lake map: StudyConfig's map and slippery (--map, --slippery); the default",
    ),
    MDPSource(
        "gym",
        f"{_M}.gym_text:build",
        f"{_M}.gym_text:check",
        example="gym:CliffWalking-v1",
        description="gym:ID[,key=value...]: a gymnasium env with an exact model P (toy text: CliffWalking, Taxi, ...)",
    ),
    MDPSource(
        "bandit",
        f"{_M}.bandit:build",
        f"{_M}.bandit:check",
        example="bandit:1,0.5,0",
        description="bandit:R1,R2,...: one state, K arms paying R_k, the episode ends after one pull",
    ),
    MDPSource(
        "chain",
        f"{_M}.chain:build",
        f"{_M}.chain:check",
        example="chain:8:0.1",
        description="chain:N[:P]: N states in a line, left / right slipping with probability P, reward at the end",
    ),
    MDPSource(
        "tokens",
        f"{_M}.tokens:build",
        f"{_M}.tokens:check",
        example="tokens:2:3",
        description="tokens:V:N[:TARGET]: the paper's MDP over token prefixes; the target sequence pays 1",
    ),
    MDPSource(
        "file",
        f"{_M}.npz:build",
        f"{_M}.npz:check",
        example="file:mdp.npz",
        description="file:PATH.npz: your own arrays P (S, A, S), R (S, A), terminal (S,), rho0 (S,) [, goal (S,)]",
    ),
)

for _source in BUILTIN_SOURCES:
    register_env(_source, replace=True)
SOURCES.seal_builtins()
