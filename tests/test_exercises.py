"""The notebooks' hands-on helpers: the implement-it checks, the sliders, the animations.

Each check must accept the package's own implementation, recognise every common mistake it lists by
that mistake's own hint (so the hints are told apart, and a wrong answer can never pass), and turn a
template that is still unimplemented, a crash or a missing return into one line instead of an error.
"""

from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest
import torch

from frozenlake_ift import exercises, plots


@pytest.fixture(scope="module")
def all_exercises() -> dict:
    return exercises.exercises()


def test_each_check_accepts_the_reference_and_names_each_mistake_by_its_own_hint(all_exercises):
    assert set(all_exercises) == {
        "bellman_backup",
        "sft_loss",
        "truly_weight",
        "ift_weight",
        "relation_weights",
        "dpo_loss",
    }
    for name, ex in all_exercises.items():
        verdict = ex.check(ex.reference)
        assert verdict.ok and bool(verdict) and "correct" in repr(verdict), (name, verdict)
        hints = [m.hint for m in ex.mistakes]
        assert len(set(hints)) == len(hints) >= 3, name
        for mistake in ex.mistakes:
            verdict = ex.check(mistake.fn)
            assert not verdict.ok and verdict.message == mistake.hint, (name, mistake.hint, verdict.message)


def test_the_public_checks_are_the_registered_exercises():
    def backup(P, R, V, gamma):
        return R + gamma * P @ V

    assert exercises.check_bellman_backup(backup).ok
    assert not exercises.check_bellman_backup(lambda P, R, V, gamma: R + P @ V).ok
    assert exercises.check_dpo_loss(
        lambda policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta: (
            -torch.nn.functional.logsigmoid(beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)))
        )
    ).ok
    with pytest.raises(ValueError, match="row must be one of"):
        exercises.check_prefix_weight(lambda *a, **k: None, row="ppo")


def test_an_unknown_wrong_answer_is_shown_where_it_differs():
    verdict = exercises.check_sft_loss(lambda logps, mask: torch.tensor(0.5, dtype=torch.float64))
    assert not verdict.ok and "expected" in verdict.message and "got 0.5" in verdict.message
    verdict = exercises.check_relation_weights(lambda step_losses, kappa: np.ones(3))
    assert not verdict.ok and "expected Shape (6,), got (3,)" in verdict.message


def test_templates_crashes_and_missing_returns_give_one_line_not_an_error():
    def template(*args, **kwargs):
        raise NotImplementedError("your code here")

    assert "not implemented yet" in exercises.check_dpo_loss(template).message
    crash = exercises.check_sft_loss(lambda logps, mask: logps.no_such_method())
    assert not crash.ok and "AttributeError" in crash.message
    missing = exercises.check_bellman_backup(lambda P, R, V, gamma: None)
    assert not missing.ok and "returned NoneType" in missing.message
    assert "pass your function itself" in exercises.check_sft_loss("sft_loss").message


def test_a_check_gives_every_call_fresh_inputs():
    """A student's function that writes into its inputs cannot change the reference's answer."""

    def in_place(logps, mask):
        logps.zero_()
        return torch.tensor(0.0, dtype=torch.float64)

    assert not exercises.check_sft_loss(in_place).ok
    assert exercises.check_sft_loss(exercises.exercises()["sft_loss"].reference).ok


def test_sliders_fall_back_to_one_line_without_ipywidgets(monkeypatch, capsys):
    real_import = builtins.__import__

    def no_widgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError("no ipywidgets")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "ipywidgets", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_widgets)

    def draw(lam=0.2, base="random"):
        return lam, base

    assert exercises.sliders(draw, lam=(0.0, 1.0, 0.1), base=["random", "uniform"]) is None
    assert capsys.readouterr().out.strip() == exercises.NO_WIDGETS


def test_sliders_build_one_control_per_argument():
    ipywidgets = pytest.importorskip("ipywidgets")
    pytest.importorskip("IPython")
    seen = []

    def draw(lam=0.2, base="uniform"):
        seen.append((lam, base))

    widget = exercises.sliders(draw, lam=(0.0, 1.0, 0.1), base=["random", "uniform"])
    kinds = {type(c).__name__: c for c in widget.children if hasattr(c, "description") and c.description}
    assert isinstance(kinds["FloatSlider"], ipywidgets.FloatSlider) and kinds["FloatSlider"].value == 0.2
    assert kinds["Dropdown"].value == "uniform" and seen[-1] == (0.2, "uniform")
    with pytest.raises(ValueError, match="not arguments of"):
        exercises.sliders(draw, gamma=(0.0, 1.0, 0.1))
    with pytest.raises(ValueError, match="min, max, step"):
        exercises.sliders(draw, lam=(0.0, 1.0))


def test_gif_bytes_draws_every_frame_on_one_figure():
    from PIL import Image

    drawn = []

    def frame(axes, k):
        drawn.append(k)
        axes[0].plot([0, 1], [0, k])
        axes[1].set_title(f"frame {k}")

    data = plots.gif_bytes(frame, 3, ncols=2, figsize=(3, 1.5), dpi=40)
    image = Image.open(__import__("io").BytesIO(data))
    assert data[:6] == b"GIF89a" and image.n_frames == 3 and image.size == (120, 60)
    assert drawn == [0, 1, 2]
    with pytest.raises(ValueError, match="at least one frame"):
        plots.gif_bytes(frame, 0)


def test_curve_panels_have_y_labels_and_log_panels_can_shade_the_seed_range():
    steps = [0, 10, 20]
    curves = {
        "sft": {"policy_mse_opt": np.array([[0.2, 0.1], [1e-3, 2e-2], [1e-5, 1e-2]]), "success": np.full((3, 2), 0.5)}
    }
    res = {"steps": steps, "curves": curves, "map": {"desc": ["SF", "FG"]}, "config": {"seeds": 2}}
    fig = plots.plot_curves(res, metrics=["policy_mse_opt", "success"], log_band="range")
    try:
        labels = [ax.get_ylabel() for ax in fig.axes if ax.get_visible()]
        assert labels == ["MSE (log scale)", "probability"]
        band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]  # the shaded range of the log panel
        assert band.min() >= 1e-5 / 2 - 1e-12 and np.isclose(band.max(), 0.2)
        assert "range" in fig._suptitle.get_text()
    finally:
        plots.pyplot().close(fig)
    with pytest.raises(ValueError, match="log_band"):
        plots.plot_curves(res, log_band="ci95")
