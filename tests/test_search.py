"""The claim search: named claims judged by hand, the search space's checks, a few trials in memory, a
resumed search from its sqlite storage (also after a killed trial), the sweep spec it writes and the CLI's
bad input (trials on Ray: test_ray.py). Optuna is optional (the ``search`` extra): skipped without it."""

import json

import pytest

from frozenlake_ift import claims, cli, search, sweep
from frozenlake_ift.config import StudyConfig

optuna = pytest.importorskip("optuna")

CLAIM = "dpo-beats-sft:param_mse"
TINY = {"seeds": 2, "steps": 4, "fit_steps": 50, "device": "cpu"}
SPACE = {
    "lr": {"low": 0.001, "high": 0.03, "log": True},
    "negatives": ["fixed", "policy"],
    "resample_every": {"low": 1, "high": 5, "when": {"negatives": "policy"}},
}


def _summary(values: dict) -> dict:
    return {
        m: {"param_mse": {"final_mean": sum(v) / len(v), "final_ci95": 0.1, "final_values": v}}
        for m, v in values.items()
    }


def test_named_claims_by_hand():
    s = _summary({"dpo": [1.0, 2.0], "sft": [3.0, 4.0], "ift": [1.5, 5.0], "orpo": [0.5, 6.0]})
    entry = claims.judge_claim(s, CLAIM)
    assert entry["holds"] is True and entry["p_improvement"] == {"dpo>sft [param_mse]": 1.0}  # 4 of 4 pairs
    paper = claims.judge_claim(s, "dpo-lowest:param_mse")  # vs ift: 3 of 4 pairs, vs orpo 2 of 4
    assert paper == next(c for c in claims.check_claims(s) if c["claim"] == claims.DPO_LOWEST)
    assert paper["holds"] is False and claims.claim_score(paper) == 0.5
    assert claims.judge_claim(_summary({"dpo": [1.0, 2.0]}), CLAIM) is None and claims.claim_score(None) == 0.0
    with pytest.raises(ValueError, match="unknown claim 'nope'; claims: dpo-lowest:param_mse"):
        claims.get_claim("nope")
    assert search.claim_methods(CLAIM) == ("dpo", "sft") and len(search.claim_methods("explored-more")) == 4


@pytest.mark.parametrize(
    ("space", "needle"),
    [
        ({"nope": [1]}, "unknown StudyConfig field 'nope'; allowed: env"),
        ({"seeds": [1, 2]}, "'seeds' frames every trial"),
        ({"steps": [3]}, "'steps' is both searched and fixed"),
        ({"lr": {"low": 0.1, "high": 0.01}}, "low must be below high"),
        ({"lr": [-1.0]}, "lr must be > 0"),
        ({"map": {"low": 1, "high": 2}}, "'map' is not a number"),
        ({"pairs": {"low": 1.5, "high": 4}}, "integer field"),
        ({"lr": {"low": 0.0, "high": 1.0, "log": True}}, "a log range needs low > 0"),
        ({"pairs": {"low": 1, "high": 4, "when": {"negatives": "policy"}}}, "when names 'negatives'"),
        ({"lr": {"low": 0.1, "high": 1, "size": 3}}, "unknown key(s) ['size']"),
        ({}, "at least one StudyConfig field"),
    ],
)
def test_a_bad_search_space_is_one_line_naming_it(space, needle):
    with pytest.raises(ValueError) as exc:
        search.make_space(space, {"steps": 3})
    assert needle in str(exc.value) and "\n" not in str(exc.value)


