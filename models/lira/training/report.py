"""A training run's HTML page: one self-contained file (`report.html`, plots embedded as PNG data) with the
summary, the data mix and what was left out, the loss, learning-rate, gradient-norm and throughput curves from
`metrics.jsonl`, and the configuration. Rendered with the reports' jinja2 environment (autoescaping on)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from models.lira.training.logbook import LOSS_KEYS, read_metrics, summarise
from reports.rendering import environment, static

RUN_FILE = "run.json"
"""The run's description (config, data counts, status), written by the trainer beside `metrics.jsonl`."""


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _curve(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], title: str, log_scale: bool = False) -> str | None:
    """A line plot of `keys` against the step, as a data URI; None when no row has a value. Series that are 0
    throughout (the projection loss in stage 2, the mask losses in stage 1) are left out."""
    from matplotlib.figure import Figure  # imported lazily: matplotlib is slow to import

    series = {key: [(row["step"], row[key]) for row in rows if row.get(key) is not None] for key in keys}
    series = {key: points for key, points in series.items() if any(value for _, value in points)}  # 0 = unused
    if not series:
        return None
    figure = Figure(figsize=(6.4, 3.2), dpi=100, layout="constrained")
    axes = figure.subplots()
    for key, points in series.items():
        steps, values = zip(*points, strict=True)
        axes.plot(steps, values, label=key, linewidth=1.2, marker="." if len(points) < 40 else None)
    axes.set_xlabel("optimizer step")
    axes.set_title(title)
    if log_scale and all(value > 0 for points in series.values() for _, value in points):
        axes.set_yscale("log")
    if len(series) > 1:
        axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    return _png(figure)


def write_training_report(run_dir: Path) -> Path:
    """Render `run_dir/report.html` from `run.json` and `metrics.jsonl`."""
    run = json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    metrics_path = run_dir / "metrics.jsonl"
    rows = read_metrics(metrics_path) if metrics_path.exists() else []
    totals = summarise(rows)
    plots = [
        ("Losses", _curve(rows, LOSS_KEYS, "loss (mean over the step's iterations)")),
        ("Learning rate", _curve(rows, ["lr"], "learning rate")),
        ("Gradient norm", _curve(rows, ["grad_norm"], "gradient norm before clipping", log_scale=True)),
        ("Throughput", _curve(rows, ["tokens_per_second"], "text tokens per second (all ranks)")),
    ]
    config = run["config"]
    summary = [
        ("status", run.get("status", "")),
        ("stage", config["stage"]),
        ("model", config["model"]["preset"]),
        ("command", run.get("command", "")),
        ("started", run.get("started", "")),
        ("finished", run.get("finished") or ""),
        ("device", run.get("device", "")),
        ("ranks", f"{run.get('world_size', 1)} ({config['distributed']['strategy']})"),
        ("precision", run.get("precision", "")),
        ("steps", f"{totals['steps']} logged of {run.get('total_steps', '?')}"),
        ("samples trained", str(totals["samples"])),
        ("text tokens", str(totals["text_tokens"])),
        ("training time", f"{totals['seconds']:.1f} s"),
        ("first / last loss", f"{totals['first_loss']} / {totals['last_loss']}"),
        ("exported weights", run.get("export") or "(not yet)"),
        ("config fingerprint", run.get("fingerprint", "")),
    ]
    data = run.get("data", {})
    skipped = {**data.get("skipped", {}), **{f"{k} (when loaded)": v for k, v in run.get("load_skipped", {}).items()}}
    examples = data.get("skip_examples", {})
    page = (
        environment()
        .get_template("training_report.html.j2")
        .render(
            title=f"LIRA training: {run_dir.name}",
            css=static("report.css"),
            summary=summary,
            per_source=sorted(data.get("per_source", {}).items()),
            indices=data.get("indices_per_epoch"),
            skipped=sorted(skipped.items()),
            examples=examples,
            plots=[(title, uri) for title, uri in plots if uri is not None],
            last_rows=rows[-10:],
            loss_keys=LOSS_KEYS,
            config_yaml=yaml.safe_dump(config, sort_keys=False),
            notes=run.get("notes", []),
        )
    )
    path = run_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["RUN_FILE", "write_training_report"]
