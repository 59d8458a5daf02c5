"""Input files: read a JSON file and check the layout of a results.json or a sweep file, naming the problem.

    read_json_file(path)                  the parsed JSON; ValueError naming the file if it cannot be
                                          read, is binary or is not strict JSON (no NaN / Infinity token)
    loads_strict(text)                    json.loads without NaN / Infinity tokens
    read_mapping_file(path, what)         a JSON / TOML / YAML file (by suffix) that holds a mapping
    read_config_file(path)                the StudyConfig fields of a config file or of a results.json
    check_results_layout(res, where)      refuse a results dict of another layout (``results.load``)
    check_sweep_layout(obj, where, kind)  refuse a sweep manifest or cell record of another layout
                                          (``report``)
    check_params_layout(d, where, fmt)    refuse a params.pt payload of another layout (``results.load_params``)

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
        return loads_strict(text)
    except NonStrictJSON as exc:
        raise ValueError(
            f"{str(path)!r} is not strict JSON: it holds the token {exc.args[0]} (frozenlake-ift writes a "
            "non-finite value as null)"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{str(path)!r} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{str(path)!r} is nested too deeply to be a frozenlake-ift file") from None


# Bounds every mapping file is held to before its content is used (specs and config files are small;
# these stop alias bombs, deep nesting and typos early)
MAX_INPUT_BYTES = 1 << 20  # a file's size
MAX_INPUT_DEPTH = 16  # nesting of lists and mappings (a custom map in a sweep grid is 3 deep)
MAX_INPUT_NODES = 100_000  # values, lists and mappings in all, YAML aliases counted as often as they are used


def check_bounds(raw, source: str = "file") -> None:
    """Refuse (ValueError) parsed content nested deeper than ``MAX_INPUT_DEPTH`` or holding more than
    ``MAX_INPUT_NODES`` values, lists and mappings. Walks without recursion and stops at the first excess,
    so a shared sub-tree (a YAML alias) used a billion times costs no more than the bound."""
    stack, count = [(raw, 1)], 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_INPUT_NODES:
            raise ValueError(f"{source} holds more than {MAX_INPUT_NODES:,} values (with YAML aliases expanded)")
        if depth > MAX_INPUT_DEPTH:
            raise ValueError(f"{source} is nested more than {MAX_INPUT_DEPTH} levels deep")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
            count += len(node)  # the keys
        elif isinstance(node, (list, tuple)):
            stack.extend((v, depth + 1) for v in node)


def _yaml_message(exc) -> str:
    """One line for a YAML error: the problem and where (pyyaml's own message spans several lines)."""
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return f"{what} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else what


def read_mapping_file(path, what: str = "file", mapping: bool = True):
    """A mapping from a .json, .toml or .yaml / .yml file (strict JSON for any other suffix): sweep specs and
    config files. ``what`` names the file in messages ("sweep spec").

    Refused with one line naming the file: missing (FileNotFoundError), over ``MAX_INPUT_BYTES``, not UTF-8
    text, not parseable (YAML needs pyyaml; its safe loader builds an alias once and shares it, so an alias
    bomb is small when loaded), nested or sized beyond ``check_bounds``, or (with ``mapping``) not a mapping.
    """
    path = Path(path)
    where = f"{what} {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {str(path)!r}")
    size = path.stat().st_size
    if size > MAX_INPUT_BYTES:
        raise ValueError(f"{where} has {size:,} bytes, more than a {what} may ({MAX_INPUT_BYTES:,})")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    suffix = path.suffix.lower()
    errors: tuple[type[Exception], ...]
    if suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(
                f"{str(path)!r}: YAML files need pyyaml (pip install pyyaml); or use JSON / TOML"
            ) from None
        parse, errors, kind = yaml.safe_load, (yaml.YAMLError,), "YAML"  # aliases stay shared: no blow-up here
    elif suffix == ".toml":
        try:
            import tomllib  # type: ignore[import-not-found, unused-ignore]  # Python 3.11+
        except ImportError:  # Python 3.10: the same parser as the tomli package
            try:
                import tomli as tomllib  # type: ignore[no-redef, import-not-found, unused-ignore]  # Python 3.10
            except ImportError:
                raise ValueError(
                    f"{str(path)!r}: TOML files need Python 3.11 or the tomli package (pip install tomli); or use JSON"
                ) from None
        parse, errors, kind = tomllib.loads, (tomllib.TOMLDecodeError,), "TOML"
    else:
        parse, errors, kind = loads_strict, (json.JSONDecodeError, NonStrictJSON), "JSON"
    try:
        raw = parse(text)
    except errors as exc:
        message = _yaml_message(exc) if kind == "YAML" else str(exc)
        if isinstance(exc, NonStrictJSON):
            message = f"{exc} is not a JSON value (JSON has no NaN or Infinity)"
        raise ValueError(f"{where} is not valid {kind}: {message}") from None
    except RecursionError:
        raise ValueError(f"{where} is nested more than {MAX_INPUT_DEPTH} levels deep") from None
    check_bounds(raw, where)
    if mapping and not isinstance(raw, dict):
        raise ValueError(f"{where} must hold a mapping, got {_kind(raw)}")
    return raw


