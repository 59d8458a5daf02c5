"""Input files: read a JSON file and check the layout of a results.json or a sweep file, naming the problem.

    read_json_file(path)                  the parsed JSON; ValueError naming the file if it cannot be
                                          read, is binary or is not JSON
    read_mapping_file(path, what)         a JSON / TOML / YAML file (by suffix) that holds a mapping
    read_config_file(path)                the StudyConfig fields of a config file or of a results.json
    check_results_layout(res, where)      refuse a results dict of another layout (``results.load``)
    check_sweep_layout(obj, where, kind)  refuse a sweep manifest or cell record of another layout
                                          (``report``)

Each refusal is a ValueError of one line naming the file and what is wrong with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json_file(path: Path):
    """Parse a JSON file; ValueError naming the file if it cannot be read, is binary or is not JSON."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        if "\x00" in text:
            raise UnicodeDecodeError("utf-8", raw, 0, 1, "NUL byte")
    except UnicodeDecodeError:
        raise ValueError(f"{str(path)!r} is not a text file (binary data); expected JSON") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{str(path)!r} is nested too deeply to be a frozenlake-ift file") from None


def read_mapping_file(path, what: str = "file") -> dict:
    """A mapping from a .json, .toml or .yaml / .yml file (JSON for any other suffix); ValueError naming the
    file when it is missing, unreadable, not of its format, or not a mapping. YAML needs pyyaml (safe_load)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no {what} at {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml", ".toml"):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"{what} {str(path)!r} cannot be read as UTF-8 text: {exc}") from None
        if suffix == ".toml":
            try:
                import tomllib  # type: ignore[import-not-found, unused-ignore]  # Python 3.11+
            except ImportError:  # Python 3.10: the same parser as the tomli package
                try:
                    import tomli as tomllib  # type: ignore[no-redef, import-not-found, unused-ignore]  # Python 3.10
                except ImportError:
                    raise ValueError(f"{str(path)!r}: TOML files need Python 3.11 or tomli; or use JSON") from None
            try:
                raw = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ValueError(f"{what} {str(path)!r} is not valid TOML: {exc}") from None
        else:
            try:
                import yaml
            except ImportError:
                raise ValueError(
                    f"{str(path)!r}: YAML files need pyyaml (pip install pyyaml); or use JSON / TOML"
                ) from None
            try:
                raw = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"{what} {str(path)!r} is not valid YAML: {' '.join(str(exc).split())}") from None
    else:
        raw = read_json_file(path)
    if not isinstance(raw, dict):
        raise ValueError(f"{what} {str(path)!r} must hold a mapping, got {_kind(raw)}")  # noqa: TRY004  (a user's file)
    return raw


def read_config_file(path) -> dict:
    """The StudyConfig fields of a config file (a mapping of fields, or ``{"config": {...}}``) or of a
    results.json (its ``config`` block, which round-trips: ``StudyConfig(**fields)`` equals the run's config)."""
    raw = read_mapping_file(path, "config file")
    if "config" in raw and isinstance(raw["config"], dict):
        raw = raw["config"]
    return raw


class LayoutError(ValueError):
    pass


def _num(x) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise LayoutError(what)


def _mapping(x, what: str, empty_ok: bool = False) -> dict:
    _need(
        isinstance(x, dict) and (empty_ok or bool(x)),
        f"{what} must be a{'' if empty_ok else ' non-empty'} mapping, got {_kind(x)}",
    )
    return x


def _kind(x) -> str:
    if isinstance(x, (list, dict, str)):
        return f"{type(x).__name__} of length {len(x)}" if x else f"empty {type(x).__name__}"
    return "null" if x is None else type(x).__name__


def _matrix(x, what: str, rows: int | None = None, cols: int | None = None) -> int:
    """A rectangular list of lists of numbers (or null); returns the row length."""
    _need(isinstance(x, list) and bool(x), f"{what} must be a non-empty list of rows, got {_kind(x)}")
    _need(rows is None or len(x) == rows, f"{what} has {len(x)} rows, expected {rows}")
    width = cols
    for r in x:
        _need(isinstance(r, list) and bool(r), f"{what} must hold lists of numbers, got a {_kind(r)}")
        width = len(r) if width is None else width
        _need(len(r) == width, f"{what} has rows of {len(r)} values, expected {width}")
        _need(all(_num(v) for v in r), f"{what} holds a value that is not a number")
    assert width is not None  # x is a non-empty list of rows, so the loop set it
    return width


def check_results_layout(res, where: str) -> None:
    """Refuse (ValueError naming ``where``) a results.json whose layout plots cannot draw."""
    try:
        _results_layout(res)
    except LayoutError as exc:
        raise ValueError(f"{where!r} is not a frozenlake-ift results file: {exc}") from None


def _results_layout(res) -> None:
    _mapping(res, "the file's top level")
    missing = [k for k in ("config", "steps", "curves", "summary", "map") if k not in res]
    _need(not missing, f"missing keys {missing} (another version's or another tool's file?)")
    cfg = _mapping(res["config"], "'config'")
    for k in ("gamma", "temperature"):
        _need(k not in cfg or (_num(cfg[k]) and cfg[k] is not None), f"'config.{k}' must be a number")
    steps = res["steps"]
    _need(
        isinstance(steps, list) and bool(steps) and all(_num(s) and s is not None for s in steps),
        f"'steps' must be a non-empty list of numbers, got {_kind(steps)}",
    )
    n, seeds = len(steps), None
    for m, mc in _mapping(res["curves"], "'curves'").items():
        for k, v in _mapping(mc, f"'curves.{m}'").items():
            _matrix(v, f"'curves.{m}.{k}'", rows=n, cols=seeds)
            seeds = len(v[0])
    for m, ms in _mapping(res["summary"], "'summary'", empty_ok=True).items():
        for k, s in _mapping(ms, f"'summary.{m}'", empty_ok=True).items():
            _need(
                isinstance(s, dict) and all(_num(v) or (isinstance(v, list) and all(map(_num, v))) for v in s.values()),
                f"'summary.{m}.{k}' must map statistics to numbers (or lists of numbers)",
            )
    mp = _mapping(res["map"], "'map'")
    desc: Any = mp.get("desc")  # unchecked JSON until the _need calls below; None: not a grid MDP
    if desc is not None:
        _need(
            isinstance(desc, list) and bool(desc) and all(isinstance(r, str) and r for r in desc),
            f"'map.desc' must be a non-empty list of row strings (or null), got {_kind(desc)}",
        )
        _need(
            len({len(r) for r in desc}) == 1 and all(set(r) <= set("SFHG") for r in desc),
            "'map.desc' rows must have equal lengths and use only the letters S, F, H, G",
        )
        S = len(desc) * len(desc[0])
        _matrix(mp.get("pi_star"), "'map.pi_star'", rows=S)
    else:
        pi = mp.get("pi_star")
        _need(isinstance(pi, list) and bool(pi), f"'map.pi_star' must be a non-empty list, got {_kind(pi)}")
        S = len(pi) if isinstance(pi, list) else 0
        _matrix(pi, "'map.pi_star'", rows=S)
    for key in ("goal", "starts"):
        v = mp.get(key)
        _need(
            v is None or (isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in v)),
            f"'map.{key}' must be a list of integers",
        )
    if mp.get("terminal") is not None:
        t = mp["terminal"]
        _need(
            isinstance(t, list) and len(t) == S and all(_num(v) and v is not None for v in t),
            f"'map.terminal' must be a list of {S} numbers, got {_kind(t)}",
        )
    for key in ("chosen", "rejected"):
        if key not in mp:
            continue
        route = mp[key]
        _mapping(route, f"'map.{key}'", empty_ok=True)
        for part in ("states", "actions"):
            v = route.get(part, [])
            _need(
                isinstance(v, list) and all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < S for i in v),
                f"'map.{key}.{part}' must be a list of integers in [0, {S})",
            )
    for key in ("final_occupancy", "explored"):
        for m, v in _mapping(res.get(key) or {}, f"'{key}'", empty_ok=True).items():
            _matrix(v, f"'{key}.{m}'", rows=seeds, cols=S)
    for m, v in _mapping(res.get("final_policy") or {}, "'final_policy'", empty_ok=True).items():
        _matrix(v, f"'final_policy.{m}'", rows=S)
    star = _mapping(res.get("fit", {}), "'fit'", empty_ok=True).get("star_success")
    _need(
        star is None or (isinstance(star, list) and all(_num(v) for v in star)),
        "'fit.star_success' must be a list of numbers",
    )


