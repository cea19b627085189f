"""AttrEval QA: hand-worked accuracy / paired accuracy / per attribute, failed pair members, and 300 random
answers against literal transcriptions of LIRA's evaluate_exact_match_accuracy(2)."""

import math

import numpy as np
import pytest

from harness.errors import SampleError
from harness.metrics.attreval import AttrEvalQA
from harness.types import Prediction, Sample


def question(answer, attribute):
    return Sample(sample_id="q", image="x.jpg", target={"answer": answer, "attribute": attribute})


def run(items, skip=()):
    metric = AttrEvalQA()
    for index, (answer, truth, attribute) in enumerate(items):
        if index not in skip:  # a skipped index is a sample that failed and has no record
            metric.add(index, metric.score(question(truth, attribute), Prediction(text=answer)))
    return metric


def test_by_hand():
    values = run(
        [
            ("Red", "red", "color"),  # correct after lower()
            ("red.", "Red", "color"),  # wrong: no punctuation removal
            (" left ", "left", "position"),  # correct after strip()
            ("left", "LEFT", "position"),
            ("dog", "dog", "category"),  # odd last question: no pair
        ]
    ).compute()
    assert values == {
        "accuracy": 4 / 5,
        "paired_accuracy": 1 / 2,  # (0, 1) fails, (2, 3) holds
        "accuracy_category": 1.0,
        "accuracy_color": 1 / 2,
        "accuracy_position": 1.0,
    }


def test_unicode_and_case():
    values = run([("Café", "café", "category"), ("STRASSE", "straße", "category")]).compute()
    assert values["accuracy"] == 1 / 2 and values["paired_accuracy"] == 0.0  # "strasse" != "straße"


def test_pairs_follow_sample_positions_and_skip_failed_members():
    items = [("a", "a", "color")] * 2 + [("a", "b", "color"), ("b", "b", "color")] + [("c", "c", "color")] * 2
    assert run(items).compute()["paired_accuracy"] == 2 / 3
    # question 1 failed: pair (0, 1) is incomplete and left out; (2, 3) fails, (4, 5) holds
    assert run(items, skip={1}).compute()["paired_accuracy"] == 1 / 2
    metric = AttrEvalQA()
    for index in (5, 4, 3, 2, 1, 0):  # arrival order does not matter, positions do
        metric.add(index, metric.score(question(items[index][1], "color"), Prediction(text=items[index][0])))
    assert metric.compute()["paired_accuracy"] == 2 / 3
    assert metric.records()[0]["index"] == 0  # the position is stamped into the record (and so the samples log)


def test_too_few_questions_for_a_pair():
    values = run([("a", "a", "color")]).compute()
    assert values["accuracy"] == 1.0 and math.isnan(values["paired_accuracy"])  # LIRA divides by zero here
    assert all(math.isnan(v) for v in AttrEvalQA().compute().values())


def test_bad_input():
    with pytest.raises(SampleError, match="answer must be a string, got int"):
        AttrEvalQA().score(question("red", "color"), Prediction(text=3))  # type: ignore[arg-type]
    with pytest.raises(SampleError, match="target 'answer' must be a string, got list"):
        AttrEvalQA().score(question(["red", "crimson"], "color"), Prediction(text="red"))


# ---------------------------------------------------------------------------
# LIRA internvl/eval/vqa/evaluate_vqa.py
# ---------------------------------------------------------------------------


def evaluate_exact_match_accuracy(entries):
    scores = []
    for elem in entries:
        if isinstance(elem["annotation"], str):
            elem["annotation"] = [elem["annotation"]]
        score = max(
            [(1.0 if (elem["answer"].strip().lower() == ann.strip().lower()) else 0.0) for ann in elem["annotation"]]
        )
        scores.append(score)
    return sum(scores) / len(scores)


def evaluate_exact_match_accuracy2(entries):
    scores = []
    for i in range(len(entries) // 2):
        if (
            entries[2 * i]["answer"].strip().lower() == entries[2 * i]["annotation"].strip().lower()
            and entries[2 * i + 1]["answer"].strip().lower() == entries[2 * i + 1]["annotation"].strip().lower()
        ):
            score = 1
        else:
            score = 0
        scores.append(score)
    return sum(scores) / (len(scores))


def test_random_answers_match_lira():
    rng = np.random.default_rng(12)
    pool = ["red", "Red", "red.", " blue", "left", "LEFT ", "on the left", "dog", "Dog", "", "café", "CAFÉ"]
    for size in (300, 2, 3, 41):
        items = [
            (str(rng.choice(pool)), str(rng.choice(pool)), str(rng.choice(["color", "position"]))) for _ in range(size)
        ]
        metric = run(items)
        values = metric.compute()
        entries = [{"answer": a, "annotation": t} for a, t, _ in items]
        assert values["paired_accuracy"] == pytest.approx(evaluate_exact_match_accuracy2(entries), abs=1e-15)
        assert values["accuracy"] == pytest.approx(evaluate_exact_match_accuracy(entries), abs=1e-15)
        for attribute in ("color", "position"):
            chosen = [e for e, item in zip(entries, items, strict=True) if item[2] == attribute]
            if chosen:
                assert values[f"accuracy_{attribute}"] == pytest.approx(evaluate_exact_match_accuracy(chosen))

        # resampling: each drawn question carries its fixed pair's outcome
        draws = rng.integers(0, size, size=(15, size))
        fast = metric.resampled(metric.records(), draws)
        correct = [r["correct"] for r in metric.records()]
        pair_ok = [bool(correct[i] and correct[i ^ 1]) if (i ^ 1) < size else None for i in range(size)]
        for row, draw in enumerate(draws):
            assert fast["accuracy"][row] == pytest.approx(np.mean([correct[i] for i in draw]))
            counted = [pair_ok[i] for i in draw if pair_ok[i] is not None]
            expected = np.mean(counted) if counted else np.nan
            assert fast["paired_accuracy"][row] == pytest.approx(expected, nan_ok=True)
