"""POPE: the three parsers' quirks by hand, hand-worked metrics, and 300 random answers against literal
transcriptions of POPE ``evaluate.py``, OPERA ``pope_eval.py`` and lmms-eval's aggregations."""

import numpy as np
import pytest

from harness.errors import SampleError
from harness.metrics.pope import Pope, parse_answer
from harness.types import Prediction, Sample


@pytest.mark.parametrize(
    ("answer", "official", "opera", "exact"),
    [
        ("Yes", 1, 1, 1),
        ("No", 0, 0, 0),
        ("yes.", 1, 1, -1),
        ("No, there is not.", 0, 0, -1),
        ("No\nThere is a dog.", 1, 1, -1),  # no newline split: "No\nThere" is one word
        ("There isn't a dog.", 1, 0, -1),  # only OPERA reads n't
        ("NO", 1, 0, 0),  # case-sensitive word lists; exact lower-cases
        ("Yes, there is no cat.", 0, 0, -1),
        ("Yes. There is no cat.", 1, 0, -1),  # official keeps the first sentence only
        ("", 1, 1, -1),  # empty answers are "yes" for the official parser
        ("  no  ", 0, 0, 0),  # "  no  ".split(" ") = ["", "", "no", "", ""]
        ("I do not know", 0, 0, -1),
        ("Nope", 1, 1, -1),
        ("There is a dog", 1, 1, -1),
    ],
)
def test_parsers_by_hand(answer, official, opera, exact):
    assert parse_answer(answer, "official")[0] == official
    assert parse_answer(answer, "opera")[0] == opera
    assert parse_answer(answer, "exact")[0] == exact


def _run(parser, answers, labels):
    metric = Pope(parser=parser)
    for index, (answer, label) in enumerate(zip(answers, labels, strict=True)):
        target = {"label": label, "question_id": index + 1}
        metric.add(index, metric.score(Sample(sample_id=str(index), image="x", target=target), Prediction(text=answer)))
    return metric.compute()


def test_official_metrics_by_hand():
    values = _run("official", ["Yes", "No", "No", "Yes", "I think so"], ["yes", "yes", "no", "no", "yes"])
    # predictions 1, 0, 0, 1, 1: TP 2, FN 1, TN 1, FP 1
    assert values["accuracy"] == 3 / 5
    assert values["precision"] == 2 / 3 and values["recall"] == 2 / 3
    assert values["f1"] == pytest.approx(2 / 3, abs=1e-15)
    assert values["yes_ratio"] == 3 / 5
    assert values["unparseable"] == 1 / 5  # "I think so" is "yes" only by default


def test_all_yes_and_all_no():
    values = _run("official", ["Yes"] * 4, ["yes", "no", "no", "yes"])
    assert values == {
        "accuracy": 0.5,
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 * 0.5 * 1.0 / 1.5),
        "yes_ratio": 1.0,
        "unparseable": 0.0,
    }
    values = _run("official", ["No"] * 4, ["yes", "no", "no", "yes"])
    # TP + FP = 0: precision, recall and F1 are 0 by the documented zero-division rule
    assert values == {"accuracy": 0.5, "precision": 0.0, "recall": 0.0, "f1": 0.0, "yes_ratio": 0.0, "unparseable": 0.0}


def test_exact_parser_leaves_unparseable_answers_out_of_precision_and_recall():
    values = _run("exact", ["Yes.", "yes", "No", "maybe"], ["yes", "yes", "no", "no"])
    assert values == {
        "accuracy": 0.5,
        "precision": 1.0,
        "recall": 1.0,  # "Yes." is neither TP nor FN
        "f1": 1.0,
        "yes_ratio": 0.25,
        "unparseable": 0.5,
    }


def test_bad_input_and_options():
    metric = Pope()
    with pytest.raises(SampleError, match="answer must be a string, got int"):
        metric.score(Sample(sample_id="a", image="x", target={"label": "yes"}), Prediction(text=3))  # type: ignore[arg-type]
    with pytest.raises(SampleError, match="label must be 'yes' or 'no'"):
        metric.score(Sample(sample_id="a", image="x", target={"label": "Yes"}), Prediction(text="yes"))
    assert Pope(parser="opera").config() == {"name": "pope", "parser": "opera"}
    with pytest.raises(ValueError, match="parser"):
        Pope(parser="llm")
    assert all(np.isnan(v) for v in Pope().compute().values())


# ---------------------------------------------------------------------------
# Literal transcriptions of the references
# ---------------------------------------------------------------------------


