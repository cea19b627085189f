"""Bootstrap intervals and paired differences on the real metrics' vectorised resampling."""

import numpy as np
import pytest

from harness import masks
from harness.metrics.captions import CaptionScores
from harness.metrics.pope import Pope
from harness.metrics.refseg import ReferringSegmentation
from harness.stats import bootstrap_intervals, paired_bootstrap, resample_sums
from harness.types import Prediction, Sample


def test_resample_sums_equal_gathered_sums_across_chunks():
    rng = np.random.default_rng(0)
    values = rng.random((37, 3))
    draws = rng.integers(0, 37, size=(150, 37))
    np.testing.assert_allclose(resample_sums(draws, values, chunk=64), values[draws].sum(axis=1), rtol=1e-12)
    np.testing.assert_allclose(resample_sums(draws, values[:, 1], chunk=7), values[draws, 1].sum(axis=1), rtol=1e-12)


def _pope_records(answers, labels):
    metric = Pope()
    return [
        metric.score(Sample(sample_id=str(i), image="x", target={"label": label}), Prediction(text=answer))
        for i, (answer, label) in enumerate(zip(answers, labels, strict=True))
    ]


def test_pope_intervals_are_seeded_and_cover_the_estimate():
    labels = ["yes", "no"] * 100
    answers = ["Yes" if i % 5 else "No" for i in range(200)]  # accuracy 0.5 with a yes bias
    records = _pope_records(answers, labels)
    metric = Pope()
    first = bootstrap_intervals(metric, records, iterations=400, seed=1)
    assert first == bootstrap_intervals(metric, records, iterations=400, seed=1)
    assert set(first) == {"accuracy", "precision", "recall", "f1", "yes_ratio", "unparseable"}
    estimate = metric.aggregate(records)
    for key, (low, high) in first.items():
        assert low <= estimate[key] <= high, key
    # yes_ratio 0.8 over 200 answers: normal approximation 0.8 +- 1.96 * sqrt(0.8 * 0.2 / 200) = +- 0.055
    assert first["yes_ratio"] == [pytest.approx(0.745, abs=0.02), pytest.approx(0.855, abs=0.02)]


def test_paired_bootstrap_of_two_pope_runs():
    labels = ["yes", "no"] * 100
    baseline = _pope_records(["Yes"] * 200, labels)  # accuracy 0.5
    better = _pope_records(["Yes", "No"] * 100, labels)  # accuracy 1.0
    result = paired_bootstrap(Pope(), baseline, better, iterations=300, seed=2)
    # each resample gains exactly its share of "no" questions: 0.5 +- 1.96 * sqrt(0.25 / 200) = +- 0.069
    accuracy = result["accuracy"]
    assert accuracy.difference == 0.5 and accuracy.p_value == 0.0
    assert accuracy.low == pytest.approx(0.431, abs=0.02) and accuracy.high == pytest.approx(0.569, abs=0.02)
    assert result["yes_ratio"].difference == -0.5


def test_refseg_intervals_for_every_value_and_caption_scores_opt_out():
    rng = np.random.default_rng(3)
    metric = ReferringSegmentation()
    records = []
    for index in range(80):
        truth = (rng.random((6, 7)) < 0.5).astype(np.uint8)
        guess = truth ^ (rng.random((6, 7)) < 0.2).astype(np.uint8)
        sample = Sample(sample_id=str(index), image="x", target={"mask": masks.encode(truth)})
        records.append(metric.score(sample, Prediction(masks=(masks.encode(guess),))))
    intervals = bootstrap_intervals(metric, records, iterations=300, seed=0)
    assert set(intervals) == set(metric.aggregate(records))
    assert all(low <= metric.aggregate(records)[key] <= high for key, (low, high) in intervals.items())
    captions = CaptionScores(scorers=["ROUGE-L"])
    assert bootstrap_intervals(captions, [{"candidate": "a", "references": ["a"]}], iterations=10) == {}
