"""Plots of a run (matplotlib, PNG files beside the report), chosen by the metric names a task reports.

- segmentation (reports cIoU, gIoU, mIoU or P@x): histogram of per-sample IoU and the share of
  samples with IoU >= t for every threshold t, with the reported P@x values marked;
- POPE-style yes/no (reports accuracy, precision, recall and yes_ratio): confusion counts per task
  (setting), derived exactly from those values and the number of scored samples;
- CHAIR (reports CHAIR_s and CHAIR_i): per-caption CHAIR against caption length in words;
- seg-token semantics (`reports.analysis`, for runs with `[SEG]` probes): the target word's probability
  against IoU, mean IoU per category rank, and the per-layer correlation curve.

Nothing here looks at dataset or task names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.results import TaskResult
from reports.formatting import SCALE, normalised_name
from reports.samples import SampleTable

SEGMENTATION_NAMES = {"ciou", "giou", "miou"}
POPE_NAMES = {"accuracy", "precision", "recall", "yesratio"}
CHAIR_NAMES = {"chairs", "chairi"}


@dataclass(frozen=True)
class Plot:
    """One figure of the report: ``file`` is relative to the report's folder."""

    title: str
    file: str
    caption: str


@dataclass
class TaskPlots:
    """Figures of one task, and why any expected figure was left out."""

    plots: list[Plot]
    notes: list[str]


def _names(metrics: Mapping[str, Any]) -> set[str]:
    return {normalised_name(name) for name in metrics}


def is_segmentation(task: TaskResult) -> bool:
    return bool(_names(task["metrics"]) & SEGMENTATION_NAMES) or any(name.startswith("P@") for name in task["metrics"])


def is_yes_no(task: TaskResult) -> bool:
    return _names(task["metrics"]) >= POPE_NAMES


def is_chair(task: TaskResult) -> bool:
    return _names(task["metrics"]) >= CHAIR_NAMES


def _find(metrics: Mapping[str, Any], normalised: str) -> Any:
    return next((value for name, value in metrics.items() if normalised_name(name) == normalised), None)


def _figure(width: float = 5.6, height: float = 3.4) -> Any:
    from matplotlib.figure import Figure  # imported lazily: matplotlib is slow to import

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(figure: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})


# ---------------------------------------------------------------------------
# Segmentation
# ---------------------------------------------------------------------------


def _column(table: SampleTable, *names: str) -> str | None:
    """The first column whose (unqualified) normalised name is one of ``names``, in that preference."""
    for name in names:
        found = next((c for c in table.columns if normalised_name(c.rsplit(".", 1)[-1]) == name), None)
        if found is not None:
            return found
    return None


def sample_ious(rows: Sequence[Mapping[str, Any]], table: SampleTable) -> tuple[list[float], str]:
    """IoU of every scored sample, and what it is (``"IoU"`` or ``"mIoU"``).

    Taken from the sample's ``iou`` value, else its ``miou`` value (the mean over the sample's masks,
    as in GCG), else ``intersection / union`` of its record; a sample whose intersection and union
    are both 0 (empty prediction, empty target) has IoU 1.
    """
    column = _column(table, "iou", "miou")
    what = "mIoU" if column is not None and normalised_name(column.rsplit(".", 1)[-1]) == "miou" else "IoU"
    ious = []
    for row, values in zip(rows, table.values, strict=True):
        if row.get("error") is not None:
            continue
        if column is not None and column in values:
            ious.append(values[column])
            continue
        for record in row.get("scores", {}).values():
            if isinstance(record, dict) and {"intersection", "union"} <= record.keys():
                intersection, union = float(record["intersection"]), float(record["union"])
                ious.append(intersection / union if union > 0 else 1.0)
                break
    return ious, what


def threshold_precision(ious: Sequence[float], thresholds: np.ndarray) -> np.ndarray:
    """Share of samples with IoU >= t, for each threshold t."""
    values = np.asarray(ious, dtype=float)
    return (values[None, :] >= thresholds[:, None]).mean(axis=1)


