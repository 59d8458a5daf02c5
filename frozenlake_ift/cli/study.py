"""The study commands of ``frozenlake-ift``: ``reproduce`` (a StudyConfig from the flags, its estimated
memory checked, the study run and saved) and ``fields`` (every StudyConfig field that ``--set`` takes)."""

from __future__ import annotations

import errno

from .common import (
    ENV_HELP,
    FIELDS_HINT,
    MAP_HELP,
    HelpFormatter,
    add_formats_argument,
    add_plugin_argument,
    print_json,
)


# ---------------------------------------------------------------- reproduce
def add_reproduce(sub) -> None:
    from ..config import StudyConfig
    from ..methods import method_names
    from ..safety import DEFAULT_MAX_STUDY_GB

    d = StudyConfig()
    p = sub.add_parser(
        "reproduce",
        help="run the Frozen-Lake study (SFT / IFT / DPO / ORPO) and write results + figures",
        description="Fine-tune theta_0 with each method on the default study map, all seeds batched; write "
        "results.json, summary.csv, params.pt (the trained parameters) and figures (PNG; --formats png,svg adds "
        "SVG) to "
        "--out and print a summary table (final and best value per method and metric, mean and 95% "
        "CI over seeds, rankings, and whether each of the paper's claims holds, judged over the "
        "paper's four methods only). `frozenlake-ift methods` lists every registered method; "
        + FIELDS_HINT
        + ". Everything is checked before the study starts; the files of a run "
        "replace those of an earlier run in --out together (docs/reliability.md).",
        formatter_class=HelpFormatter,
    )
    # defaults None: a flag given overrides --config FILE, a flag left out does not (the defaults are StudyConfig's)
    p.add_argument("--seeds", type=int, default=None, help=f"ensemble size: seeds trained at once (default: {d.seeds})")
    p.add_argument(
        "--seed", type=int, default=None, help=f"base seed: members use seeds seed, seed+1, ... (default: {d.seed})"
    )
    p.add_argument("--steps", type=int, default=None, help=f"fine-tuning steps per method (default: {d.steps})")
    p.add_argument(
        "--methods",
        default=None,
        help=f"comma-separated registered methods: {', '.join(method_names())} (default: {','.join(d.methods)})",
    )
    p.add_argument(
        "--base", default=None, help=f"base policy theta_0: random | uniform | suboptimal (default: {d.base})"
    )
    p.add_argument("--env", default=None, help=ENV_HELP)
    p.add_argument("--map", default=None, help=MAP_HELP + f" (default: {d.map})")
    p.add_argument(
        "--slippery",
        action="store_true",
        default=None,
        help="slippery ice: moves go to a-1, a, a+1 (gymnasium)",
    )
    p.add_argument("--device", default=None, help=f"auto | cpu | cuda[:N] (default: {d.device})")
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="start from the StudyConfig fields of FILE (.json, .toml, .yaml; or a results.json, whose config "
        "block reruns that study exactly); the flags above and --set override it",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override any StudyConfig field, e.g. --set lam=0.5 --set lr=0.003 (repeatable); " + FIELDS_HINT,
    )
    p.add_argument("--out", default=None, help="output folder (default: runs/<timestamp>/)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads; 1 is fastest for these tiny networks on a busy machine",
    )
    p.add_argument("--no-figures", action="store_true", help="write results.json, summary.csv and params.pt only")
    add_formats_argument(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.add_argument(
        "--max-memory",
        type=float,
        default=DEFAULT_MAX_STUDY_GB,
        metavar="GB",
        help="refuse a study whose estimated memory exceeds GB gigabytes (the study is dense: "
        "seeds x states x states matrices)",
    )
    p.add_argument("--force", action="store_true", help="run even beyond --max-memory")
    p.add_argument(
        "--preset",
        default="default",
        choices=("default", "paper"),
        help="start from a preset: paper = the NLP setting of App. B.2 (RMSprop, cosine schedule, "
        "warmup ratio 0.1; lr 0.01); other flags and --set override it",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard event files to OUT/tensorboard/<method> (pip install '.[tensorboard]')",
    )
    add_plugin_argument(p)
    p.set_defaults(func=run_reproduce)


def config_from_args(args):
    """The StudyConfig of ``reproduce``'s flags: defaults < --preset < --config FILE < flags < --set."""
    from ..config import PRESETS, StudyConfig, coerce_field
    from ..layouts import read_config_file

    values = dict(PRESETS[getattr(args, "preset", "default")])
    if getattr(args, "config", None):
        fields = read_config_file(args.config)
        unknown = sorted(set(fields) - set(StudyConfig.field_names()))
        if unknown:
            raise ValueError(
                f"--config {args.config!r}: unknown StudyConfig fields {unknown}; "
                f"allowed: {', '.join(StudyConfig.field_names())}"
            )
        values.update(fields)
    flags = {
        "seeds": args.seeds,
        "seed": getattr(args, "seed", None),
        "steps": args.steps,
        "base": args.base,
        "env": getattr(args, "env", None),
        "map": args.map,
        "device": args.device,
        "slippery": getattr(args, "slippery", None),
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    if args.methods is not None:
        values["methods"] = tuple(m.strip() for m in args.methods.replace("+", ",").split(",") if m.strip())
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}; {FIELDS_HINT}")
        key, text = item.split("=", 1)
        values[key.strip()] = coerce_field(key.strip(), text)
    return StudyConfig(**values)


def check_size(config, max_gb: float) -> int:
    """The estimated peak memory of a study (bytes, ``safety.config_bytes``); ValueError beyond ``max_gb`` gigabytes."""
    from ..safety import config_bytes, config_states

    need = config_bytes(config)
    if need is None:
        return 0
    S = config_states(config)
    if need > max_gb * 1e9:
        raise ValueError(
            f"this study needs about {need / 1e9:.3g} GB of memory ({S} states, {config.seeds} seeds, "
            f"{config.steps} steps, horizon {config.horizon}), more than --max-memory {max_gb:g} GB; "
            f"use a smaller map or fewer seeds, or pass --force (or a larger --max-memory) to run anyway"
        )
    return need


def run_reproduce(args) -> int:
    import time
    from pathlib import Path

    from .. import plots, results, safety

    config = config_from_args(args)  # everything is validated before anything is computed or written
    formats = plots.figure_formats(args.formats)
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    if not args.max_memory > 0:
        raise ValueError(f"--max-memory must be a number of gigabytes > 0, got {args.max_memory}")
    if not args.force:
        check_size(config, args.max_memory)
    out = Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    safety.check_out_dir(out)
    safety.clean_orphans(out)
    from ..data import build_data
    from ..study import run_study

    build_data(config, "cpu")  # a map without routes, or one the policy cannot solve, fails here, before any bar
    import torch

    torch.set_num_threads(args.threads)
    if args.tensorboard:  # checked before the study runs
        try:
            import torch.utils.tensorboard
        except ImportError:
            raise ValueError(
                "--tensorboard needs the tensorboard package: pip install 'frozenlake_ift[tensorboard]'"
            ) from None
    if not args.json:
        print(run_header(config), flush=True)
    if not args.no_figures:  # matplotlib's import (about 0.3 s) runs beside the study instead of after it
        import threading

        threading.Thread(target=plots.pyplot, daemon=True).start()
    result = run_study(config, progress=not args.json)
    run_files = ("results.json", "summary.csv", "steps.csv", results.PARAMS_FILE) + tuple(
        f"{n}.{e}" for n in plots.FIGURES for e in plots.FIGURE_FORMATS
    )  # for folders written before RUN_LIST
    figures, problem = [], None
    with safety.staged_run(out) as stage:
        try:
            res = results.save(result, stage.path)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"could not write the results to {str(out)!r} ({exc.strerror or exc}); nothing was changed there",
            ) from None
        if not args.no_figures:
            try:
                plots.save_figures(res, stage.path, formats=formats, workers=plots.figure_workers())
            except OSError as exc:  # keep what can be kept: the results are staged already
                problem = f"could not write the figures ({exc.strerror or exc}); the results were kept"
        figures = [str(p) for p in stage.commit(run_files) if p.suffix in (".png", ".svg")]
    if args.tensorboard:  # event files are logs of their own: written beside the run, not staged
        results.write_tensorboard(res, out / "tensorboard")
    if args.json:
        print_json(
            {
                "out": str(out),
                "run_id": res[results.RUN_ID],
                "seconds": res["seconds"],
                "device": res["device"],
                "summary": res["summary"],
                "ranking": res["ranking"],
                "claims": res["claims"],
                "figures": figures,
                "notes": res.get("notes", []),
            }
        )
    else:
        print(
            f"{res['map'].get('name') or res['config']['map']}, base {config.base}, {config.seeds} seeds, "
            f"{config.steps} steps, device {res['device']}, {res['seconds']:.1f} s; theta* fit KL "
            f"{max(res['fit']['kl']):.2g} (tol {config.fit_tol:g})"
        )
        print(results.format_table(res))
        for note in res.get("notes", []):
            print(f"note: {note}")
        print(
            f"wrote {out / 'results.json'}, {out / 'summary.csv'}, {out / 'params.pt'}"
            + (f" and {len(figures)} figure files" if figures else "")
            + f" (run {res[results.RUN_ID]})"
        )
    if problem:
        raise OSError(errno.EIO, problem)
    return 0


