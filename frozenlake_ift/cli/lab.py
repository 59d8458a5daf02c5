"""The research commands of ``frozenlake-ift``: ``phenomena`` (known phenomena as judged scenarios) and
``search`` (where a claim holds: an Optuna search over StudyConfig fields)."""

from __future__ import annotations

from .common import EXIT_INTERRUPT, FIELDS_HINT, PROG, HelpFormatter, add_plugin_argument, err, print_json

EXECUTOR_HELP = "local processes (--workers), or a Ray cluster (pip install ray; --address joins one)"


def _add_executor(p) -> None:
    p.add_argument("--workers", type=int, default=1, metavar="N", help="runs in N parallel processes (or Ray CPUs)")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help=EXECUTOR_HELP)
    p.add_argument("--address", default=None, metavar="ADDR", help="Ray cluster address (with --executor ray)")


def _check_executor(args) -> None:
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.address is not None and args.executor != "ray":
        raise ValueError(f"--address {args.address!r} needs --executor ray")


# ---------------------------------------------------------------- phenomena
def add_phenomena(sub) -> None:
    p = sub.add_parser(
        "phenomena",
        help="reproduce known phenomena of preference fine-tuning as judged scenarios",
        description="Run registered scenarios (all when none is named): each trains its studies, judges what its "
        "source says happens with P(improvement) over seeds, and writes OUT/<name>.md (the table), .json and "
        ".png/.svg (the figure), and OUT/phenomena.md. A scenario that does not reproduce says so in its table.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="scenarios to run (default: all; --list names them)")
    p.add_argument("--out", default="runs/phenomena", help="folder for the tables, records and figures")
    p.add_argument(
        "--budget",
        choices=("full", "small"),
        default="full",
        help="full: each scenario's own budget (the documented numbers); small: the tests' budget",
    )
    p.add_argument("--seeds", type=int, default=None, metavar="N", help="seeds of every run (default: the budget's)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON")
    _add_executor(p)
    add_plugin_argument(p)
    p.set_defaults(func=run_phenomena)


def run_phenomena(args) -> int:
    from .. import phenomena, safety

    if args.list:
        rows = [phenomena.get_scenario(n) for n in phenomena.scenario_names()]
        if args.json:
            print_json([{"name": s.name, "title": s.title, "citation": s.citation} for s in rows])
            return 0
        for s in rows:
            print(f"{s.name}: {s.title}\n    {s.citation}")
        return 0
    for name in args.names:
        phenomena.get_scenario(name)  # an unknown name: one line listing the scenarios, before anything runs
    if args.seeds is not None and args.seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
    _check_executor(args)
    safety.check_out_dir(args.out)
    from .. import phenomena_report

    def progress(rec) -> None:
        if not args.json:
            err(f"{rec.scenario} [{rec.run}]: trained in {rec.seconds:.1f} s")

    try:
        results = phenomena.run_scenarios(
            args.names,
            args.budget,
            seeds=args.seeds,
            workers=args.workers,
            executor=args.executor,
            address=args.address,
            on_run=progress,
        )
    except KeyboardInterrupt:
        err(f"{PROG} phenomena: interrupted; nothing was written")
        return EXIT_INTERRUPT
    paths = phenomena_report.write(results, args.out)
    if args.json:
        print_json([phenomena_report.to_dict(r) for r in results])
        return 0
    for r in results:
        held = sum(bool(v.holds) for v in r.verdicts)
        print(
            f"{r.scenario.name}: {'reproduced' if r.reproduced else 'NOT reproduced'} ({held}/{len(r.verdicts)} hold)"
        )
        for v in r.verdicts:
            mark = "not judged" if v.holds is None else "holds" if v.holds else "does NOT hold"
            print(f"  [{mark}] {v.text} (P(improvement) {v.p_improvement:.2f})")
    print(f"wrote {len(paths)} files in {args.out}: {args.out}/phenomena.md")
    return 0


# ---------------------------------------------------------------- search
def add_search(sub) -> None:
    p = sub.add_parser(
        "search",
        help="search the configuration space for settings where a claim holds (Optuna, TPE)",
        description="Search StudyConfig fields (lr, steps, betas, lam, base, map, negatives, resample_every, pairs, "
        "horizon, optimizer by default; --space FILE for your own) for settings where a named claim holds: each "
        "trial trains one study and judges the claim on it (score: its smallest P(improvement)). The search "
        "lives in OUT/search.db (resumable: rerun the same command) and writes OUT/search.json (the best "
        "settings, the share of trials in which the claim holds), trials.json, trials.csv and spec.json, a "
        f"sweep spec of the best settings with more, fresh seeds ({PROG} sweep --grid OUT/spec.json). Needs "
        "optuna (pip install 'frozenlake_ift[search]'). " + FIELDS_HINT + ".",
        formatter_class=HelpFormatter,
    )
    p.add_argument(
        "--claim", default=None, metavar="NAME", help="the claim (--list names them), e.g. dpo-lowest:param_mse"
    )
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        metavar="N",
        help="finished trials wanted in all (a resumed search runs the rest)",
    )
    p.add_argument(
        "--space",
        default=None,
        metavar="FILE",
        help='search space (.json, .toml, .yaml): {FIELD: [choices] or {"low", "high", "log", "step", "when"}}',
    )
    p.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="fix a field in every trial (repeatable; default seeds=8 and the claim's methods)",
    )
    p.add_argument("--out", default=None, help="folder of the search (default: runs/search-<claim>)")
    p.add_argument(
        "--storage", default=None, metavar="URL", help="Optuna storage URL, or 'memory' (default: sqlite in OUT)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler")
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument("--json", action="store_true", help="print search.json")
    _add_executor(p)
    add_plugin_argument(p)
    p.set_defaults(func=run_search)