def read_config_file(path) -> dict:
    """The StudyConfig fields of a config file (a mapping of fields, or ``{"config": {...}}``) or of a
    results.json (its ``config`` block, which round-trips: ``StudyConfig(**fields)`` equals the run's config)."""
    raw = read_mapping_file(path, "config file")
    if "config" in raw and isinstance(raw["config"], dict):
        raw = raw["config"]
    return raw


class NonStrictJSON(ValueError):
    """A NaN / Infinity / -Infinity token: Python's json reads it, JSON has none (``loads_strict``)."""


def _refuse(token: str):
    raise NonStrictJSON(token)


def loads_strict(text: str):
    """``json.loads`` that refuses NaN, Infinity and -Infinity tokens (NonStrictJSON, a ValueError)."""
    return json.loads(text, parse_constant=_refuse)


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
    _need(res.get("run_id") is None or isinstance(res["run_id"], str), "'run_id' must be a string")
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


PARAM_SHAPES = {"W1": ("E", "S", "H"), "b1": ("E", "H"), "W2": ("E", "H", "A"), "b2": ("E", "A")}


def check_params_layout(d, where: str, fmt: int) -> None:
    """Refuse (ValueError naming ``where``) a params.pt payload that is not ``results.params_bytes``'s
    layout: format, activation, sizes, seeds, run id, and every parameter dict's tensors and shapes."""
    try:
        _params_layout(d, fmt)
    except LayoutError as exc:
        raise ValueError(f"{where!r} is not a frozenlake-ift params.pt: {exc}") from None


def _params_layout(d, fmt: int) -> None:
    import torch

    from .policy import ACTIVATIONS

    _mapping(d, "the file's top level")
    _need(d.get("format") == fmt, f"'format' must be {fmt}, got {_kind(d.get('format'))}")
    missing = [k for k in ("activation", "n_states", "n_actions", "seeds", "methods", "base", "star") if k not in d]
    _need(not missing, f"missing keys {missing}")
    _need(d["activation"] in ACTIVATIONS, f"'activation' must be one of {sorted(ACTIVATIONS)}")
    for k in ("n_states", "n_actions"):
        _need(isinstance(d[k], int) and not isinstance(d[k], bool) and d[k] >= 1, f"'{k}' must be an integer >= 1")
    seeds = d["seeds"]
    _need(
        isinstance(seeds, list) and bool(seeds) and all(isinstance(x, int) and not isinstance(x, bool) for x in seeds),
        "'seeds' must be a non-empty list of integers",
    )
    _need(d.get("run_id") is None or isinstance(d["run_id"], str), "'run_id' must be a string")
    size = {"E": len(seeds), "S": d["n_states"], "A": d["n_actions"]}
    groups = {f"methods.{m}": p for m, p in _mapping(d["methods"], "'methods'", empty_ok=True).items()}
    groups.update(base=d["base"], star=d["star"])
    for name, params in groups.items():
        _mapping(params, f"'{name}'")
        _need(set(params) == set(PARAM_SHAPES), f"'{name}' must hold exactly {sorted(PARAM_SHAPES)}")
        dims = dict(size)
        for k, axes in PARAM_SHAPES.items():
            t = params[k]
            _need(
                isinstance(t, torch.Tensor) and t.is_floating_point() and t.dim() == len(axes),
                f"'{name}.{k}' must be a floating-point tensor of {len(axes)} dimensions",
            )
            for axis, n in zip(axes, t.shape, strict=True):
                _need(dims.setdefault(axis, n) == n, f"'{name}.{k}' has shape {tuple(t.shape)}, expected {axes}")