def run_header(config) -> str:
    """The line ``reproduce`` prints before it trains: the MDP, the base policy, the seeds (from the base seed)."""
    what = f"map {config.map}" + (", slippery" if config.slippery else "") if config.env == "lake" else config.env
    last = config.seed + config.seeds - 1
    seeds = f"seed {config.seed}" if config.seeds == 1 else f"seeds {config.seed}..{last}"
    return (
        f"study: {what}; base {config.base}; {config.seeds} members ({seeds}, base seed {config.seed}); "
        f"{config.steps} steps; methods {','.join(config.methods)}; negatives {config.negatives}"
    )


# ---------------------------------------------------------------- fields
def add_fields(sub) -> None:
    p = sub.add_parser(
        "fields",
        help="list the StudyConfig fields that --set and sweep specs accept",
        description="List every StudyConfig field: its type, default, allowed values and what it "
        "means. `reproduce --set FIELD=VALUE` and sweep specs take these.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run_fields)


def field_table() -> list[dict]:
    """Each StudyConfig field: name, type, default, allowed values (or None) and its source comment."""
    import dataclasses
    import inspect
    import re

    from .. import config as cfg
    from ..mdps import env_names
    from ..methods import method_names

    allowed = {
        "base": cfg.BASES,
        "optimizer": cfg.OPTIMIZER_NAMES,
        "dtype": cfg.DTYPE_NAMES,
        "activation": cfg.ACTIVATION_NAMES,
        "route_pair": cfg.ROUTE_PAIRS,
        "chosen": cfg.CHOSEN,
        "negatives": cfg.NEGATIVES,
        "env": tuple(f"{n}:..." if n != "lake" else n for n in env_names()),
        "methods": tuple(method_names()),
        "slippery": (True, False),
        "scheduler": getattr(cfg, "SCHEDULERS", ()),
        "grpo_loss_type": getattr(cfg, "GRPO_LOSS_TYPES", ()),
    }
    allowed = {k: v for k, v in allowed.items() if v}
    comments = dict(re.findall(r"^\s+(\w+): [^=\n]+=[^#\n]*#\s*(.+)$", inspect.getsource(cfg.StudyConfig), re.M))
    rows = []
    for f in dataclasses.fields(cfg.StudyConfig):
        default = cfg.field_default(f.name)
        kind = "map" if f.name == "map" else "list of str" if f.name == "methods" else type(default).__name__
        note = comments.get(f.name, "")
        if f.name == "map":
            note = MAP_HELP
        if f.name == "env":
            note = ENV_HELP
        rows.append(
            {
                "name": f.name,
                "type": kind,
                "default": list(default) if isinstance(default, tuple) else default,
                "allowed": list(allowed[f.name]) if f.name in allowed else None,
                "help": note,
            }
        )
    return rows


def run_fields(args) -> int:
    rows = field_table()
    if args.json:
        print_json(rows)
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        default = ",".join(r["default"]) if isinstance(r["default"], list) else r["default"]
        extra = f"; allowed: {', '.join(map(str, r['allowed']))}" if r["allowed"] else ""
        print(
            f"{r['name']:<{width}}  {r['type']}, default {default}{extra}" + (f"  ({r['help']})" if r["help"] else "")
        )
    print(
        "Floats must be finite (no nan or inf). Ranges are checked when the config is built; an error names "
        "the field and what it allows."
    )
    return 0