def run_search(args) -> int:
    from pathlib import Path

    from .. import claims, safety, search
    from ..sweep_spec import parse_assignments

    if args.list:
        named = claims.named_claims()
        if args.json:
            print_json(
                [{"name": c.name, "sentence": c.sentence, "metric": c.metric, "paper": c.paper} for c in named.values()]
            )
            return 0
        for c in named.values():
            print(f"{c.name}: {c.sentence} [{c.metric}]" + ("" if c.paper else " (a pair, not the paper's sentence)"))
        return 0
    if args.claim is None or args.trials is None:
        raise ValueError("give --claim NAME and --trials N (--list names the claims)")
    claims.get_claim(args.claim)
    if args.trials < 1:
        raise ValueError(f"--trials must be >= 1, got {args.trials}")
    _check_executor(args)
    fixed = search.base_fixed(args.claim, parse_assignments(args.fix, False))
    space = search.load_space(args.space, fixed) if args.space else search.make_space(search.DEFAULT_SPACE, fixed)
    out = Path(args.out) if args.out else Path("runs") / f"search-{args.claim.replace(':', '-')}"
    safety.check_out_dir(out)

    def progress(o) -> None:
        if not args.json:
            verdict = "error: " + o.error if o.error else f"score {o.score:.2f}, holds: {o.holds}"
            err(f"trial {o.number}: {verdict} ({o.seconds:.1f} s)")

    try:
        outcome = search.run_search(
            args.claim,
            args.trials,
            space,
            fixed,
            out=out,
            storage=args.storage,
            workers=args.workers,
            executor=args.executor,
            address=args.address,
            seed=args.seed,
            on_trial=progress,
        )
    except KeyboardInterrupt:
        err(f"{PROG} search: interrupted; finished trials are kept in {out}; rerun the same command to continue")
        return EXIT_INTERRUPT
    paths = search.write_files(outcome, out)
    record = search.summary(outcome)
    if args.json:
        print_json(record)
        return 0
    judged = record["judged"]
    share = f"{record['held']}/{judged} ({100 * record['share_held']:.0f}%)" if judged else "0/0"
    print(f"claim {args.claim} ({record['sentence']}): holds in {share} of the judged trials")
    best = record["best"]
    if best is not None:
        print(f"best: trial {best['number']}, score {best['score']:.3f}, holds: {best['holds']}")
        print(f"  settings: {best['params']}")
        print(
            f"confirm with more, fresh seeds: {PROG} sweep --grid {out / 'spec.json'} --out {out / 'confirm'} --report"
        )
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