def segmentation_plots(task: TaskResult, ious: Sequence[float], what: str, folder: Path, stem: str) -> TaskPlots:
    """IoU histogram and precision-at-threshold curve; ``what`` names the per-sample value (IoU or mIoU)."""
    if not ious:
        return TaskPlots(
            [], ["no per-sample IoU in the samples log (records carry neither 'iou' nor intersection/union)"]
        )
    values = np.asarray(ious, dtype=float)
    histogram = _figure()
    axes = histogram.add_subplot()
    axes.hist(values, bins=np.linspace(0.0, 1.0, 21), color="#4c78a8", edgecolor="white")
    axes.axvline(values.mean(), color="#e45756", linestyle="--", label=f"mean {SCALE * values.mean():.2f}")
    axes.set_xlim(0, 1)
    axes.set_xlabel(f"per-sample {what}")
    axes.set_ylabel("samples")
    axes.legend(loc="upper left")
    _save(histogram, folder / f"{stem}-iou-histogram.png")

    thresholds = np.linspace(0.0, 1.0, 101)
    curve = _figure()
    axes = curve.add_subplot()
    axes.plot(thresholds, SCALE * threshold_precision(values, thresholds), color="#4c78a8", label="from samples")
    reported = sorted(
        (float(name[2:]), value)
        for name, value in task["metrics"].items()
        if name.startswith("P@") and value is not None and _is_float(name[2:])
    )
    if reported:
        axes.plot(
            [t for t, _ in reported], [SCALE * v for _, v in reported], "o", color="#e45756", label="reported P@x"
        )
    axes.set_xlim(0, 1)
    axes.set_ylim(0, SCALE * 1.02)
    axes.set_xlabel(f"{what} threshold t")
    axes.set_ylabel(f"samples with {what} ≥ t (%)")
    axes.legend(loc="lower left")
    _save(curve, folder / f"{stem}-precision-at-threshold.png")
    return TaskPlots(
        [
            Plot(
                f"{what} histogram", f"{stem}-iou-histogram.png", f"per-sample {what} of {len(values)} scored samples"
            ),
            Plot(
                f"Precision at {what} threshold",
                f"{stem}-precision-at-threshold.png",
                f"share of scored samples whose {what} reaches each threshold; dots: the reported P@x values",
            ),
        ],
        [],
    )


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# POPE-style yes/no
# ---------------------------------------------------------------------------


def yes_no_confusion(task: TaskResult) -> dict[str, int] | None:
    """TP, FN, FP, TN (positive class: yes) implied by accuracy, precision and yes_ratio.

    With N scored samples: predicted yes = yes_ratio N, TP = precision x predicted yes,
    FP = predicted yes - TP, TN = accuracy N - TP, FN = N - TP - FP - TN. Returns ``None`` when the
    values are missing or do not give whole, non-negative counts (another definition is in use).
    """
    metrics = task["metrics"]
    scored = task["n_samples"] - task["n_failed"]
    accuracy, precision, yes_ratio = (_find(metrics, name) for name in ("accuracy", "precision", "yesratio"))
    if scored <= 0 or accuracy is None or yes_ratio is None:
        return None
    predicted_yes = yes_ratio * scored
    if precision is None and predicted_yes > 0.5:
        return None
    tp = 0.0 if precision is None else precision * predicted_yes
    fp = predicted_yes - tp
    tn = accuracy * scored - tp
    fn = scored - tp - fp - tn
    counts = {"TP": tp, "FN": fn, "FP": fp, "TN": tn}
    if any(value < -1e-6 or abs(value - round(value)) > 1e-6 * max(1, scored) for value in counts.values()):
        return None
    return {key: round(value) for key, value in counts.items()}