def check_sweep_layout(obj, where: str, kind: str, fields: tuple[str, ...] = ()) -> None:
    """Refuse (ValueError naming ``where``) a sweep manifest (kind "manifest") or cell record
    (kind "cell") that the report cannot read. ``fields``: the StudyConfig field names."""
    try:
        (_manifest_layout if kind == "manifest" else _cell_layout)(obj, fields)
    except LayoutError as exc:
        what = "sweep.json manifest" if kind == "manifest" else "sweep cell"
        raise ValueError(f"{where!r} is not a frozenlake-ift {what}: {exc}") from None


def _manifest_layout(man, fields) -> None:
    _mapping(man, "the file's top level")
    f = man.get("fields")
    _need(
        isinstance(f, list) and all(isinstance(x, str) for x in f), f"'fields' must be a list of names, got {_kind(f)}"
    )
    for key, values in _mapping(man.get("cells"), "'cells'", empty_ok=True).items():
        _mapping(values, f"'cells.{key}'", empty_ok=True)


def _cell_layout(rec, fields) -> None:
    _mapping(rec, "the file's top level")
    if isinstance(rec.get("error"), str):  # a failed cell's record: its key and error are enough
        _need(isinstance(rec.get("key"), str), "'key' must be a string")
        return
    missing = [k for k in ("key", "values", "config", "summary", "ranking", "claims", "seconds") if k not in rec]
    _need(
        not missing, f"missing keys {missing} (truncated, or another version's layout; rerun the sweep to recompute it)"
    )
    _need(isinstance(rec["key"], str), "'key' must be a string")
    _mapping(rec["values"], "'values'", empty_ok=True)
    unknown = sorted(set(_mapping(rec["config"], "'config'")) - set(fields)) if fields else []
    _need(not unknown, f"'config' has fields this version does not know: {unknown}")
    _need(_num(rec["seconds"]) and rec["seconds"] is not None, "'seconds' must be a number")
    summary = _mapping(rec["summary"], "'summary'", empty_ok=True)
    for m, ms in summary.items():
        for k, s in _mapping(ms, f"'summary.{m}'", empty_ok=True).items():
            _need(
                isinstance(s, dict) and all(_num(s.get(x, 0)) for x in ("final_mean", "final_ci")),
                f"'summary.{m}.{k}' must hold final_mean and final_ci numbers",
            )
    for metric, order in _mapping(rec["ranking"], "'ranking'", empty_ok=True).items():
        _need(
            isinstance(order, list) and all(isinstance(m, str) and metric in summary.get(m, {}) for m in order),
            f"'ranking.{metric}' must list methods whose summary has {metric!r}",
        )
    claims = rec["claims"]
    _need(
        isinstance(claims, list)
        and all(
            isinstance(c, dict)
            and isinstance(c.get("claim"), str)
            and isinstance(c.get("metric"), str)
            and isinstance(c.get("holds"), bool)
            for c in claims
        ),
        "'claims' must be a list of {claim, metric, holds} records",
    )