def test_a_search_in_memory_finds_and_writes_a_spec_sweep_reruns(tmp_path):
    seen = []
    out = search.run_search(CLAIM, 4, SPACE, TINY, storage="memory", on_trial=seen.append)
    assert out.storage == "memory" and out.ran == 4 and len(out.trials) == 4 and len(seen) == 4
    assert all(t["state"] == "COMPLETE" and 0 <= t["score"] <= 1 and t["holds"] in (True, False) for t in out.trials)
    assert all(("resample_every" in t["params"]) == (t["params"]["negatives"] == "policy") for t in out.trials)
    best = out.best
    assert best["score"] == max(t["score"] for t in out.trials if t["holds"] == best["holds"])
    paths = search.write_files(out, tmp_path)
    assert {p.name for p in paths} == set(search.FILES)
    rec = json.loads((tmp_path / "search.json").read_text())
    assert rec["held"] == sum(t["holds"] for t in out.trials) and rec["best"]["number"] == best["number"]
    (cell,) = sweep.expand(sweep.load_spec(tmp_path / "spec.json"))  # sweep --grid OUT/spec.json reruns it
    assert cell.config.seeds == search.CONFIRM_SEEDS and cell.config.seed == search.CONFIRM_SEED
    assert cell.config.lr == best["params"]["lr"] and cell.config.methods == ("dpo", "sft")
    assert cell.config.steps == 4 and cell.config.negatives == best["params"]["negatives"]


def test_a_search_resumes_from_its_storage_and_reruns_a_killed_trial(tmp_path):
    first = search.run_search(CLAIM, 2, SPACE, TINY, out=tmp_path)
    assert (tmp_path / search.STORAGE_FILE).is_file() and first.ran == 2
    url = search.storage_url(tmp_path, None)
    study = optuna.load_study(study_name=first.study_name, storage=url)
    killed = study.ask({"lr": optuna.distributions.FloatDistribution(0.001, 0.03, log=True)})  # left RUNNING
    again = search.run_search(CLAIM, 4, SPACE, TINY, out=tmp_path)
    assert again.ran == 2 and len(again.trials) == 4  # the two missing ones; the killed trial is not counted
    assert [t["params"] for t in again.trials[:2]] == [t["params"] for t in first.trials]
    assert any(t["params"].get("lr") == killed.params["lr"] for t in again.trials[2:])  # run again, same params
    assert search.run_search(CLAIM, 4, SPACE, TINY, out=tmp_path).ran == 0
    with pytest.raises(ValueError, match="holds another search"):
        search.run_search("ift-beats-sft:param_mse", 1, SPACE, TINY, out=tmp_path)


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--claim", "nope", "--trials", "2"], "unknown claim 'nope'"),
        (["--claim", CLAIM, "--trials", "0"], "--trials must be >= 1"),
        (["--claim", CLAIM], "give --claim NAME and --trials N"),
        (["--claim", CLAIM, "--trials", "2", "--space", "SPACE"], "unknown StudyConfig field 'nope'"),
        (["--claim", CLAIM, "--trials", "2", "--fix", "lr=-1"], "lr must be > 0"),
        (["--claim", CLAIM, "--trials", "2", "--workers", "0"], "--workers must be >= 1"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, argv, needle):
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"nope": [1]}))
    out = tmp_path / "out"
    argv = [str(space) if a == "SPACE" else a for a in argv]
    assert cli.main(["search", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and not out.exists()


def test_cli_search_writes_its_files(tmp_path, capsys):
    space = tmp_path / "space.toml"
    space.write_text('negatives = ["fixed", "policy"]\n[lr]\nlow = 0.001\nhigh = 0.03\nlog = true\n')
    out = tmp_path / "s"
    fixes = [a for k, v in TINY.items() for a in ("--fix", f"{k}={v}")]
    argv = ["search", "--claim", CLAIM, "--trials", "2", "--space", str(space), "--out", str(out), *fixes]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert "holds in" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} >= {*search.FILES, search.STORAGE_FILE}
    assert cli.main(["search", "--list"]) == 0 and "dpo-lowest:param_mse" in capsys.readouterr().out


def test_default_space_is_valid_and_covers_the_sampler():
    params = {p.name: p for p in search.make_space(search.DEFAULT_SPACE, search.base_fixed(CLAIM, None))}
    assert {"lr", "steps", "negatives", "resample_every", "pairs", "horizon", "optimizer", "base", "map"} <= set(params)
    cfg = search.trial_config({"lr": 0.001, "steps": 2000, "negatives": "policy", "pairs": 1}, {"methods": ("sft",)})
    assert cfg == StudyConfig(lr=0.001, steps=2000, eval_every=2000, negatives="policy", pairs=1, methods=("sft",))
