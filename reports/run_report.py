"""The per-run report: ``RUN_DIR/report.html`` and its folder of files ``RUN_DIR/report_files/``.

The page holds the summary (model, fingerprint, command, data hashes, protocols), every task's
metrics with bootstrap intervals, failure counts with reasons, plots, and a per-sample drill-down.
The drill-down's data live beside the page as script files (one index per task, details in chunks
of `CHUNK_SIZE` samples loaded when a page of the table needs them), so 10,000 samples stay fast
and the report opens from disk with no server::

    report.html
    report_files/plots/*.png             matplotlib figures
    report_files/images/*.jpg            one thumbnail per distinct sample image
    report_files/data/<task>/index.js    per-sample ids, short texts, values, worst-first order
    report_files/data/<task>/chunk-NNNNN.js   full texts, targets, score records and masks (RLE)
    report_files/seg_semantics*.{csv,json}    the seg-token analysis, for runs with `[SEG]` probes

Runs whose segmentation samples carry `[SEG]` probes get a "[SEG] semantics" section
(`reports.analysis`): correlations of the target word's probability and rank with IoU, with bootstrap
intervals, mean IoU per rank, the per-layer curve, and the per-sample values as CSV.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness.results import TaskResult, clean_numbers
from reports.analysis import TaskSemantics, analyse_run, write_tables
from reports.formatting import percent, safe_json, slugify
from reports.images import write_thumbnails
from reports.plots import (
    Plot,
    chair_plot,
    is_chair,
    is_segmentation,
    is_yes_no,
    sample_ious,
    segmentation_plots,
    semantics_plots,
    yes_no_confusion,
    yes_no_plot,
)
from reports.rendering import environment, static
from reports.rundata import RunFolder, load_run
from reports.samples import SampleTable, predicted_masks, sample_table, summarise_masks, target_masks

CHUNK_SIZE = 200
"""Samples per detail file of the drill-down."""
SHORT_TEXT = 200
"""Characters of prompt, model text and target kept in the drill-down table (the details hold all)."""
FAILED_LISTED = 50
"""Failed samples listed by name in a task's failure section."""
FILES = "report_files"


