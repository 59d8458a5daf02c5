"""Figures: every plot function on a small real study, on synthetic results of other map shapes,
and save_figures' files (valid PNG / SVG, written whole or not at all)."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from frozenlake_ift import plots, results

METHODS = ("sft", "ift", "dpo", "orpo")
MOVES = ((0, -1), (1, 0), (0, 1), (-1, 0))  # (drow, dcol) of actions 0=L, 1=D, 2=R, 3=U


def _step(desc, s, a):
    nrow, ncol = len(desc), len(desc[0])
    r, c = divmod(s, ncol)
    r2, c2 = min(max(r + MOVES[a][0], 0), nrow - 1), min(max(c + MOVES[a][1], 0), ncol - 1)
    return r2 * ncol + c2


def _route(desc, states):
    acts = []
    for s, t in itertools.pairwise(states):
        acts.append(next(a for a in range(4) if _step(desc, s, a) == t))
    return {"states": list(states), "actions": acts}


def synthetic_results(desc, chosen, rejected, seeds=5, n_evals=11, slippery=False, seed=0) -> dict:
    """A results dict in the results.json layout, with plausible made-up curves (no study run)."""
    rng = np.random.default_rng(seed)
    flat = "".join(desc)
    S, ncol = len(flat), len(desc[0])
    terminal = np.array([ch in "HG" for ch in flat])
    goal = flat.index("G")
    dist = np.full(S, 1e3)  # BFS distance to the goal over frozen tiles
    dist[goal], queue = 0, deque([goal])
    while queue:
        t = queue.popleft()
        for s in range(S):
            if not terminal[s] and dist[s] > dist[t] + 1 and any(_step(desc, s, a) == t for a in range(4)):
                dist[s] = dist[t] + 1
                queue.append(s)
    q = np.array(
        [[-dist[_step(desc, s, a)] - (flat[_step(desc, s, a)] == "H") * 1e3 for a in range(4)] for s in range(S)]
    )
    pi = np.exp((q - q.max(1, keepdims=True)) / 0.7)
    pi /= pi.sum(1, keepdims=True)
    pi[terminal] = 0.25
    steps = np.linspace(0, 100, n_evals).round().astype(int).tolist()
    t = np.asarray(steps, float)[:, None] / 100
    curves, occ, explored = {}, {}, {}
    for i, m in enumerate(METHODS):
        rate = (1.0, 2.5, 6.0, 1.5)[i]

        def noise(scale):
            return np.exp(rng.normal(0, scale, (n_evals, seeds)))

        curves[m] = {
            "param_mse": (0.05 * np.exp(-rate * t) + 0.002) * noise(0.15),
            "policy_mse": (0.1 * np.exp(-2 * rate * t) + 1e-4) * noise(0.3),
            "policy_mse_opt": (0.1 * np.exp(-2 * rate * t) + 2e-4) * noise(0.3),
            "kl": (1.2 * np.exp(-2 * rate * t) + 1e-3) * noise(0.3),
            "success": np.clip(1 - np.exp(-rate * 3 * t) + rng.normal(0, 0.05, (n_evals, seeds)), 0, 1),
            "value": 0.5 * (1 - np.exp(-rate * t)) * noise(0.05),
            "explored": np.ceil((len(chosen) + 2 * i) * np.minimum(1, 20 * t)) + rng.integers(0, 2, (n_evals, seeds)),
            "cosine": np.tanh(rate * t) * noise(0.1),
            "loss": np.exp(-rate * t) * noise(0.1),
        }
        curves[m] = {k: v.tolist() for k, v in curves[m].items()}
        o = rng.random((seeds, S)) ** 6
        o[:, chosen] += 1.0 + i
        o[:, goal] += 3
        occ[m] = (o / o.sum(1, keepdims=True)).tolist()
        e = np.zeros((seeds, S), int)
        e[:, chosen[:-1]] = 1
        if m in ("dpo", "orpo"):
            e[:, rejected[:-1]] = 1
        e[:, rng.integers(0, S, 3)] |= rng.random((seeds, 3)) < 0.5
        explored[m] = e.tolist()
    res = {
        "config": {
            "map": "synthetic",
            "slippery": slippery,
            "base": "random",
            "seeds": seeds,
            "temperature": 0.05,
            "gamma": 0.95,
        },
        "map": {
            "desc": list(desc),
            "shape": [len(desc), ncol],
            "chosen": _route(desc, chosen),
            "rejected": _route(desc, rejected),
            "pi_star": pi.tolist(),
            "terminal": terminal.astype(int).tolist(),
        },
        "fit": {"kl": [1e-3] * seeds, "star_success": [0.98] * seeds, "base_success": [0.1] * seeds},
        "steps": steps,
        "curves": curves,
        "final_occupancy": occ,
        "explored": explored,
    }
    res["summary"], res["ranking"] = results.summarize(
        {m: {k: np.asarray(v) for k, v in mc.items()} for m, mc in curves.items()}
    )
    return res


WIDE_8 = (
    ["SFFFFFFF", "FHHHHHHF", "FFFFHFFF", "HHHFHFHH", "FFFFFFFF", "FHHHHFHF", "FFFFFFFG", "HHHHHHHH"],
    [0, 1, 2, 3, 4, 5, 6, 7, 15, 23, 22, 21, 29, 37, 45, 53, 54, 55],
    [0, 8, 16, 17, 18, 19, 27, 35, 36, 37, 38, 39, 47, 55],
)


@pytest.fixture(scope="module")
def real_result():
    """A small real study: 2 seeds, 10 steps."""
    from frozenlake_ift.study import StudyConfig, run_study

    return run_study(StudyConfig(seeds=2, steps=10, eval_every=5, device="cpu"))


@pytest.fixture(scope="module")
def real(real_result):
    """The small study as the dict that results.json holds."""
    return results.to_dict(real_result)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _texts(fig):
    return " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


def test_import_does_not_pull_in_matplotlib():
    code = "import sys, frozenlake_ift.plots; assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_curves_on_real_study(real):
    fig = plots.plot_curves(real)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    present = [k for k in plots.DEFAULT_METRICS if k in real["curves"]["sft"]]
    # policy_mse_truly: only with truly; value_ratio: only on MDPs without goal states (a lake has G)
    assert len(visible) == len(present) == len(plots.DEFAULT_METRICS) - 2
    text = _texts(fig)
    for m in real["curves"]:
        assert m.upper() in text
    assert "2 seeds" in text and "base policy random" in text
    for ax in visible:  # one line per method (plus an optional reference line)
        assert len(ax.lines) >= len(real["curves"])
    one = plots.plot_curves(real, metrics=["kl"])
    assert len([ax for ax in one.axes if ax.get_visible()]) == 1
    with pytest.raises(ValueError, match="not_a_metric"):
        plots.plot_curves(real, metrics=["kl", "not_a_metric"])


def test_explored_map_occupancy_on_real_study(real):
    boards = [ax for ax in plots.plot_explored(real).axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert len(boards) == len(real["explored"])
    fig = plots.plot_map(real)
    ax = fig.axes[0]
    nonterminal = int(np.sum(1 - np.asarray(real["map"]["terminal"])))
    assert len(ax.patches) >= nonterminal  # at least one pi* arrow per non-terminal tile
    assert "chosen route" in _texts(fig) and "rejected route" in _texts(fig)
    plots.plot_occupancy(real)


def test_method_colours_are_consistent(real):
    fig = plots.plot_curves(real, metrics=["kl", "success"])
    for ax in fig.axes[:2]:
        colours = {line.get_label(): line.get_color() for line in ax.lines}
        for m in real["curves"]:
            assert colours[m.upper()] == plots.method_color(m)


def test_synthetic_8x8_one_seed_and_method_subsets(tmp_path, monkeypatch):
    res = synthetic_results(*WIDE_8, seeds=1)  # another map shape; one seed: no CI band, must still draw
    plots.plot_curves(res).savefig(tmp_path / "curves.png", dpi=20)
    with monkeypatch.context() as mp:  # the map-shaped figures, drawn in full
        mp.setattr(plots, "FIGURES", {k: plots.FIGURES[k] for k in ("explored", "map", "occupancy")})
        paths = plots.save_figures(res, tmp_path, formats=("png",), dpi=40)
    assert {p.name for p in paths} == {"explored.png", "map.png", "occupancy.png"}
    two = dict(
        res,
        curves={m: res["curves"][m] for m in ("ift", "dpo")},
        explored={m: res["explored"][m] for m in ("ift", "dpo")},
    )
    two.pop("final_occupancy")
    with pytest.raises(ValueError, match="final_occupancy"):
        plots.plot_occupancy(two)
    fig = plots.plot_explored(two)
    assert sum(ax.get_visible() and ax.get_label() != "<colorbar>" for ax in fig.axes) == 2
    tiny = {name: (lambda r: plots.pyplot().figure(figsize=(1, 1))) for name in plots.FIGURES}
    with monkeypatch.context() as mp:  # which files get written, without drawing real figures
        mp.setattr(plots, "FIGURES", tiny)
        names = {p.name for p in plots.save_figures(two, tmp_path / "two", formats=("png",), dpi=20)}
    assert names == {"curves.png", "explored.png", "map.png"}  # no occupancy in the results: no figure


def test_save_figures_writes_valid_files(real, tmp_path):
    paths = plots.save_figures(real, tmp_path / "figs", formats=("png", "svg"))
    names = {p.name for p in paths}
    for n in ("curves", "explored", "map", "occupancy"):
        assert {f"{n}.png", f"{n}.svg"} <= names
    for p in paths:
        data = p.read_bytes()
        assert len(data) > 1000
        if p.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            assert data.lstrip().startswith((b"<?xml", b"<svg"))
    assert sorted(os.listdir(tmp_path / "figs")) == sorted(names)  # no temporary files left


def test_interrupted_save_leaves_no_partial_file(real, tmp_path, monkeypatch):
    out = tmp_path / "figs"

    def boom(res):
        raise RuntimeError("boom")

    # 1) a figure fails to render after others rendered: nothing at all is written
    monkeypatch.setattr(plots, "FIGURES", {"map": plots.plot_map, "curves": boom})
    with pytest.raises(RuntimeError, match="boom"):
        plots.save_figures(real, out, formats=("png", "svg"), dpi=40)
    assert not out.exists() or os.listdir(out) == []

    # 2) the disk write fails half-way through the third file: the two before it are whole, nothing else
    monkeypatch.setattr(plots, "FIGURES", {"map": plots.plot_map, "explored": plots.plot_explored})
    real_fdopen, calls = os.fdopen, []

    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            self.fh.write(data[: len(data) // 2])
            raise OSError("disk full")

    def flaky_fdopen(fd, mode="r", *a, **k):
        calls.append(fd)
        fh = real_fdopen(fd, mode, *a, **k)
        return HalfWriter(fh) if len(calls) == 3 else fh

    monkeypatch.setattr(os, "fdopen", flaky_fdopen)
    with pytest.raises(OSError, match="disk full"):
        plots.save_figures(real, out, formats=("png", "svg"), dpi=40)
    monkeypatch.setattr(os, "fdopen", real_fdopen)
    assert sorted(os.listdir(out)) == ["map.png", "map.svg"]  # no explored.png, no temporary file
    assert (out / "map.png").read_bytes().startswith(b"\x89PNG")
    assert (out / "map.svg").read_bytes().rstrip().endswith(b"</svg>")


def test_formats_are_checked_and_each_drawn_once(real, tmp_path, monkeypatch):
    """--formats names formats from FIGURE_FORMATS; PNG alone by default; a second format reuses the first's
    layout (the figure's layout engine is switched off after the first drawing, so it runs once)."""
    assert plots.figure_formats("svg, png,svg") == ("svg", "png")
    for bad in ("", "jpg", "png,pdf"):
        with pytest.raises(ValueError, match="--formats must name figure formats from png, svg"):
            plots.figure_formats(bad)
    monkeypatch.setattr(plots, "FIGURES", {"curves": plots.plot_curves})
    assert [p.name for p in plots.save_figures(real, tmp_path / "png", dpi=30)] == ["curves.png"]
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    layouts = []
    real_execute = ConstrainedLayoutEngine.execute
    counted = lambda self, fig: layouts.append(1) or real_execute(self, fig)  # noqa: E731
    monkeypatch.setattr(ConstrainedLayoutEngine, "execute", counted)
    names = [p.name for p in plots.save_figures(real, tmp_path / "both", formats=("png", "svg"), dpi=30)]
    assert names == ["curves.png", "curves.svg"] and len(layouts) == 1


def test_pretty_labels():
    from matplotlib.mathtext import MathTextParser

    assert plots.pretty("KL(pi* || pi_theta)") == r"KL($\pi^*$ || $\pi_\theta$)"
    assert plots.pretty("transition-matrix MSE to pi_theta*") == r"transition-matrix MSE to $\pi_{\theta^*}$"
    for label in (m.label for m in results.METRICS.values()):  # every label's math parses
        for math in plots.pretty(label).split("$")[1::2]:
            MathTextParser("agg").parse(f"${math}$")


def test_same_results_give_same_bytes(real, tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "FIGURES", {"map": plots.plot_map})
    a = [p.read_bytes() for p in plots.save_figures(real, tmp_path / "a", formats=("png", "svg"), dpi=40)]
    b = [p.read_bytes() for p in plots.save_figures(real, tmp_path / "b", formats=("png", "svg"), dpi=40)]
    assert a == b and len(a) == 2


def test_figures_drawn_in_processes_are_the_same_files(real, tmp_path):
    """save_figures(workers=2) forks processes that draw the figures at once: the same files, in the same
    order, byte for byte, as drawn one after another; an error in a forked process still writes nothing."""
    if plots.figure_workers(2) < 2:
        pytest.skip("no fork on this platform")
    one = plots.save_figures(real, tmp_path / "one", dpi=20, workers=1)
    two = plots.save_figures(real, tmp_path / "two", dpi=20, workers=2)
    assert [p.name for p in one] == [p.name for p in two] == [f"{n}.png" for n in plots.figure_names(real)]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(one, two, strict=True))
    broken = {k: v for k, v in real.items() if k != "final_occupancy"}
    broken["final_occupancy"] = {"sft": "not an array"}  # the occupancy figure fails inside its process
    with pytest.raises((TypeError, ValueError, KeyError, IndexError)):
        plots.save_figures(broken, tmp_path / "bad", dpi=20, workers=2)
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").iterdir())


def _workers_here(requested):
    return plots.figure_workers(requested)


def test_figure_workers_is_one_inside_a_daemonic_worker():
    """A multiprocessing pool's worker is daemonic and may not start processes: figures are drawn in it."""
    import multiprocessing

    if plots.figure_workers(2) < 2:
        pytest.skip("no fork on this platform")
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.map(_workers_here, [None, 3]) == [1, 1]
    assert plots.figure_workers(3) == 3 and plots.figure_workers(0) == 1


def test_accepts_study_result_and_rejects_missing_data(real, real_result):
    assert "'two-route'" in _texts(plots.plot_map(real_result))
    bare = {k: v for k, v in real.items() if k not in ("explored", "final_occupancy")}
    with pytest.raises(ValueError, match="explored"):
        plots.plot_explored(bare)
    with pytest.raises(ValueError, match="no curves"):
        plots.plot_curves(dict(real, curves={m: {} for m in real["curves"]}))
