"""Plots are chosen by the metric names a task reports; their numbers are worked out by hand here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from report_html import parse
from report_synthetic import sample_row, task_result, write_run

from reports import write_run_report
from reports.plots import sample_ious, threshold_precision, yes_no_confusion
from reports.samples import sample_table, value_direction

YES_NO = ("accuracy", "precision", "recall", "f1", "yes_ratio")


def _yes_no_task(tp: int, fn: int, fp: int, tn: int) -> dict:
    n = tp + fn + fp + tn
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else None
    values = [(tp + tn) / n, precision, recall, f1, (tp + fp) / n]
    return task_result(dict(zip(YES_NO, values, strict=True)), n_samples=n)


def test_confusion_counts_follow_from_accuracy_precision_and_yes_ratio() -> None:
    # accuracy 0.7, precision 4/6, recall 0.8, yes_ratio 0.6 over 10 samples <=> TP 4, FN 1, FP 2, TN 3
    task = task_result(
        {"accuracy": 0.7, "precision": 4 / 6, "recall": 0.8, "f1": 8 / 11, "yes_ratio": 0.6}, n_samples=10
    )
    assert yes_no_confusion(task) == {"TP": 4, "FN": 1, "FP": 2, "TN": 3}
    # never answering yes: precision undefined; accuracy 0.5 <=> TN 5, FN 5
    silent = task_result({"accuracy": 0.5, "precision": None, "recall": 0.0, "f1": None, "yes_ratio": 0.0})
    assert yes_no_confusion(silent) == {"TP": 0, "FN": 5, "FP": 0, "TN": 5}
    # failed samples are not scored: 12 samples, 2 failed -> the same 10 scored samples
    failed = task_result(
        {"accuracy": 0.7, "precision": 4 / 6, "recall": 0.8, "f1": 8 / 11, "yes_ratio": 0.6},
        n_samples=12,
        n_failed=2,
    )
    assert yes_no_confusion(failed) == {"TP": 4, "FN": 1, "FP": 2, "TN": 3}
    # 0.73 of 10 samples is no whole count: another definition is in use, no counts
    odd = task_result({"accuracy": 0.73, "precision": 0.5, "recall": 0.5, "f1": 0.5, "yes_ratio": 0.6})
    assert yes_no_confusion(odd) is None


def test_yes_no_plot_per_setting_is_found_by_metric_names(tmp_path: Path) -> None:
    tasks = {"setting_a": _yes_no_task(4, 1, 2, 3), "setting_b": _yes_no_task(2, 3, 0, 5)}
    # a task *named* like POPE but reporting segmentation values gets no confusion counts
    tasks["pope_random"] = task_result({"cIoU": 0.5, "gIoU": 0.4})
    labels = {"setting_a": ["yes"] * 5 + ["no"] * 5, "setting_b": ["yes"] * 5 + ["no"] * 5}
    samples = {
        name: [sample_row(i, target={"label": label}, text="yes") for i, label in enumerate(values)]
        for name, values in labels.items()
    }
    run = write_run(tmp_path / "run", tasks, samples=samples)
    page = parse(write_run_report(run).read_text())
    section = page.find("section", id="across-tasks")
    assert section.find("table", class_="confusion").rows()[1:] == [
        ["setting_a", "4", "1", "2", "3"],
        ["setting_b", "2", "3", "0", "5"],
    ]
    assert (run / "report_files" / "plots" / "yes-no-confusion.png").is_file()


def test_yes_no_counts_that_contradict_the_labels_are_not_shown(tmp_path: Path) -> None:
    samples = {"setting": [sample_row(i, target={"label": "yes" if i < 7 else "no"}) for i in range(10)]}
    run = write_run(tmp_path / "run", {"setting": _yes_no_task(4, 1, 2, 3)}, samples=samples)
    page = parse(write_run_report(run).read_text())
    assert not page.find_all("section", id="across-tasks")
    assert "cannot be derived" in page.find("section", id="task-setting").text()


def test_iou_from_intersection_and_union_records() -> None:
    rows = [
        sample_row(0, scores={"refseg": {"intersection": 20, "union": 100}}),
        sample_row(1, scores={"refseg": {"intersection": 50, "union": 100}}),
        sample_row(2, scores={"refseg": {"intersection": 0, "union": 0}}),  # empty and empty: IoU 1
        sample_row(3, error="ScoringError: bad mask"),
        sample_row(4, scores={"refseg": {"intersection": 9, "union": 10}}),
    ]
    task = task_result({"cIoU": 0.5, "gIoU": 0.5, "P@0.5": 0.75})
    ious, what = sample_ious(rows, sample_table(task, rows))
    assert ious == pytest.approx([0.2, 0.5, 1.0, 0.9]) and what == "IoU"
    gcg_like = [sample_row(i, scores={"gcg_masks": {"miou": i / 4, "masks": 2}}) for i in range(3)]
    assert sample_ious(gcg_like, sample_table(task_result({"mIoU": 0.25}), gcg_like)) == ([0.0, 0.25, 0.5], "mIoU")
    thresholds = np.array([0.0, 0.5, 0.9, 0.95, 1.0])
    assert threshold_precision([0.2, 0.5, 1.0, 0.9], thresholds) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.25])


def test_segmentation_and_chair_plots(tmp_path: Path) -> None:
    segmentation = [sample_row(i, scores={"seg": {"iou": i / 10}}) for i in range(10)]
    captions = [
        sample_row(i, scores={"chair": {"CHAIR_s": i % 2, "CHAIR_i": (i % 2) / 3}}, text="word " * (5 + 3 * i))
        for i in range(10)
    ]
    no_values = [sample_row(i, scores={"chair": {"words": [1, 2]}}, text="a b") for i in range(3)]
    tasks = {
        "anything": task_result({"gIoU": 0.45, "P@0.5": 0.5}, kind="referring_segmentation"),
        "captions": task_result({"CHAIR_s": 0.5, "CHAIR_i": 0.2, "recall": 0.7, "len": 0.2}, kind="caption"),
        "bare_captions": task_result({"CHAIR_s": 0.5, "CHAIR_i": 0.2}, n_samples=3, kind="caption"),
    }
    samples = {"anything": segmentation, "captions": captions, "bare_captions": no_values}
    run = write_run(tmp_path / "run", tasks, samples=samples)
    page = parse(write_run_report(run).read_text())
    plots = run / "report_files" / "plots"
    assert sorted(path.name for path in plots.iterdir()) == [
        "anything-iou-histogram.png",
        "anything-precision-at-threshold.png",
        "captions-chair-length.png",
    ]
    assert "no per-caption CHAIR values" in page.find("section", id="task-bare_captions").text()


def test_per_sample_value_directions() -> None:
    higher = {"gIoU": True, "cIoU": True, "CHAIR_i": False, "CHAIR_s": False}
    assert value_direction("iou", higher) is True
    assert value_direction("chair_i", higher) is False
    assert value_direction("chair.CHAIR_s", higher) is False
    assert value_direction("hallucinated", higher) is None


def test_value_names_shared_by_two_metrics_are_qualified() -> None:
    rows = [sample_row(0, scores={"first": {"score": 1.0}, "second": {"score": 0.0, "other": 2}})]
    table = sample_table(task_result({"a": 1.0}), rows)
    assert table.columns == ["first.score", "second.score", "other"]
    assert table.values == [{"first.score": 1.0, "second.score": 0.0, "other": 2.0}]
