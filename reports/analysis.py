"""Seg-token semantics: does the `[SEG]` token "know" what it segments, and does that go with a better mask?

For every sample of a finished run whose prediction carries `[SEG]` probes (`harness.types.SegProbe`,
from any adapter or a replay file's ``"probes"``) and whose score record has an intersection and a
union (``refseg`` / ``refseg_grouped``), the analysis reads the *first* probe (the first `[SEG]`,
whose mask is the one scored) and computes a **semantic score** for the target:

- for its category (``target["category"]``) and each attribute word it has (``target["attributes"]``:
  colour, position, relation), the word's **rank** among the words of the probe's matching list (1 =
  the largest logit; ties share the better rank: 1 + the number of words with a strictly larger logit)
  and its **probability** under a softmax over that list's logits. Lists and words are matched as
  `harness.vocabulary` describes (list names ``category``/``objects``, ``color``/``colors``, ...;
  spellings normalised; COCO names match LIRA's VOC names). A target with several words of one type
  (two positions) is scored by its best word;
- the sample's IoU is the metric's own per-sample IoU (``sample_values``: I / (U + 1e-5), 1 for an
  empty union, 0 for a missing mask under the generation protocol).

Then, per task: **Spearman** and **Pearson** correlation between the category probability (and rank,
and each attribute's probability) and IoU, with percentile **bootstrap** intervals over samples
(seeded); the mean **IoU per rank bin** (1, 2, 3, 4–5, 6–10, > 10); and, when probes carry per-layer
word logits, the Spearman correlation of the category probability at every layer with IoU (the
**per-layer curve**). Samples left out are counted by reason.

Outputs: `write_analysis` writes ``seg_semantics.csv`` (one row per scored sample),
``seg_semantics_layers.csv``, ``seg_semantics.json`` and the plots; the run report shows the same in its
"[SEG] semantics" section (`reports.run_report`). ``run_eval.py analyze RUN_DIR`` runs it.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import rankdata

from harness.errors import UserError
from harness.metrics import Metric
from harness.results import TaskResult, clean_numbers
from harness.vocabulary import ATTRIBUTE_TYPES, match_word, role_lists
from reports.rundata import RunFolder, load_run
from reports.samples import rebuild_metrics

RANK_BINS: tuple[tuple[int, float, str], ...] = (
    (1, 1, "1"),
    (2, 2, "2"),
    (3, 3, "3"),
    (4, 5, "4–5"),
    (6, 10, "6–10"),
    (11, math.inf, ">10"),
)
"""(lowest rank, highest rank, label) of the IoU-by-rank bins."""

CONFIDENCE = 0.95
CSV_FILE = "seg_semantics.csv"
LAYERS_FILE = "seg_semantics_layers.csv"
SUMMARY_FILE = "seg_semantics.json"


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


def _rowwise_pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair of ``x`` and ``y`` (``(k, n)``); NaN where a row is constant."""
    dx = x - x.mean(axis=1, keepdims=True)
    dy = y - y.mean(axis=1, keepdims=True)
    constant = (np.ptp(x, axis=1) == 0) | (np.ptp(y, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = (dx * dy).sum(axis=1) / np.sqrt((dx * dx).sum(axis=1) * (dy * dy).sum(axis=1))
    values[constant] = np.nan
    return np.clip(values, -1.0, 1.0)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    """Pearson's r; NaN for fewer than 2 pairs or a constant variable."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 2:
        return math.nan
    return float(_rowwise_pearson(a[None, :], b[None, :])[0])


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's r of the average ranks (ties share their mean rank)."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 2:
        return math.nan
    return pearson(rankdata(a), rankdata(b))


@dataclass(frozen=True)
class Correlation:
    """Spearman and Pearson correlation of a score with IoU, with bootstrap intervals.

    Attributes:
        n: pairs used.
        spearman, pearson: the estimates (NaN when undefined, e.g. a constant variable).
        spearman_interval, pearson_interval: percentile bootstrap intervals (``None`` when undefined).
        undefined_resamples: resamples in which a variable was constant (left out of the intervals).
    """

    n: int
    spearman: float
    pearson: float
    spearman_interval: tuple[float, float] | None
    pearson_interval: tuple[float, float] | None
    undefined_resamples: int


def _interval(values: np.ndarray) -> tuple[float, float] | None:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return float(low), float(high)


def _resample_counts(draws: np.ndarray, n: int) -> np.ndarray:
    """``(rows, n)`` how often each sample is drawn in each resample (as floats)."""
    flat = draws + (np.arange(draws.shape[0]) * n)[:, None]
    return np.bincount(flat.ravel(), minlength=draws.shape[0] * n).reshape(draws.shape[0], n).astype(float)


@dataclass(frozen=True)
class _Ranking:
    """How one variable's values group into distinct values, for ranking inside resamples."""

    inverse: np.ndarray
    order: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> _Ranking:
        _, inverse = np.unique(values, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        return cls(inverse, order, np.flatnonzero(np.r_[True, np.diff(inverse[order]) != 0]))

    def ranks(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Average rank of every original sample inside each resample, and which resamples hold a single
        distinct value.

        A resample holding sample i ``c_i`` times ranks the copies of a value v after every drawn value
        below v: rank = (copies drawn of values < v) + (copies of v + 1) / 2, exactly
        `scipy.stats.rankdata` of the resampled values.
        """
        per_value = np.add.reduceat(counts[:, self.order], self.starts, axis=1)
        ranks = np.cumsum(per_value, axis=1) - (per_value - 1) / 2
        return ranks[:, self.inverse], np.count_nonzero(per_value, axis=1) <= 1


def _ratio(sxy: np.ndarray, sxx: np.ndarray, syy: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0)


def correlate_many(
    xs: Mapping[str, Sequence[float]], y: Sequence[float], *, iterations: int = 1000, seed: int = 0, chunk: int = 20
) -> dict[str, Correlation]:
    """`correlate` of several scores with the same ``y``, sharing the resamples (the same draws for each)."""
    b = np.asarray(y, dtype=float)
    n = int(b.size)
    arrays = {name: np.asarray(x, dtype=float) for name, x in xs.items()}
    for name, a in arrays.items():
        if a.size != n:
            raise ValueError(f"correlate needs pairs: {a.size} {name} values, {n} y values")
    estimates = {name: (spearman(a, b), pearson(a, b)) for name, a in arrays.items()}
    if n < 2 or iterations <= 0:
        return {name: Correlation(n, *estimates[name], None, None, 0) for name in arrays}
    draws = np.random.default_rng(seed).integers(0, n, size=(iterations, n))
    rhos = {name: np.empty(iterations) for name in arrays}
    rs = {name: np.empty(iterations) for name in arrays}
    centred_y = b - b.mean()
    middle = (n + 1) / 2  # every resample's ranks sum to n (n + 1) / 2
    ranking_y = _Ranking.of(b)
    rankings = {name: _Ranking.of(a) for name, a in arrays.items()}
    for start in range(0, iterations, chunk):
        rows = slice(start, start + chunk)
        counts = _resample_counts(draws[rows], n)
        rank_y, constant_y = ranking_y.ranks(counts)
        rank_y -= middle
        syy_rank = (counts * rank_y * rank_y).sum(axis=1)
        weights_y = counts @ np.column_stack([centred_y, centred_y * centred_y])
        sy, syy = weights_y[:, 0], weights_y[:, 1] - weights_y[:, 0] ** 2 / n
        for name, a in arrays.items():
            rank_x, constant_x = rankings[name].ranks(counts)
            rank_x -= middle
            constant = constant_x | constant_y
            rho = _ratio((counts * rank_x * rank_y).sum(axis=1), (counts * rank_x * rank_x).sum(axis=1), syy_rank)
            centred_x = a - a.mean()
            sums = counts @ np.column_stack([centred_x, centred_x * centred_x, centred_x * centred_y])
            sx = sums[:, 0]
            r = _ratio(sums[:, 2] - sx * sy / n, sums[:, 1] - sx * sx / n, syy)
            rho[constant], r[constant] = np.nan, np.nan
            rhos[name][rows], rs[name][rows] = rho, r
    return {
        name: Correlation(
            n,
            *estimates[name],
            _interval(rhos[name]),
            _interval(rs[name]),
            int(np.count_nonzero(~np.isfinite(rs[name]))),
        )
        for name in arrays
    }


def correlate(x: Sequence[float], y: Sequence[float], *, iterations: int = 1000, seed: int = 0) -> Correlation:
    """Spearman and Pearson of ``x`` with ``y`` and their percentile bootstrap intervals (pairs resampled).

    Each resample's statistics are computed from how often it draws each pair (ranks inside a resample
    follow from the counts, `_Ranking.ranks`), in O(n) per resample. The same inputs, iterations and
    seed always give the same intervals.
    """
    return correlate_many({"x": x}, y, iterations=iterations, seed=seed)["x"]


def rank_bins(ranks: Sequence[float], ious: Sequence[float]) -> list[dict[str, Any]]:
    """Samples and mean IoU per `RANK_BINS` bin (empty bins kept, mean ``None``)."""
    r, v = np.asarray(ranks, dtype=float), np.asarray(ious, dtype=float)
    bins = []
    for low, high, label in RANK_BINS:
        chosen = v[(r >= low) & (r <= high)]
        bins.append({"bin": label, "n": int(chosen.size), "mean_iou": float(chosen.mean()) if chosen.size else None})
    return bins


# ---------------------------------------------------------------------------
# Semantic scores of one probe
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WordScore:
    """A target word in a probe's list: the word as spelled there, its rank and softmax probability."""

    value: str
    word: str
    rank: int
    probability: float
    list_size: int


class ProbeError(ValueError):
    """A probe that does not hold word-list -> word -> finite logit mappings."""


_NUMBER_TYPES = (int, float, np.integer, np.floating)


def _logits(words: Any) -> tuple[list[str], np.ndarray]:
    """The words of a list and their logits, checked (strings mapped to finite numbers)."""
    if not isinstance(words, Mapping) or not words:
        raise ProbeError("a word list must map words to logits")
    kinds = set(map(type, words.values()))
    if bool in kinds or not all(issubclass(kind, _NUMBER_TYPES) for kind in kinds):
        bad = next(v for v in words.values() if isinstance(v, bool) or not isinstance(v, _NUMBER_TYPES))
        raise ProbeError(f"a logit is {bad!r}; expected a number")
    if set(map(type, words)) != {str}:
        raise ProbeError("word-list keys must be words (strings)")
    logits = np.fromiter(words.values(), dtype=float, count=len(words))
    if not np.isfinite(logits).all():
        raise ProbeError("a logit is not finite")
    return list(words), logits


def _score(value: str, words: list[str], logits: np.ndarray) -> WordScore | None:
    word = match_word(value, words)
    if word is None:
        return None
    own = logits[words.index(word)]
    top = logits.max()
    probability = float(np.exp(own - top) / np.exp(logits - top).sum())
    rank = 1 + int(np.count_nonzero(logits > own))
    return WordScore(value, word, rank, probability, len(words))


def score_word(value: str, words: Mapping[str, float]) -> WordScore | None:
    """Rank and probability of ``value``'s word among ``words`` (``None`` when the list lacks it).

    Raises:
        ProbeError: ``words`` does not map words to finite numbers.
    """
    return _score(value, *_logits(words))


def target_values(target: Mapping[str, Any]) -> dict[str, list[str]]:
    """Attribute type -> the target's words: ``category`` from ``target["category"]``, the others from
    ``target["attributes"]``."""
    values: dict[str, list[str]] = {name: [] for name in ATTRIBUTE_TYPES}
    if isinstance(target.get("category"), str):
        values["category"] = [target["category"]]
    attributes = target.get("attributes")
    if isinstance(attributes, Mapping):
        for name in ATTRIBUTE_TYPES[1:]:
            words = attributes.get(name)
            if isinstance(words, list):
                values[name] = [word for word in words if isinstance(word, str)]
    return values


def score_probe(word_logits: Any, values: Mapping[str, Sequence[str]]) -> tuple[dict[str, WordScore], dict[str, str]]:
    """Best-scored word per attribute type, and why a type with target words was not scored.

    Raises:
        ProbeError: ``word_logits`` is not a mapping of word lists of finite logits.
    """
    if not isinstance(word_logits, Mapping):
        raise ProbeError("word_logits must map list names to word -> logit")
    roles = role_lists(word_logits)
    scores, missing = {}, {}
    for kind in ATTRIBUTE_TYPES:
        if not values.get(kind):
            continue
        if kind not in roles:
            missing[kind] = "probe has no list for it"
            continue
        words, logits = _logits(word_logits[roles[kind]])
        found = [score for value in values[kind] if (score := _score(value, words, logits)) is not None]
        if found:
            scores[kind] = max(found, key=lambda score: (score.probability, -score.rank))
        else:
            missing[kind] = "word not in the probe's list"
    return scores, missing


# ---------------------------------------------------------------------------
# One task
# ---------------------------------------------------------------------------


@dataclass
class SampleSemantics:
    """One scored sample: its IoU, word scores and per-layer category probabilities."""

    index: int
    sample_id: str
    iou: float
    scores: dict[str, WordScore]
    layers: list[float | None] = field(default_factory=list)


@dataclass
class TaskSemantics:
    """The analysis of one task."""

    task: str
    samples: list[SampleSemantics]
    skipped: Counter[str]
    unmatched: Counter[str]
    correlations: dict[str, Correlation]
    bins: list[dict[str, Any]]
    layers: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        return clean_numbers(
            {
                "task": self.task,
                "scored": len(self.samples),
                "skipped": dict(sorted(self.skipped.items())),
                "unmatched": dict(sorted(self.unmatched.items())),
                "correlations": {name: asdict(value) for name, value in self.correlations.items()},
                "iou_by_category_rank": self.bins,
                "layers": self.layers,
            }
        )


def _layer_probabilities(layers: Any, category: Sequence[str]) -> list[float | None]:
    """The category word's probability at every layer of a probe (``None`` where that layer lacks it)."""
    if not category or not layers:
        return []
    if not isinstance(layers, Sequence):
        raise ProbeError("layer_word_logits must be a list with one word_logits mapping per layer")
    found = []
    for layer in layers:
        score = score_probe(layer, {"category": category})[0].get("category")
        found.append(None if score is None else score.probability)
    return found


def _iou_metric(task: TaskResult) -> tuple[str, Metric | None] | None:
    """The task's metric whose records hold intersection and union, rebuilt when registered."""
    for config in task["config"].get("metrics", []):
        name = config.get("name") if isinstance(config, dict) else None
        if name in ("refseg", "refseg_grouped"):
            return name, rebuild_metrics(task).get(name)
    return None


def _sample_iou(record: Any, metric: Metric | None) -> float | None:
    if not isinstance(record, dict) or not {"intersection", "union"} <= record.keys():
        return None
    if metric is not None:
        try:
            return float(metric.sample_values(record)["iou"])
        except (KeyError, TypeError, ValueError):
            pass
    intersection, union = float(record["intersection"]), float(record["union"])
    if not record.get("has_mask", True):
        return 0.0
    return intersection / union if union > 0 else 1.0


def analyse_task(
    name: str, task: TaskResult, rows: Sequence[Mapping[str, Any]], *, iterations: int = 1000, seed: int = 0
) -> TaskSemantics | None:
    """The analysis of one task's samples log; ``None`` when no sample carries probes or the task has no IoU."""
    found = _iou_metric(task)
    if found is None or not any((row.get("prediction") or {}).get("probes") for row in rows):
        return None
    metric_name, metric = found
    skipped: Counter[str] = Counter()
    unmatched: Counter[str] = Counter()
    samples = []
    for row in rows:
        prediction = row.get("prediction") or {}
        probes = prediction.get("probes") or []
        if row.get("error") is not None:
            skipped["failed sample"] += 1
            continue
        if not probes:
            skipped["no [SEG] probe"] += 1
            continue
        iou = _sample_iou(row.get("scores", {}).get(metric_name), metric)
        if iou is None:
            skipped["no IoU in the score record"] += 1
            continue
        values = target_values(row.get("target") or {})
        probe = probes[0] if isinstance(probes[0], Mapping) else {}
        try:
            scores, missing = score_probe(probe.get("word_logits"), values)
            layers = _layer_probabilities(probe.get("layer_word_logits"), values["category"])
        except ProbeError as error:
            skipped[f"malformed probe ({error})"] += 1
            continue
        for kind, reason in missing.items():
            unmatched[f"{kind}: {reason}"] += 1
        if not scores:
            skipped["no target word in the probe's lists"] += 1
            continue
        samples.append(SampleSemantics(int(row["index"]), str(row["sample_id"]), iou, scores, layers))

    correlations: dict[str, Correlation] = {}
    for kind in ATTRIBUTE_TYPES:
        chosen = [s for s in samples if kind in s.scores]
        if not chosen:
            continue
        scores = {f"{kind}_probability": [s.scores[kind].probability for s in chosen]}
        if kind == "category":
            scores["category_rank"] = [s.scores[kind].rank for s in chosen]
        correlations.update(correlate_many(scores, [s.iou for s in chosen], iterations=iterations, seed=seed))
    with_category = [s for s in samples if "category" in s.scores]
    bins = rank_bins([s.scores["category"].rank for s in with_category], [s.iou for s in with_category])
    layers = _layer_curve(samples, iterations=iterations, seed=seed)
    return TaskSemantics(name, samples, skipped, unmatched, correlations, bins, layers)


def _layer_curve(samples: Sequence[SampleSemantics], *, iterations: int, seed: int) -> list[dict[str, Any]]:
    """Spearman (with its interval) and mean of the category probability at each layer, against IoU.

    When every sample with layer probes scores every layer (the normal case), all layers share one set
    of resamples; otherwise each layer is correlated over the samples that score it.
    """
    with_layers = [s for s in samples if s.layers]
    depth = max((len(s.layers) for s in with_layers), default=0)
    if not depth:
        return []
    results: dict[int, Correlation] = {}
    values: dict[int, list[float]] = {}
    if all(len(s.layers) == depth and None not in s.layers for s in with_layers):
        columns = {str(layer): [s.layers[layer] for s in with_layers] for layer in range(depth)}
        shared = correlate_many(columns, [s.iou for s in with_layers], iterations=iterations, seed=seed)
        results = {layer: shared[str(layer)] for layer in range(depth)}
        values = {layer: columns[str(layer)] for layer in range(depth)}
    else:
        for layer in range(depth):
            pairs = [(s.layers[layer], s.iou) for s in with_layers if layer < len(s.layers)]
            pairs = [(p, v) for p, v in pairs if p is not None]
            if pairs:
                results[layer] = correlate(
                    [p for p, _ in pairs], [v for _, v in pairs], iterations=iterations, seed=seed
                )
                values[layer] = [p for p, _ in pairs]
    return [
        {
            "layer": layer,
            "n": result.n,
            "spearman": result.spearman,
            "interval": result.spearman_interval,
            "mean_probability": float(np.mean(values[layer])),
        }
        for layer, result in sorted(results.items())
    ]


def analyse_run(
    run: RunFolder, *, iterations: int = 1000, seed: int | None = None, tasks: Sequence[str] | None = None
) -> dict[str, TaskSemantics]:
    """Every task of ``run`` (or of ``tasks``) with probes and per-sample IoU; seed defaults to the run's."""
    seed = int(run.results.get("seed") or 0) if seed is None else seed
    found = {}
    for name, task in run.tasks.items():
        if tasks is not None and name not in tasks:
            continue
        if not run.has_samples(name):
            continue
        analysis = analyse_task(name, task, run.samples(name), iterations=iterations, seed=seed)
        if analysis is not None:
            found[name] = analysis
    return found


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def sample_rows(analyses: Mapping[str, TaskSemantics]) -> list[dict[str, Any]]:
    """The per-sample CSV rows of every task."""
    rows = []
    for name, analysis in analyses.items():
        for sample in analysis.samples:
            row: dict[str, Any] = {"task": name, "index": sample.index, "sample_id": sample.sample_id}
            row["iou"] = sample.iou
            for kind in ATTRIBUTE_TYPES:
                score = sample.scores.get(kind)
                row[f"{kind}_value"] = score.value if score else ""
                row[f"{kind}_word"] = score.word if score else ""
                row[f"{kind}_rank"] = score.rank if score else ""
                row[f"{kind}_probability"] = score.probability if score else ""
                row[f"{kind}_list_size"] = score.list_size if score else ""
            row["layers"] = len(sample.layers)
            rows.append(row)
    return rows


def _cell(value: Any) -> Any:
    """CSV cell: empty for missing or undefined (NaN) numbers."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], header: Sequence[str]) -> None:
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(header), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(value) for key, value in row.items()})


SAMPLE_COLUMNS = [
    "task",
    "index",
    "sample_id",
    "iou",
    *[f"{kind}_{part}" for kind in ATTRIBUTE_TYPES for part in ("value", "word", "rank", "probability", "list_size")],
    "layers",
]
LAYER_COLUMNS = ["task", "layer", "n", "spearman", "spearman_low", "spearman_high", "mean_probability"]


def write_tables(analyses: Mapping[str, TaskSemantics], folder: Path) -> dict[str, Path]:
    """``seg_semantics.csv``, ``seg_semantics_layers.csv`` and ``seg_semantics.json`` under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"samples": folder / CSV_FILE, "layers": folder / LAYERS_FILE, "summary": folder / SUMMARY_FILE}
    _write_csv(paths["samples"], sample_rows(analyses), SAMPLE_COLUMNS)
    layer_rows = [
        {
            "task": name,
            "layer": point["layer"],
            "n": point["n"],
            "spearman": point["spearman"],
            "spearman_low": point["interval"][0] if point["interval"] else None,
            "spearman_high": point["interval"][1] if point["interval"] else None,
            "mean_probability": point["mean_probability"],
        }
        for name, analysis in analyses.items()
        for point in analysis.layers
    ]
    _write_csv(paths["layers"], layer_rows, LAYER_COLUMNS)
    summary = {name: analysis.summary() for name, analysis in analyses.items()}
    paths["summary"].write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return paths


def write_analysis(
    run_dir: Path,
    out: Path | None = None,
    *,
    iterations: int = 1000,
    seed: int | None = None,
    tasks: Sequence[str] | None = None,
) -> tuple[dict[str, TaskSemantics], dict[str, Path]]:
    """Analyse a finished run and write its tables and plots (default folder ``RUN_DIR/analysis``).

    Raises:
        UserError: the run cannot be read, or no task has `[SEG]` probes with per-sample IoU.
    """
    from reports.plots import semantics_plots

    run = load_run(run_dir)
    analyses = analyse_run(run, iterations=iterations, seed=seed, tasks=tasks)
    if not analyses:
        raise UserError(
            f"no task of {run.path} has samples with [SEG] probes and a per-sample IoU: the analysis needs a "
            "segmentation task run with an adapter (or replay file) that records probes"
        )
    folder = Path(out) if out is not None else run.path / "analysis"
    paths = write_tables(analyses, folder)
    for name, analysis in analyses.items():
        for plot in semantics_plots(analysis, folder / "plots", name):
            paths[plot.file] = folder / "plots" / plot.file
    return analyses, paths


__all__ = [
    "RANK_BINS",
    "Correlation",
    "ProbeError",
    "SampleSemantics",
    "TaskSemantics",
    "WordScore",
    "analyse_run",
    "analyse_task",
    "correlate",
    "correlate_many",
    "pearson",
    "rank_bins",
    "sample_rows",
    "score_probe",
    "score_word",
    "spearman",
    "target_values",
    "write_analysis",
    "write_tables",
]