def _ratios(tp, fp, tn, fn, n):
    precision = float(tp) / float(tp + fp) if tp + fp else 0.0
    recall = float(tp) / float(tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def pope_evaluate_py(answers, labels):
    """POPE evaluate.py (= LLaVA eval_pope.py) with its inputs as lists."""
    answers = [{"answer": a} for a in answers]
    label_list = list(labels)
    for answer in answers:
        text = answer["answer"]
        if text.find(".") != -1:
            text = text.split(".")[0]
        text = text.replace(",", "")
        words = text.split(" ")
        if "No" in words or "not" in words or "no" in words:
            answer["answer"] = "no"
        else:
            answer["answer"] = "yes"
    for i in range(len(label_list)):
        label_list[i] = 0 if label_list[i] == "no" else 1
    pred_list = [0 if answer["answer"] == "no" else 1 for answer in answers]
    yes_ratio = pred_list.count(1) / len(pred_list)
    tp = tn = fp = fn = 0
    for pred, label in zip(pred_list, label_list, strict=True):
        if pred == 1 and label == 1:
            tp += 1
        elif pred == 1 and label == 0:
            fp += 1
        elif pred == 0 and label == 0:
            tn += 1
        elif pred == 0 and label == 1:
            fn += 1
    precision, recall, f1 = _ratios(tp, fp, tn, fn, len(pred_list))
    acc = (tp + tn) / (tp + tn + fp + fn)
    return {"accuracy": acc, "precision": precision, "recall": recall, "f1": f1, "yes_ratio": yes_ratio}


def opera_pope_eval(answers, labels):
    """OPERA pope_eval.py: recorder() and print_acc()."""
    pred_list = []
    for line in answers:
        line = line.replace(".", "").replace(",", "")
        words = line.split(" ")
        if any(word in ["No", "not", "no", "NO"] for word in words) or any(word.endswith("n't") for word in words):
            pred_list.append(0)
        else:
            pred_list.append(1)
    label_list = [0 if label == "no" else 1 for label in labels]
    yes_ratio = pred_list.count(1) / len(pred_list)
    tp = tn = fp = fn = 0
    for pred, label in zip(pred_list, label_list, strict=True):
        tp += pred == 1 and label == 1
        fp += pred == 1 and label == 0
        tn += pred == 0 and label == 0
        fn += pred == 0 and label == 1
    precision, recall, f1 = _ratios(tp, fp, tn, fn, len(pred_list))
    return {
        "accuracy": (tp + tn) / (tp + tn + fp + fn),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": yes_ratio,
    }


def lmms_eval_pope(answers, labels):
    """lmms-eval tasks/pope/utils.py aggregations; yes_ratio counted on predictions (ours) not labels."""
    results = [{"prediction": a.lower().strip(), "ground_truth": g} for a, g in zip(answers, labels, strict=True)]
    accuracy = sum(1.0 if r["prediction"] == r["ground_truth"] else 0.0 for r in results) / len(results)
    tp = sum(r["ground_truth"] == "yes" and r["prediction"] == "yes" for r in results)
    fp = sum(r["ground_truth"] == "no" and r["prediction"] == "yes" for r in results)
    fn = sum(r["ground_truth"] == "yes" and r["prediction"] == "no" for r in results)
    precision = tp / (tp + fp) if (tp + fp) > 0 else 0
    recall = tp / (tp + fn) if (tp + fn) > 0 else 0
    f1 = 2 * (precision * recall) / (precision + recall) if (precision + recall) > 0 else 0
    yes = sum(r["prediction"] == "yes" for r in results) / len(results)
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1, "yes_ratio": yes}


ANSWER_PARTS = [
    "Yes", "yes", "No", "no", "NO", "not", "There is", "There isn't", "a dog", "no cat", "I", "don't", "Yes,",
    "No,", "there", "is", "not.", ".", ",", "\n", "  ", "maybe", "cannot", "tell", "The", "image", "n't", "",
]  # fmt: skip


def random_answer(rng) -> str:
    if rng.random() < 0.3:
        return str(rng.choice(["Yes", "No", "yes", "no", "Yes.", "No.", " yes ", "NO", "", "Nope"]))
    return " ".join(str(rng.choice(ANSWER_PARTS)) for _ in range(int(rng.integers(1, 8))))


@pytest.mark.parametrize(
    ("parser", "reference"), [("official", pope_evaluate_py), ("opera", opera_pope_eval), ("exact", lmms_eval_pope)]
)
def test_random_answers_match_the_reference_scripts(parser, reference):
    rng = np.random.default_rng(len(parser))
    answers = [random_answer(rng) for _ in range(300)]
    labels = [str(rng.choice(["yes", "no"])) for _ in range(300)]
    for start, stop in [(0, 300), (0, 1), (5, 9), (20, 70), (100, 101), (150, 300)]:
        values = _run(parser, answers[start:stop], labels[start:stop])
        expected = reference(answers[start:stop], labels[start:stop])
        for key, value in expected.items():
            assert values[key] == pytest.approx(value, abs=1e-15), (parser, start, stop, key)


def test_vectorised_resampling_equals_aggregating_each_resample():
    rng = np.random.default_rng(3)
    metric = Pope(parser="exact")
    records = [
        metric.score(Sample(sample_id="s", image="x", target={"label": str(rng.choice(["yes", "no"]))}),
                     Prediction(text=random_answer(rng)))
        for _ in range(80)
    ]  # fmt: skip
    draws = rng.integers(0, 80, size=(30, 80))
    fast = metric.resampled(records, draws)
    for row, draw in enumerate(draws):
        for key, value in metric.aggregate([records[i] for i in draw]).items():
            assert fast[key][row] == pytest.approx(value, abs=1e-12)
