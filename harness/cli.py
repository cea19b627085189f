"""Command line: ``run_eval.py [run] --model NAME --tasks T1,T2 ...`` and its sub-commands.

Sub-commands: ``run`` (the default), ``score RUN_DIR``, ``list tasks|models``, ``check-data``,
``report RUN_DIR... --out DIR`` (leaderboards), ``compare BASELINE CURRENT`` (regression check) and
``analyze RUN_DIR`` (seg-token semantics against IoU).
Bad input ends with a one-line ``error: ...`` and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from harness.arguments import parse_arg_string
from harness.distributed import Distributed
from harness.errors import DataError, UnknownNameError, UserError
from harness.model import MODELS, get_model
from harness.results import ModelInfo, Results, read_json
from harness.runner import RunSettings, RunStopped, evaluate
from harness.task import TASKS, TaskGroup, expand_task_names, get_task, require_data, split_task_arguments

DEFAULT_DATA_ROOT = Path("data/mini")


class _Parser(argparse.ArgumentParser):
    """argparse that raises `UserError` instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UserError(f"{self.prog}: {message}")


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="registered model adapter (see `list models`)")
    parser.add_argument("--model-args", default="", help="adapter options, key=value[,key=value...]")
    parser.add_argument("--tasks", required=True, help="comma-separated tasks or groups (see `list tasks`)")
    parser.add_argument(
        "--task-args",
        default="",
        help="task options, TASK_OR_FAMILY.option=value[,...], e.g. pope.parser=opera",
    )
    parser.add_argument("--data-root", type=Path, default=None, help=f"data folder (default: {DEFAULT_DATA_ROOT})")
    parser.add_argument("--output-dir", type=Path, default=None, help="run folder (default: runs/MODEL)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N samples of each task")
    parser.add_argument("--batch-size", type=int, default=None, help="requests per adapter call")
    parser.add_argument("--seed", type=int, default=0, help="seed for Python, NumPy, torch and the bootstrap")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failing sample")
    parser.add_argument("--bootstrap-iters", type=int, default=1000, help="bootstrap resamples (0 disables)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every sub-command."""
    parser = _Parser(prog="run_eval.py", description="Evaluate multimodal segmentation models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)
    run = commands.add_parser(
        "run",
        help="predict and score (the default command)",
        description="Predict and score (the default command: `run_eval.py --model ... --tasks ...`). "
        f"Other commands: {', '.join(name for name in COMMANDS if name != 'run')} "
        "(see `run_eval.py COMMAND --help`).",
    )
    _add_run_options(run)
    score = commands.add_parser("score", help="re-score a run folder from its cache, without the model")
    score.add_argument("run_dir", type=Path)
    score.add_argument("--bootstrap-iters", type=int, default=None)
    listing = commands.add_parser("list", help="list registered tasks or models")
    listing.add_argument("what", choices=["tasks", "models"])
    check = commands.add_parser("check-data", help="list the data files present, missing or malformed")
    check.add_argument("--tasks", required=True)
    check.add_argument("--task-args", default="")
    check.add_argument("--data-root", type=Path, default=None)
    report = commands.add_parser("report", help="write leaderboard.{html,csv,md,tex} over run folders")
    report.add_argument("run_dirs", type=Path, nargs="+", metavar="RUN_DIR", help="run folders (one row each)")
    report.add_argument("--out", type=Path, required=True, help="folder for the leaderboard files")
    compare = commands.add_parser(
        "compare",
        help="compare two runs; exit 1 when a metric got worse",
        description="Print the metric differences of two runs. Exit status: 0 when no metric is worse than its "
        "tolerance, 1 when one is (or disappeared), 2 when a run cannot be read.",
    )
    compare.add_argument("baseline", type=Path, metavar="BASELINE", help="the reference run folder")
    compare.add_argument("current", type=Path, metavar="CURRENT", help="the run folder to check")
    compare.add_argument(
        "--tolerance",
        action="extend",
        nargs="+",
        default=[],
        metavar="METRIC=VALUE",
        help="allowed worsening in results.json units (0.01 = 1 point); METRIC is task/metric, metric or *",
    )
    compare.add_argument("--bootstrap-iters", type=int, default=1000, help="paired bootstrap resamples (0 disables)")
    compare.add_argument("--seed", type=int, default=0, help="seed of the paired bootstrap")
    analyze = commands.add_parser(
        "analyze",
        help="correlate [SEG] probe semantics with IoU in a finished run",
        description="For samples whose predictions carry [SEG] probes: rank and probability of the target's "
        "category (and attribute) words in the logit-lens distribution, their Spearman and Pearson correlation "
        "with per-sample IoU (bootstrap intervals), IoU by rank, and the per-layer curve. Writes "
        "RUN_DIR/analysis/seg_semantics{.csv,_layers.csv,.json} and plots, and rewrites the run report.",
    )
    analyze.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    analyze.add_argument("--tasks", default=None, help="comma-separated tasks to analyse (default: every task)")
    analyze.add_argument("--out", type=Path, default=None, help="output folder (default RUN_DIR/analysis)")
    analyze.add_argument("--bootstrap-iters", type=int, default=1000, help="bootstrap resamples (default 1000)")
    analyze.add_argument("--seed", type=int, default=None, help="bootstrap seed (default: the run's seed)")
    return parser


def _resolve_tasks(spec: str, task_args: str) -> tuple[list, dict[str, str], dict[str, list[str]]]:
    """Tasks of ``spec`` with their options, and every group whose tasks all run (for group means)."""
    names = expand_task_names(spec)
    plain = [get_task(name) for name in names]
    routed = split_task_arguments(task_args, names, {task.name: task.family for task in plain})
    tasks = [get_task(name, routed[name]) if routed[name] else task for name, task in zip(names, plain, strict=True)]
    chosen = set(names)
    groups = {}
    for name in TASKS.names():
        if isinstance(TASKS.get(name), TaskGroup):
            members = expand_task_names(name)
            if set(members) <= chosen:
                groups[name] = members
    return tasks, routed, groups


def _data_root(given: Path | None) -> Path:
    if given is not None:
        return given
    from tasks import ensure_default_data_root

    return ensure_default_data_root(DEFAULT_DATA_ROOT)


def _format_value(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for number, row in enumerate(rows):
        cells = [
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return lines


def print_results(results: Results, output_dir: Path) -> None:
    """Tables of every task's metrics (percentages), one table per set of metrics, and where the outputs are."""
    lines = [f"model: {results['model']['name']}  (fingerprint {results['model']['fingerprint'][:12]})"]
    by_metrics: dict[tuple[str, ...], list[str]] = {}
    for name, task in results["tasks"].items():
        by_metrics.setdefault(tuple(task["metrics"]), []).append(name)
    for metric_names, task_names in by_metrics.items():
        rows = [["task", "n", "failed", *metric_names]]
        for name in task_names:
            task = results["tasks"][name]
            values = [_format_value(task["metrics"][metric]) for metric in metric_names]
            rows.append([name, str(task["n_samples"]), str(task["n_failed"]), *values])
        for group, means in results["groups"].items():
            if tuple(means) == metric_names:
                rows.append([f"{group} (mean)", "", "", *(_format_value(means[m]) for m in metric_names)])
        lines += ["", *_table(rows)]
    failures = [
        f"{name}: " + ", ".join(f"{reason}: {count}" for reason, count in task["failures"].items())
        for name, task in results["tasks"].items()
        if task["failures"]
    ]
    if failures:
        lines += ["", "failed samples (left out of the metrics; see the samples log):", *failures]
    lines += [
        "",
        "values are percentages of the fractions in results.json, which also holds 95% bootstrap intervals",
        f"results: {output_dir / 'results.json'}",
        f"samples: {output_dir / 'samples'}",
    ]
    print("\n".join(lines))


def write_report(output_dir: Path) -> None:
    """Write ``RUN_DIR/report.html``; a failure is a warning, since the results are already saved."""
    from reports import write_run_report

    try:
        path = write_run_report(output_dir)
    except Exception as error:
        print(f"warning: report not written: {type(error).__name__}: {error}", file=sys.stderr)
    else:
        print(f"report: {path}")


def command_run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Predict and score."""
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be a positive number of samples")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if args.model not in MODELS:
        raise UnknownNameError("model", args.model, MODELS.names())
    parse_arg_string(args.model_args)
    tasks, routed, groups = _resolve_tasks(args.tasks, args.task_args)
    data_root = _data_root(args.data_root)
    require_data(tasks, data_root)
    adapter = get_model(args.model, args.model_args)
    output_dir = args.output_dir or Path("runs") / args.model
    settings = RunSettings(
        data_root=data_root,
        output_dir=output_dir,
        limit=args.limit,
        batch_size=args.batch_size,
        seed=args.seed,
        fail_fast=args.fail_fast,
        bootstrap_iters=args.bootstrap_iters,
        progress=not args.no_progress,
        command=shlex.join(["run_eval.py", *argv]),
        task_args=routed,
        groups=groups,
    )
    model_info = ModelInfo(
        name=args.model,
        args=args.model_args,
        options={key: str(value) for key, value in sorted(adapter.options.items())},
        fingerprint=adapter.fingerprint(),
    )
    distributed = Distributed.from_launcher()
    try:
        results = evaluate(adapter, tasks, settings, model_info=model_info, distributed=distributed)
    finally:
        distributed.close()
    if results is not None:
        print_results(results, output_dir)
        write_report(output_dir)
    return 0


def command_score(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Re-score a run folder from its cache."""
    record = read_json(args.run_dir / "run.json", "run record")
    try:
        tasks = [
            get_task(name, record["task_args"].get(name, "")).with_prompt(record["prompt_templates"][name])
            for name in record["tasks"]
        ]
        settings = RunSettings(
            data_root=Path(record["data_root"]),
            output_dir=args.run_dir,
            limit=record["limit"],
            seed=record["seed"],
            bootstrap_iters=record["bootstrap_iters"] if args.bootstrap_iters is None else args.bootstrap_iters,
            progress=False,
            command=shlex.join(["run_eval.py", *argv]),
            task_args=record["task_args"],
            groups=record["groups"],
        )
        model_info = ModelInfo(**record["model"])
    except (KeyError, TypeError) as error:
        raise DataError(f"{args.run_dir / 'run.json'} lacks field {error}; was it written by run_eval.py?") from None
    results = evaluate(None, tasks, settings, model_info=model_info)
    assert results is not None
    print_results(results, args.run_dir)
    write_report(args.run_dir)
    return 0


def command_list(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Print registered tasks (with their family and kind) or models."""
    if args.what == "models":
        for name in MODELS.names():
            print(name)
        return 0
    for name in TASKS.names():
        entry = TASKS.get(name)
        if isinstance(entry, TaskGroup):
            print(f"{name:<28} group: {', '.join(entry.members)}")
        else:
            print(f"{name:<28} {entry.family:<12} {entry.kind}")
    return 0


def command_check_data(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Report, per task, which annotation files are present, missing or malformed, and whether every image
    the samples name exists; exit 1 if anything is not OK."""
    tasks, _, _ = _resolve_tasks(args.tasks, args.task_args)
    data_root = _data_root(args.data_root)
    bad = 0
    for task in tasks:
        for role, path in task.data_files(data_root).items():
            print(f"{task.name:<24} {role:<16} {'present' if path.exists() else 'MISSING':<8} {path}")
        if task.missing_files(data_root):
            bad += 1
            continue
        try:
            samples = task.samples(data_root)
        except UserError as error:
            bad += 1
            print(f"{task.name:<24} MALFORMED: {error}")
            continue
        images = sorted({sample.image for sample in samples})
        absent = [image for image in images if not Path(image).is_file()]
        if absent:
            bad += 1
            print(f"{task.name:<24} MISSING {len(absent)} of {len(images)} images, e.g. {absent[0]}")
        else:
            print(f"{task.name:<24} ok: {len(samples)} samples, {len(images)} images")
    return 1 if bad else 0


def command_report(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Write the leaderboard files of several runs."""
    from reports import write_leaderboard

    for path in write_leaderboard(args.run_dirs, args.out).values():
        print(path)
    return 0


def command_compare(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Print the differences between two runs; 1 when a metric is worse than its tolerance."""
    from reports.compare import compare_runs, format_comparison, parse_tolerances

    tolerances = parse_tolerances(args.tolerance)
    comparison = compare_runs(
        args.baseline, args.current, tolerances, bootstrap_iters=args.bootstrap_iters, seed=args.seed
    )
    print(format_comparison(comparison))
    return comparison.exit_code()


def command_analyze(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Write the seg-token semantic analysis of a finished run and print its correlations."""
    from reports.analysis import write_analysis

    if args.bootstrap_iters < 0:
        raise UserError("--bootstrap-iters must be 0 or more")
    tasks = [name.strip() for name in args.tasks.split(",") if name.strip()] if args.tasks else None
    analyses, paths = write_analysis(
        args.run_dir, args.out, iterations=args.bootstrap_iters, seed=args.seed, tasks=tasks
    )
    for name, analysis in analyses.items():
        print(f"{name}: {len(analysis.samples)} samples with [SEG] probes scored")
        for measure, value in analysis.correlations.items():
            interval = value.spearman_interval
            shown = f" [{interval[0]:+.3f}, {interval[1]:+.3f}]" if interval else ""
            print(f"  {measure:<22} n={value.n:<6} Spearman {value.spearman:+.3f}{shown}  Pearson {value.pearson:+.3f}")
        for reason, count in sorted(analysis.skipped.items()):
            print(f"  left out: {reason}: {count}")
    for path in paths.values():
        print(path)
    write_report(args.run_dir)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Sequence[str]], int]] = {
    "run": command_run,
    "score": command_score,
    "list": command_list,
    "check-data": command_check_data,
    "report": command_report,
    "compare": command_compare,
    "analyze": command_analyze,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``run_eval.py`` and the ``attreval`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    if not argv or argv[0] not in COMMANDS:
        argv = ["run", *argv]
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command](args, argv)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except RunStopped as error:
        print(f"stopped (--fail-fast): {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished samples are cached; rerun the same command to resume", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        print(
            f"internal error: {type(error).__name__}: {error} (rerun with --debug for a traceback)",
            file=sys.stderr,
        )
        return 1


__all__ = ["COMMANDS", "build_parser", "main", "print_results"]