def yes_no_plot(confusions: Mapping[str, Mapping[str, int]], folder: Path) -> Plot:
    settings = list(confusions)
    kinds = ["TP", "FN", "FP", "TN"]
    colours = ["#54a24b", "#e45756", "#f58518", "#4c78a8"]
    figure = _figure(6.4, 1.0 + 0.75 * len(settings))
    axes = figure.add_subplot()
    height = 0.8 / len(kinds)
    positions = np.arange(len(settings))
    for offset, (kind, colour) in enumerate(zip(kinds, colours, strict=True)):
        widths = [confusions[setting][kind] for setting in settings]
        bars = axes.barh(positions + (offset - 1.5) * height, widths, height, label=kind, color=colour)
        axes.bar_label(bars, fontsize=7, padding=2)
    axes.set_yticks(positions, settings)
    axes.invert_yaxis()
    axes.set_xlabel("samples")
    axes.legend(ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=8, frameon=False)
    _save(figure, folder / "yes-no-confusion.png")
    return Plot(
        "Yes/no confusion counts per setting",
        "yes-no-confusion.png",
        "positive class: yes; counts implied by each task's accuracy, precision and yes_ratio over its scored samples",
    )


# ---------------------------------------------------------------------------
# CHAIR
# ---------------------------------------------------------------------------


def chair_plot(rows: Sequence[Mapping[str, Any]], table: SampleTable, folder: Path, stem: str) -> TaskPlots:
    columns = {key: _column(table, key) for key in ("chairi", "chairs")}
    if not any(columns.values()):
        return TaskPlots([], ["no per-caption CHAIR values (CHAIR_i / CHAIR_s) in the samples log records"])
    length_column = _column(table, "tokens", "words")  # the metric's own token count, else words of the text
    lengths, per_caption = [], {key: [] for key in columns}
    for row, values in zip(rows, table.values, strict=True):
        if row.get("error") is not None or not isinstance(row.get("prediction"), dict):
            continue
        if length_column is not None and length_column in values:
            lengths.append(values[length_column])
        else:
            lengths.append(len(str(row["prediction"].get("text", "")).split()))
        for key, column in columns.items():
            per_caption[key].append(values.get(column, math.nan) if column else math.nan)
    if not lengths:
        return TaskPlots([], ["no scored captions"])
    words = np.asarray(lengths, dtype=float)
    figure = _figure()
    axes = figure.add_subplot()
    edges = np.unique(np.quantile(words, np.linspace(0, 1, 9)))
    labels = {"chairi": "CHAIR_i (mentions)", "chairs": "CHAIR_s (captions)"}
    colours = {"chairi": "#4c78a8", "chairs": "#e45756"}
    for key in ("chairi", "chairs"):
        values = np.asarray(per_caption[key], dtype=float)
        if not np.isfinite(values).any():
            continue
        if key == "chairi":
            axes.scatter(words, SCALE * values, s=8, alpha=0.35, color=colours[key], label="CHAIR_i of a caption")
        if len(edges) > 1:
            bins = np.clip(np.searchsorted(edges, words, side="right") - 1, 0, len(edges) - 2)
            centres, means = [], []
            for number in range(len(edges) - 1):
                chosen = values[(bins == number) & np.isfinite(values)]
                if chosen.size:
                    centres.append(float(words[bins == number].mean()))
                    means.append(SCALE * float(chosen.mean()))
            axes.plot(centres, means, "o-", color=colours[key], label=f"{labels[key]}, mean per length bin")
    axes.set_xlabel("caption length (tokens)" if length_column else "caption length (words)")
    axes.set_ylabel("CHAIR (%)")
    axes.legend(loc="upper left", fontsize=8)
    _save(figure, folder / f"{stem}-chair-length.png")
    return TaskPlots(
        [Plot("CHAIR against caption length", f"{stem}-chair-length.png", "dots: CHAIR_i of each caption")], []
    )


# ---------------------------------------------------------------------------
# Seg-token semantics (reports.analysis)
# ---------------------------------------------------------------------------


def _signed(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:+.2f}"


