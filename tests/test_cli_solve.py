"""`frozenlake-ift solve`: JSON and table output, finite horizon, errors (exit 2, one line)."""

import json
import shutil
import subprocess
import sys

import pytest

from frozenlake_ift.cli import main

KEYS = {"V_start", "success_probability", "policy", "iterations", "seconds"}


def _json(capsys, *argv):
    assert main(["solve", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_4x4_slippery(capsys):
    out = _json(capsys, "--map", "4x4", "--slippery", "--gamma", "0.99")
    assert KEYS <= set(out) and out["map"] == "4x4-slippery" and out["gamma"] == 0.99
    assert len(out["policy"]) == 16 and all(a in range(4) for a in out["policy"])
    assert out["policy"][0] == 0  # the well-known 'left' at S on the slippery 4x4 lake
    assert out["success_probability"] == pytest.approx(14 / 17, abs=1e-6)  # optimum of the slippery 4x4 lake
    assert 0.5 < out["V_start"] < 0.6 and out["iterations"] > 0 and out["seconds"] >= 0
    assert out["residual"] <= 1e-10


def test_json_two_route_and_custom(capsys):
    out = _json(capsys, "--map", "two-route", "--gamma", "0.9")
    assert out["V_start"] == pytest.approx(0.9**5) and out["success_probability"] == 1.0  # 6 moves to G
    assert out["policy"][:5] == [2, 2, 2, 2, 1]
    out = _json(capsys, "--map", "SG", "--slippery", "--success-rate", "0.5", "--gamma", "0.9")
    # rows "SG" (one row): V = 0.5 + 0.9 * 0.5 * V -> V = 0.5 / 0.55
    assert out["V_start"] == pytest.approx(0.5 / 0.55) and out["map"] == "custom-1x2-slippery(0.5)"


def test_json_finite_horizon(capsys):
    out = _json(capsys, "--map", "4x4", "--gamma", "1.0", "--horizon", "5")
    assert len(out["policy"]) == 5 and all(len(row) == 16 for row in out["policy"])
    assert out["V_start"] == 0.0 and out["success_probability"] == 0.0  # G is 6 moves away
    out = _json(capsys, "--map", "4x4", "--gamma", "1.0", "--horizon", "6")
    assert out["V_start"] == 1.0 and out["success_probability"] == 1.0 and out["iterations"] == 6


def test_table(capsys):
    assert main(["solve", "--map", "two-route"]) == 0
    text = capsys.readouterr().out
    assert "V(start)" in text and "success probability" in text and "→ → → → ↓" in text
    assert main(["solve", "--map", "8x8", "--slippery", "--horizon", "50"]) == 0
    assert "policy at t = 0" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--map", "nowhere"], "unknown map 'nowhere'"),
        (["--map", "SFF,FFX"], "unknown tile letter 'X'"),
        (["--map", "SFH,HHG"], "unreachable"),
        (["--gamma", "1.5"], r"gamma must be a discount in (0, 1], got 1.5"),
        (["--horizon", "0"], "horizon must be an integer >= 1, got 0"),
        (["--slippery", "--success-rate", "2"], "success_rate must be a probability in [0, 1], got 2.0"),
        (["--tol", "-1"], "tol must be a finite number >= 0"),
    ],
)
def test_errors_are_one_line_and_exit_2(capsys, argv, needle):
    assert main(["solve", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("frozenlake-ift solve: error: ")
    assert needle in captured.err


def test_console_script():
    exe = shutil.which("frozenlake-ift")
    cmd = [exe] if exe else [sys.executable, "-m", "frozenlake_ift.cli"]
    done = subprocess.run(
        cmd + ["solve", "--map", "4x4", "--slippery", "--gamma", "0.99", "--json"],
        capture_output=True,
        check=False,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert KEYS <= set(out) and out["success_probability"] == pytest.approx(14 / 17, abs=1e-6)