def _short(text: str, limit: int = SHORT_TEXT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _target_text(target: Any) -> str:
    summary = summarise_masks(target)
    if isinstance(summary, dict) and len(summary) == 1:
        value = next(iter(summary.values()))
        if isinstance(value, str):
            return value
    return json.dumps(summary, ensure_ascii=False, sort_keys=True)


def _options(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in options.items())


def protocol_name(config: Mapping[str, Any]) -> str:
    """``{"name": "pope", "parser": "official"}`` -> ``"pope(parser=official)"``."""
    options = {key: value for key, value in config.items() if key != "name"}
    return f"{config.get('name', '?')}({_options(options)})" if options else str(config.get("name", "?"))


def _write_script(path: Path, call: str, *arguments: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = ",".join(safe_json(argument) for argument in arguments)
    path.write_text(f"{call}({body});\n", encoding="utf-8")


@dataclass
class _TaskView:
    name: str
    slug: str
    family: str
    kind: str
    n_samples: int
    n_failed: int
    metrics: list[dict[str, str]]
    protocol: list[tuple[str, str]]
    data_hashes: list[tuple[str, str]]
    failures: list[tuple[str, int]]
    samples_file: str
    failed_samples: list[tuple[str, str]] = field(default_factory=list)
    more_failed: bool = False
    has_samples: bool = False
    primary: str | None = None
    primary_higher: bool = True
    plots: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _task_view(name: str, slug: str, task: TaskResult) -> _TaskView:
    config = task["config"]
    metrics = []
    for metric, value in task["metrics"].items():
        interval = task["intervals"].get(metric)
        direction = task["higher_is_better"].get(metric)
        metrics.append(
            {
                "name": metric,
                "value": percent(value),
                "interval": f"{percent(interval[0])} – {percent(interval[1])}" if interval else "",
                "direction": "" if direction is None else ("higher" if direction else "lower"),
                "definition": task["definitions"].get(metric, ""),
            }
        )
    protocol = [("metrics (protocols)", "; ".join(protocol_name(m) for m in config.get("metrics", [])) or "none")]
    protocol.append(("task options", _options(config.get("options", {})) or "defaults"))
    protocol.append(("prompt template", str(config.get("prompt_template", ""))))
    if config.get("retry_prompts"):
        protocol.append(("retry prompts", " | ".join(map(str, config["retry_prompts"]))))
    protocol.append(("generation", json.dumps(config.get("generation", {}), sort_keys=True)))
    if config.get("want_probes"):
        protocol.append(("[SEG] probes", "recorded"))
    protocol.append(("task fingerprint", task["fingerprint"]))
    return _TaskView(
        name=name,
        slug=slug,
        family=str(config.get("family", "")),
        kind=str(config.get("kind", "")),
        n_samples=task["n_samples"],
        n_failed=task["n_failed"],
        metrics=metrics,
        protocol=protocol,
        data_hashes=sorted(task["data_hashes"].items()),
        failures=sorted(task["failures"].items(), key=lambda item: (-item[1], item[0])),
        samples_file=f"samples/{name}.jsonl",
    )


def _summary(run: RunFolder) -> list[tuple[str, str]]:
    results = run.results
    runtime = results.get("runtime", {})
    model = results["model"]
    rows = [
        ("model", model["name"]),
        ("model args", model.get("args") or "(none)"),
        ("model options", _options(model.get("options", {})) or "(none)"),
        ("model fingerprint", model["fingerprint"]),
        ("command", str(runtime.get("command", "(not recorded)"))),
        ("date", str(runtime.get("date", "(not recorded)"))),
        ("harness", f"attreval {results.get('harness_version', '?')}, commit {results.get('git_commit') or 'unknown'}"),
        ("seed", str(results.get("seed"))),
        ("sample limit", "none" if results.get("limit") is None else str(results["limit"])),
    ]
    if "data_root" in runtime:
        rows.append(("data root", str(runtime["data_root"])))
    if "world_size" in runtime:
        rows.append(
            ("ranks / batch size", f"{runtime['world_size']} / {runtime.get('batch_size') or 'adapter default'}")
        )
    total = runtime.get("timings", {}).get("total_s")
    if isinstance(total, (int, float)):
        rows.append(("wall time", f"{total:.1f} s"))
    for name, task in run.tasks.items():
        protocols = "; ".join(protocol_name(m) for m in task["config"].get("metrics", []))
        hashes = ", ".join(f"{role} {digest}" for role, digest in sorted(task["data_hashes"].items()))
        rows.append((f"{name}", f"protocols: {protocols or 'none'} | data sha256: {hashes or 'none'}"))
    return rows


def _drill_index(
    name: str, slug: str, rows: Sequence[Mapping[str, Any]], table: SampleTable, thumbs: Mapping[str, str]
) -> dict[str, Any]:
    predictions = [row.get("prediction") or {} for row in rows]
    masks = [(target_masks(row.get("target") or {}), predicted_masks(row.get("prediction"))) for row in rows]
    thumb = [thumbs.get(str(row.get("image", ""))) for row in rows]
    return {
        "task": name,
        "slug": slug,
        "chunk_size": CHUNK_SIZE,
        "chunk_prefix": f"{FILES}/data/{slug}/chunk-",
        "image_prefix": f"{FILES}/images/",
        "has_images": any(thumb),
        "has_masks": any(gt or pred for gt, pred in masks),
        "columns": table.columns,
        "directions": table.directions,
        "primary": table.primary,
        "index": [row["index"] for row in rows],
        "id": [row["sample_id"] for row in rows],
        "prompt": [_short(str(row.get("prompt", ""))) for row in rows],
        "text": [_short(str(prediction.get("text", ""))) for prediction in predictions],
        "target": [_short(_target_text(row.get("target", {}))) for row in rows],
        "error": [row.get("error") for row in rows],
        "values": {column: [values.get(column) for values in table.values] for column in table.columns},
        "thumb": thumb,
        "worst": table.worst_first(rows),
    }


def _drill_details(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    details = []
    for row in rows:
        prediction = row.get("prediction") or {}
        details.append(
            {
                "image": str(row.get("image", "")),
                "prompt": str(row.get("prompt", "")),
                "text": str(prediction.get("text", "")),
                "phrases": [str(phrase) for phrase in prediction.get("phrases", [])],
                "target": json.dumps(summarise_masks(row.get("target", {})), ensure_ascii=False, indent=1),
                "scores": json.dumps(row.get("scores", {}), ensure_ascii=False, indent=1, sort_keys=True),
                "gt": target_masks(row.get("target") or {}),
                "pred": predicted_masks(row.get("prediction")),
            }
        )
    return details


def _label_count_matches(rows: Sequence[Mapping[str, Any]], confusion: Mapping[str, int]) -> bool:
    """Cross-check derived yes/no counts against the ``label`` of the scored samples, when targets have one."""
    labels = [row.get("target", {}).get("label") for row in rows if row.get("error") is None]
    if not labels or not all(label in ("yes", "no") for label in labels):
        return True
    return labels.count("yes") == confusion["TP"] + confusion["FN"]


def _number(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.3f}"


def _span(interval: Sequence[float] | None) -> str:
    return "" if not interval else f"{interval[0]:+.3f} – {interval[1]:+.3f}"


MEASURES = {
    "category_probability": "category word: probability",
    "category_rank": "category word: rank (1 = top)",
    "color_probability": "colour word: probability",
    "position_probability": "position word: probability",
    "relation_probability": "relation word: probability",
}


def _semantics_view(analysis: TaskSemantics, slug: str, plots: list[dict[str, str]]) -> dict[str, Any]:
    correlations = [
        {
            "measure": MEASURES.get(name, name),
            "n": value.n,
            "spearman": _number(value.spearman),
            "spearman_interval": _span(value.spearman_interval),
            "pearson": _number(value.pearson),
            "pearson_interval": _span(value.pearson_interval),
        }
        for name, value in analysis.correlations.items()
    ]
    notes = [f"left out: {reason}: {count}" for reason, count in sorted(analysis.skipped.items())]
    notes += [f"not scored: {reason}: {count}" for reason, count in sorted(analysis.unmatched.items())]
    bins = [(item["bin"], item["n"], percent(item["mean_iou"])) for item in analysis.bins]
    return {
        "task": analysis.task,
        "slug": slug,
        "scored": len(analysis.samples),
        "correlations": correlations,
        "bins": bins,
        "plots": plots,
        "notes": notes,
    }


def write_run_report(run_dir: Path, *, thumbnails: bool = True) -> Path:
    """Write ``RUN_DIR/report.html`` (and ``RUN_DIR/report_files/``) from the run's files; returns its path.

    Args:
        run_dir: a run folder holding ``results.json`` and, normally, ``samples/``.
        thumbnails: copy scaled sample images beside the report (turn off for a text-only drill-down).
    """
    run = load_run(run_dir)
    folder = run.path / FILES
    for stale in ("data", "plots"):
        shutil.rmtree(folder / stale, ignore_errors=True)
    plots_folder = folder / "plots"
    taken: set[str] = set()
    views: list[_TaskView] = []
    logs: dict[str, tuple[list[dict[str, Any]], SampleTable]] = {}
    for name, task in run.tasks.items():
        view = _task_view(name, slugify(name, taken), task)
        views.append(view)
        if run.has_samples(name):
            rows = run.samples(name)
            table = sample_table(task, rows)
            logs[name] = (rows, table)
            failed = [(row["sample_id"], str(row["error"])) for row in rows if row.get("error") is not None]
            view.failed_samples, view.more_failed = failed[:FAILED_LISTED], len(failed) > FAILED_LISTED
            view.has_samples = True
            view.primary = table.primary
            view.primary_higher = table.directions.get(table.primary, True) if table.primary else True

    sources = [str(row.get("image", "")) for rows, _ in logs.values() for row in rows if row.get("image")]
    thumbs = write_thumbnails(sources, folder / "images") if thumbnails else {}
    if not thumbnails:
        shutil.rmtree(folder / "images", ignore_errors=True)

    data_scripts = []
    for view in views:
        if view.name not in logs:
            continue
        rows, table = logs[view.name]
        index = clean_numbers(_drill_index(view.name, view.slug, rows, table, thumbs))
        _write_script(folder / "data" / view.slug / "index.js", "attrevalIndex", index)
        data_scripts.append(f"{FILES}/data/{view.slug}/index.js")
        for number, start in enumerate(range(0, len(rows), CHUNK_SIZE)):
            details = _drill_details(rows[start : start + CHUNK_SIZE])
            _write_script(
                folder / "data" / view.slug / f"chunk-{number:05d}.js", "attrevalChunk", view.slug, number, details
            )

    def show(plot: Plot) -> dict[str, str]:
        return {"title": plot.title, "caption": plot.caption, "src": f"{FILES}/plots/{plot.file}"}

    confusions: dict[str, dict[str, int]] = {}
    for view in views:
        task = run.tasks[view.name]
        rows, table = logs.get(view.name, ([], None))
        if is_segmentation(task) and table is not None:
            made = segmentation_plots(task, *sample_ious(rows, table), plots_folder, view.slug)
            view.plots += [show(plot) for plot in made.plots]
            view.notes += made.notes
        if is_chair(task) and table is not None:
            made = chair_plot(rows, table, plots_folder, view.slug)
            view.plots += [show(plot) for plot in made.plots]
            view.notes += made.notes
        if is_yes_no(task):
            confusion = yes_no_confusion(task)
            if confusion is None or not _label_count_matches(rows, confusion):
                view.notes.append("yes/no confusion counts cannot be derived from accuracy, precision and yes_ratio")
            else:
                confusions[view.name] = confusion
    run_plots = [show(yes_no_plot(confusions, plots_folder))] if confusions else []

    semantics = []
    analyses = analyse_run(run)
    for stale in (folder / name for name in ("seg_semantics.csv", "seg_semantics_layers.csv", "seg_semantics.json")):
        stale.unlink(missing_ok=True)
    if analyses:
        write_tables(analyses, folder)
        slugs = {view.name: view.slug for view in views}
        for name, analysis in analyses.items():
            made = [show(plot) for plot in semantics_plots(analysis, plots_folder, slugs[name])]
            semantics.append(_semantics_view(analysis, slugs[name], made))

    results = run.results
    groups = [
        {"name": group, "metrics": [(metric, percent(value)) for metric, value in values.items()]}
        for group, values in results.get("groups", {}).items()
        if values
    ]
    page = (
        environment()
        .get_template("run_report.html.j2")
        .render(
            harness_version=harness.__version__,
            model=results["model"],
            summary=_summary(run),
            tasks=views,
            groups=groups,
            run_plots=run_plots,
            confusions=confusions,
            semantics=semantics,
            semantics_files=[f"{FILES}/seg_semantics.csv", f"{FILES}/seg_semantics_layers.csv"],
            confidence="95%",
            data_scripts=data_scripts,
            css=static("report.css"),
            script=static("report.js"),
        )
    )
    target = run.path / "report.html"
    handle, temporary = tempfile.mkstemp(dir=run.path, prefix=".report.html.")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(page)
    os.chmod(temporary, 0o644)
    os.replace(temporary, target)
    return target


__all__ = ["CHUNK_SIZE", "protocol_name", "write_run_report"]