def semantics_plots(analysis: Any, folder: Path, stem: str) -> list[Plot]:
    """Probability of the target's word against IoU, mean IoU per category rank bin, and the per-layer curve.

    ``analysis`` is a `reports.analysis.TaskSemantics`; the scatter shows the category (else the first
    attribute type scored).
    """
    plots: list[Plot] = []
    kinds = [
        kind for kind in ("category", "color", "position", "relation") if f"{kind}_probability" in analysis.correlations
    ]
    if not kinds:
        return plots
    kind = kinds[0]
    chosen = [sample for sample in analysis.samples if kind in sample.scores]
    probability = np.array([sample.scores[kind].probability for sample in chosen])
    ious = np.array([sample.iou for sample in chosen])
    correlation = analysis.correlations[f"{kind}_probability"]
    scatter = _figure()
    axes = scatter.add_subplot()
    axes.scatter(probability, ious, s=10, alpha=0.5, color="#4c78a8")
    axes.set_xlim(-0.02, 1.02)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel(f"probability of the target's {kind} word at [SEG] (softmax over its list)")
    axes.set_ylabel("per-sample IoU")
    axes.set_title(f"Spearman {_signed(correlation.spearman)}, Pearson {_signed(correlation.pearson)}", fontsize=9)
    _save(scatter, folder / f"{stem}-semantics-scatter.png")
    plots.append(
        Plot(
            f"[SEG] {kind} probability against IoU",
            f"{stem}-semantics-scatter.png",
            f"{len(chosen)} samples; each dot is one sample's first [SEG] probe",
        )
    )
    if any(item["n"] for item in analysis.bins):
        bars = _figure()
        axes = bars.add_subplot()
        labels = [item["bin"] for item in analysis.bins]
        means = [SCALE * item["mean_iou"] if item["mean_iou"] is not None else 0.0 for item in analysis.bins]
        drawn = axes.bar(labels, means, color="#4c78a8")
        axes.bar_label(drawn, labels=[f"n={item['n']}" for item in analysis.bins], fontsize=7, padding=2)
        axes.set_ylim(0, SCALE * 1.1)
        axes.set_xlabel("rank of the target's category word among the category list (1 = top)")
        axes.set_ylabel("mean IoU (%)")
        _save(bars, folder / f"{stem}-semantics-rank-bins.png")
        plots.append(
            Plot(
                "Mean IoU by category rank",
                f"{stem}-semantics-rank-bins.png",
                "samples grouped by the rank of their category word at [SEG]; empty bins drawn at 0",
            )
        )
    if analysis.layers:
        curve = _figure()
        axes = curve.add_subplot()
        layers = [point["layer"] for point in analysis.layers]
        rho = [point["spearman"] for point in analysis.layers]
        axes.plot(layers, rho, "o-", color="#4c78a8", label="Spearman (category probability, IoU)")
        low = [point["interval"][0] if point["interval"] else np.nan for point in analysis.layers]
        high = [point["interval"][1] if point["interval"] else np.nan for point in analysis.layers]
        axes.fill_between(layers, low, high, color="#4c78a8", alpha=0.2, label="95% bootstrap interval")
        axes.axhline(0, color="#888888", linewidth=0.8)
        axes.set_ylim(-1.05, 1.05)
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.set_xlabel("layer (0 = embeddings)")
        axes.set_ylabel("Spearman correlation with IoU")
        axes.legend(loc="lower right", fontsize=8)
        _save(curve, folder / f"{stem}-semantics-layers.png")
        plots.append(
            Plot(
                "Per-layer logit lens",
                f"{stem}-semantics-layers.png",
                "correlation of the category word's probability at each layer's hidden state with IoU",
            )
        )
    return plots


__all__ = [
    "Plot",
    "TaskPlots",
    "chair_plot",
    "is_chair",
    "is_segmentation",
    "is_yes_no",
    "sample_ious",
    "segmentation_plots",
    "semantics_plots",
    "threshold_precision",
    "yes_no_confusion",
    "yes_no_plot",
]
