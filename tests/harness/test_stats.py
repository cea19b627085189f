import numpy as np
import pytest
from toy_plugin import Accuracy

from harness.stats import bootstrap_intervals, paired_bootstrap


def _records(values):
    return [{"correct": int(v)} for v in values]


def test_constant_records_give_a_degenerate_interval():
    assert bootstrap_intervals(Accuracy(), _records([1] * 30), iterations=200) == {"accuracy": [1.0, 1.0]}


def test_interval_is_seeded_and_covers_the_estimate():
    records = _records(np.arange(100) % 4 == 0)  # accuracy 0.25
    first = bootstrap_intervals(Accuracy(), records, iterations=500, seed=3)
    assert first == bootstrap_intervals(Accuracy(), records, iterations=500, seed=3)
    assert first != bootstrap_intervals(Accuracy(), records, iterations=500, seed=4)
    low, high = first["accuracy"]
    # Normal approximation: 0.25 +- 1.96 * sqrt(0.25 * 0.75 / 100) = [0.165, 0.335].
    assert low == pytest.approx(0.165, abs=0.03) and high == pytest.approx(0.335, abs=0.03)


def test_no_records_or_iterations_give_nothing():
    assert bootstrap_intervals(Accuracy(), [], iterations=100) == {}
    assert bootstrap_intervals(Accuracy(), _records([1, 0]), iterations=0) == {}


def test_paired_bootstrap_of_identical_and_improved_runs():
    base = _records(np.arange(200) % 2 == 0)  # 0.5
    same = paired_bootstrap(Accuracy(), base, base, iterations=300)
    assert same["accuracy"].difference == 0 and same["accuracy"].low == 0 == same["accuracy"].high
    better = _records([1] * 200)  # every second sample flips to correct: +0.5
    result = paired_bootstrap(Accuracy(), base, better, iterations=300)["accuracy"]
    assert result.difference == pytest.approx(0.5)
    assert 0.4 < result.low < 0.5 < result.high < 0.6
    assert result.p_value == 0.0
    with pytest.raises(ValueError, match="same samples"):
        paired_bootstrap(Accuracy(), base, base[:10])
