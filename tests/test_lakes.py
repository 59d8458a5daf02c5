"""Frozen Lake maps (lakes.py: builders, gymnasium vs numpy, validation) and routes.py (routes, chosen / rejected)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from frozenlake_ift import lakes, routes, solve
from frozenlake_ift.lakes import ACTION_ARROWS, ACTION_NAMES, TWO_ROUTE_MAP, make_lake, state_to_rc, validate_desc
from strategies import lake_descs


def _same(a, b):
    np.testing.assert_array_equal(a.next_states, b.next_states)
    np.testing.assert_allclose(a.probs, b.probs, rtol=0, atol=1e-15)
    np.testing.assert_allclose(a.R, b.R, rtol=0, atol=1e-15)
    for f in ("terminal", "rho0", "goal"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert (a.shape, a.desc, a.name) == (b.shape, b.desc, b.name)


# ------------------------------------------------------------------ builders
RATES = [None, 0.0, 0.2, 1 / 3, 0.5, 0.9, 1.0]


@pytest.mark.parametrize(
    "name",
    [
        "4x4",
        "8x8",
        "two-route",
        "random:2:0",
        "random:9:3",
        "random:16:7",
        ["S", "F", "G"],
        ["SG"],
        ["SHG", "FFF"],
        ["G", "S"],
        ["SH", "FG"],
    ],
)
@pytest.mark.parametrize("slippery, rate", [(False, None)] + [(True, r) for r in RATES])
def test_numpy_builder_equals_gymnasium_model(name, slippery, rate):
    _same(make_lake(name, slippery, rate, builder="gym"), make_lake(name, slippery, rate, builder="numpy"))


@given(lake_descs(max_size=7), st.booleans(), st.sampled_from(RATES))
def test_numpy_builder_equals_gymnasium_model_on_generated_maps(desc, slippery, rate):
    _same(make_lake(desc, slippery, rate, builder="gym"), make_lake(desc, slippery, rate, builder="numpy"))


def test_4x4_model_by_hand():
    mdp = make_lake("4x4")
    assert mdp.shape == (4, 4) and mdp.desc[0] == "SFFF" and mdp.name == "4x4"
    assert mdp.rho0[0] == 1 and mdp.goal[15] and mdp.goal.sum() == 1
    assert mdp.terminal.tolist() == [c in "HG" for c in "".join(mdp.desc)]
    assert mdp.transition_prob(0, 0, 0) == 1.0  # left at the wall stays
    assert mdp.transition_prob(14, 2, 15) == 1.0 and mdp.R[14, 2] == 1.0  # right into G earns 1
    slip = make_lake("4x4", slippery=True)
    assert slip.name == "4x4-slippery"
    # left at S: up (wall) and left (wall) both stay -> summed 2/3; down 1/3
    assert slip.transition_prob(0, 0, 0) == pytest.approx(2 / 3)
    assert slip.transition_prob(0, 0, 4) == pytest.approx(1 / 3)
    assert slip.R[14, 2] == pytest.approx(1 / 3) and slip.R[14, 1] == pytest.approx(1 / 3)  # right / down(slip right)
    half = make_lake("4x4", slippery=True, success_rate=0.5)
    assert half.name == "4x4-slippery(0.5)" and half.transition_prob(14, 2, 15) == pytest.approx(0.5)
    assert make_lake("4x4", success_rate=0.5).transition_prob(14, 2, 15) == 1.0  # ignored when not slippery


def test_map_specs():
    assert make_lake("SFF,FHF,FFG").desc == ("SFF", "FHF", "FFG")
    assert make_lake(("SF", "FG")).name == "custom-2x2"
    r = make_lake("random:6:1")
    assert r.shape == (6, 6) and r.desc[0][0] == "S" and r.desc[-1][-1] == "G"
    assert make_lake("random:6:1").desc == r.desc  # seeded
    assert make_lake("random:6:1:1.0").desc == ("SFFFFF",) + ("FFFFFF",) * 4 + ("FFFFFG",)


def test_big_map_uses_numpy_builder_fast():
    mdp = make_lake(["S" + "F" * 99] + ["F" * 100] * 98 + ["F" * 99 + "G"], slippery=True)  # 10^4 states
    assert mdp.n_states == 10_000 and mdp.next_states.shape == (10_000, 4, 3)


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "desc, needle",
    [
        (["SFF", "FG"], r"same length, got lengths \[3, 2\] \(row 1 has 2 tiles"),
        (["FFF", "FFG"], "exactly one start tile 'S', found none"),
        (["SFS", "FFG"], r"exactly one start tile 'S', found 2 at \[\(0, 0\), \(0, 2\)\]"),
        (["SFF", "FFF"], "at least one goal tile 'G', found none"),
        (
            ["SXF", "FFG"],
            (
                r"unknown tile letter 'X' at row 0, column 1 of the map; allowed letters are S \(start\), "
                r"F \(frozen\), H \(hole\), G \(goal\)"
            ),
        ),
        (["SFH", "HHF", "FFG"], "goal 'G' is unreachable from the start 'S'"),
        ([], "at least one row"),
        ("SFG", "sequence of row strings"),
    ],
)
def test_validate_desc_errors(desc, needle):
    with pytest.raises(ValueError, match=needle):
        validate_desc(desc)
    if not isinstance(desc, str):
        with pytest.raises(ValueError, match=needle):
            make_lake(desc)


@pytest.mark.parametrize(
    "spec, kw, needle",
    [
        ("5x5", {}, r"unknown map '5x5'; allowed: '4x4', '8x8', 'two-route', 'random:SIZE:SEED\[:P\]'"),
        ("random:1:0", {}, "SIZE >= 2"),
        ("random:x:0", {}, "random:SIZE:SEED"),
        ("random:8", {}, "random:SIZE:SEED"),
        ("random:8:0:0", {}, r"P in \(0, 1\]"),
        ("random:8:-1", {}, "SEED >= 0"),
        ("4x4", {"success_rate": 1.5}, r"success_rate must be a probability in \[0, 1\], got 1.5"),
        ("4x4", {"builder": "fast"}, "builder must be 'auto', 'gym' or 'numpy', got 'fast'"),
    ],
)
def test_make_lake_errors(spec, kw, needle):
    with pytest.raises(ValueError, match=needle):
        make_lake(spec, **kw)


def test_validate_returns_tuple():
    assert validate_desc(["SF", "FG"]) == ("SF", "FG")


# ------------------------------------------------------------------ geometry and routes
def test_names_and_geometry():
    assert ACTION_NAMES == ("left", "down", "right", "up") and ACTION_ARROWS == ("←", "↓", "→", "↑")
    mdp = make_lake("8x8")
    assert state_to_rc(mdp, 0) == (0, 0) and state_to_rc(mdp, 63) == (7, 7) and state_to_rc(mdp, 10) == (1, 2)
    with pytest.raises(ValueError, match=r"state must lie in \[0, 63\], got 64"):
        state_to_rc(mdp, 64)
    t = routes.Trajectory((0, 1, 2), (2, 2))
    assert len(t) == 2 and t.states == (0, 1, 2)
    with pytest.raises(ValueError, match="needs 3 states, got 2"):
        routes.Trajectory((0, 1), (2, 2))


def _check_route(mdp, tr):
    nxt = lakes.intended_next(mdp)
    assert tr.states[0] == int(np.flatnonzero(mdp.rho0)[0]) and mdp.goal[tr.states[-1]]
    assert len(set(tr.states)) == len(tr.states)  # simple
    assert not mdp.terminal[list(tr.states[:-1])].any()
    assert all(nxt[s, a] == t for s, a, t in zip(tr.states, tr.actions, tr.states[1:], strict=False))


def test_two_route_map():
    mdp = make_lake("two-route")
    assert mdp.desc == TWO_ROUTE_MAP and validate_desc(TWO_ROUTE_MAP) == TWO_ROUTE_MAP
    assert mdp.next_states.shape[2] == 1  # deterministic
    found = routes.routes(mdp)
    assert [len(r) for r in found] == [6, 10] and routes.has_two_routes(mdp)
    chosen, rejected = routes.chosen_and_rejected(mdp)
    assert chosen == found[0] and rejected == found[1]
    assert chosen.actions == (2, 2, 2, 2, 1, 1) and rejected.actions == (1, 1, 1, 1, 2, 2, 2, 2, 3, 3)
    for tr in found:
        _check_route(mdp, tr)


def test_routes_on_4x4_and_limits():
    mdp = make_lake("4x4")
    found = routes.routes(mdp)
    assert [len(r) for r in found] == [6, 6, 6, 8]
    assert [r.states for r in found] == sorted(r.states for r in found[:3]) + [found[3].states]
    assert not routes.has_two_routes(mdp)
    assert not routes.has_two_routes(make_lake(["SFF", "FHF", "FFG"]))  # two routes, same length
    assert routes.has_two_routes(make_lake(["SFFF", "FHHF", "FHHG", "FFFF"]))  # a ring: routes of 5 and 7 moves
    assert not routes.has_two_routes(make_lake(["SFFF", "FHHF", "FHHF", "FFHG"]))  # the left branch is a dead end
    with pytest.raises(ValueError, match="more than max_routes=3 simple routes"):
        routes.routes(mdp, max_routes=3)
    with pytest.raises(ValueError, match="more than max_routes=10000"):
        routes.routes(make_lake("8x8"))


@given(lake_descs(max_size=4), st.booleans())
def test_routes_are_valid_and_sorted(desc, slippery):
    mdp = make_lake(desc, slippery)
    found = routes.routes(mdp)
    assert found  # validate_desc guarantees a path, hence a simple route
    for tr in found:
        _check_route(mdp, tr)
    assert [(len(t), t.states) for t in found] == sorted((len(t), t.states) for t in found)
    assert len({t.states for t in found}) == len(found)


# ------------------------------------------------------------------ chosen and rejected
@pytest.mark.parametrize("name", ["two-route", "4x4", "8x8", "random:8:0", "random:12:5", "random:20:2"])
@pytest.mark.parametrize("slippery", [False, True])
def test_chosen_and_rejected_on_gymnasium_maps(name, slippery):
    mdp = make_lake(name, slippery)
    sol = solve.value_iteration(mdp, 0.99, tol=1e-12)
    chosen, rejected = routes.chosen_and_rejected(mdp, gamma=0.99)
    # chosen: walks the greedy policy, every step has positive probability, ends at G
    assert chosen.actions == tuple(int(sol.policy[s]) for s in chosen.states[:-1])
    assert mdp.goal[chosen.states[-1]] and len(set(chosen.states)) == len(chosen.states)
    assert all(
        mdp.transition_prob(s, a, t) > 0
        for s, a, t in zip(chosen.states, chosen.actions, chosen.states[1:], strict=False)
    )
    # rejected: a route with at least one sub-optimal action
    _check_route(mdp, rejected)
    gaps = [sol.V[s] - sol.Q[s, a] for s, a in zip(rejected.states, rejected.actions, strict=False)]
    assert max(gaps) > 1e-9
    if not slippery:  # deterministic: strictly longer, strictly lower return
        assert len(rejected) > len(chosen)
        assert 0.99 ** (len(rejected) - 1) < 0.99 ** (len(chosen) - 1) == pytest.approx(sol.V[chosen.states[0]])


def test_rejected_on_4x4_is_the_long_route():
    mdp = make_lake("4x4")
    chosen, rejected = routes.chosen_and_rejected(mdp)
    assert len(chosen) == 6 and rejected == routes.routes(mdp)[-1]


def test_no_second_route_is_a_clear_error():
    with pytest.raises(ValueError, match="no route to G that makes a sub-optimal move"):
        routes.chosen_and_rejected(make_lake(["SFFG"]))
    with pytest.raises(ValueError, match="no route to G that makes a sub-optimal move"):
        routes.chosen_and_rejected(make_lake(["SFH", "HFH", "HFG"]))


def _simple_paths(mdp, policy, s, seen):
    """All simple paths from s to a goal under the deterministic policy, with their probability."""
    if mdp.goal[s]:
        yield (s,), 1.0
        return
    if mdp.terminal[s]:
        return
    a = policy[s]
    for t, p in zip(mdp.next_states[s, a], mdp.probs[s, a], strict=True):
        if p > 0 and t not in seen:
            for rest, q in _simple_paths(mdp, policy, int(t), seen | {int(t)}):
                yield (s,) + rest, p * q


@pytest.mark.parametrize("name", ["4x4", "two-route", ["SFF", "FFF", "FFG"], "random:5:3"])
def test_most_likely_path_is_the_most_probable_simple_path(name):
    mdp = make_lake(name, slippery=True)
    policy = solve.value_iteration(mdp, 0.95).policy
    path = routes.most_likely_path(mdp, policy)
    best = max(p for _, p in _simple_paths(mdp, policy, 0, {0}))
    pi = np.eye(4)[policy]
    assert mdp.path_probability(path.states, pi) == pytest.approx(best, rel=1e-12)
    # greedy next-state following would loop at S on the slippery 4x4 map (left stays with 2/3)
    if name == "4x4":
        assert policy[0] == 0 and mdp.transition_prob(0, 0, 0) == pytest.approx(2 / 3) and path.states[1] != 0


def test_most_likely_path_errors():
    mdp = make_lake("4x4")
    with pytest.raises(ValueError, match=r"integer actions of shape \(16,\)"):
        routes.most_likely_path(mdp, np.zeros(15, dtype=int))
    with pytest.raises(ValueError, match="never reaches a goal"):
        routes.most_likely_path(mdp, np.zeros(16, dtype=int))  # always left


def test_render():
    mdp = make_lake("two-route")
    chosen, _ = routes.chosen_and_rejected(mdp)
    grid = routes.render_path(mdp, chosen).splitlines()
    assert grid[0] == "→ → → → ↓" and grid[1] == "· H H H ↓" and grid[2] == "· H H H G"
    policy = routes.render_policy(mdp, solve.value_iteration(mdp, 0.99).policy).splitlines()
    assert policy[0] == "→ → → → ↓" and len(policy) == 5
    with pytest.raises(ValueError, match=r"shape \(25,\)"):
        routes.render_policy(mdp, [0, 1])
