"""Seg-token semantic analysis: statistics with known answers, probe scoring, and `run_eval.py analyze` end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from harness import masks
from harness.cli import main
from harness.vocabulary import WORD_LISTS
from reports.analysis import (
    ProbeError,
    analyse_task,
    correlate,
    correlate_many,
    pearson,
    rank_bins,
    score_probe,
    score_word,
    spearman,
)

# ---------------------------------------------------------------------------
# Statistics with known answers
# ---------------------------------------------------------------------------


def test_a_perfectly_monotone_relation_has_spearman_one():
    x = np.linspace(0.01, 1, 50)
    y = x**3 + 0.5  # monotone, not linear
    result = correlate(x, y, iterations=500, seed=1)
    assert result.spearman == pytest.approx(1.0) and result.spearman_interval == pytest.approx((1.0, 1.0))
    assert result.pearson < 1.0 and result.n == 50
    assert correlate(x, -y, iterations=100).spearman == pytest.approx(-1.0)


def test_independent_variables_give_an_interval_covering_zero():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=400), rng.uniform(size=400)
    result = correlate(x, y, iterations=1000, seed=3)
    low, high = result.spearman_interval
    assert low < 0 < high and abs(result.spearman) < 0.15
    low, high = result.pearson_interval
    assert low < 0 < high
    assert correlate(x, y, iterations=1000, seed=3) == result  # seeded: the same intervals


def test_bootstrap_intervals_match_scipy_on_every_resample():
    from scipy.stats import pearsonr, spearmanr

    rng = np.random.default_rng(1)
    x, z, y = rng.integers(0, 5, size=30).astype(float), rng.normal(size=30), rng.normal(size=30)
    found = correlate_many({"x": x, "z": z}, y, iterations=60, seed=3)
    draws = np.random.default_rng(3).integers(0, 30, size=(60, 30))  # the draws correlate_many makes
    for name, values in (("x", x), ("z", z)):
        rho = np.array([spearmanr(values[d], y[d]).statistic for d in draws])
        r = np.array([pearsonr(values[d], y[d]).statistic for d in draws])
        assert found[name].spearman_interval == pytest.approx(tuple(np.quantile(rho, [0.025, 0.975])))
        assert found[name].pearson_interval == pytest.approx(tuple(np.quantile(r, [0.025, 0.975])))
        assert found[name].spearman == pytest.approx(spearmanr(values, y).statistic)


def test_small_cases_by_hand():
    # ranks 1..4 against 1,3,2,4: d = 0,-1,1,0 -> rho = 1 - 6 * 2 / (4 * 15) = 0.8; Pearson of the same = 0.8
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # ties share their mean rank: x ranks 1.5,1.5,3 ; y ranks 1,2,3 -> Pearson of the ranks = sqrt(3)/2
    assert spearman([5, 5, 9], [1, 2, 3]) == pytest.approx(math.sqrt(3) / 2)
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3])) and math.isnan(pearson([2], [3]))
    constant = correlate([1, 1, 1], [1, 2, 3], iterations=20)
    assert constant.spearman_interval is None and constant.undefined_resamples == 20
    assert rank_bins([1, 1, 2, 7, 40], [1.0, 0.5, 0.25, 0.0, 0.5]) == [
        {"bin": "1", "n": 2, "mean_iou": 0.75},
        {"bin": "2", "n": 1, "mean_iou": 0.25},
        {"bin": "3", "n": 0, "mean_iou": None},
        {"bin": "4–5", "n": 0, "mean_iou": None},
        {"bin": "6–10", "n": 1, "mean_iou": 0.0},
        {"bin": ">10", "n": 1, "mean_iou": 0.5},
    ]


# ---------------------------------------------------------------------------
# Probe scoring
# ---------------------------------------------------------------------------


def test_rank_and_softmax_probability_of_a_word():
    score = score_word("cat", {"dog": 1.0, "cat": 2.0, "cow": 0.0})
    e = math.e
    assert (score.word, score.rank, score.list_size) == ("cat", 1, 3)
    assert score.probability == pytest.approx(e**2 / (e**2 + e + 1))
    assert score_word("dog", {"dog": 1.0, "cat": 1.0, "cow": 3.0}).rank == 2  # ties share the better rank
    assert score_word("giraffe", {"dog": 1.0}) is None


def test_lists_and_words_are_matched_by_name_and_alias():
    probe = {
        "objects": {"motorbike": 3.0, "bicycle": 1.0},
        "colors": {"Red": 0.0, "Blue": 2.0},
        "positions": {"Left": 1.0, "Center": 1.0},
        "scenes": {"garage": 9.0},
    }
    values = {"category": ["motorcycle"], "color": ["red"], "position": ["left", "center"], "relation": ["behind"]}
    scores, missing = score_probe(probe, values)
    assert scores["category"].word == "motorbike" and scores["category"].rank == 1
    assert scores["color"].rank == 2 and scores["position"].probability == pytest.approx(0.5)
    assert missing == {"relation": "probe has no list for it"}
    with pytest.raises(ProbeError):
        score_probe({"objects": {"cat": "high"}}, {"category": ["cat"]})


def _row(index, iou_parts, logits, category="cat", error=None, layers=None):
    intersection, union = iou_parts
    probe = {"position": 0, "word_logits": {"category": logits}}
    if layers is not None:
        probe["layer_word_logits"] = layers
    return {
        "index": index,
        "sample_id": f"s{index}",
        "target": {"category": category, "attributes": {"color": ["red"]}},
        "prediction": {"text": "[SEG]", "masks": [], "probes": [probe] if logits is not None else []},
        "scores": {"refseg": {"intersection": intersection, "union": union, "has_mask": True, "n_masks": 1}},
        "error": error,
    }


TASK = {"config": {"metrics": [{"name": "refseg", "protocol": "generation"}]}}


def test_task_analysis_on_constructed_rows():
    rows = [
        _row(0, (9, 10), {"cat": 3.0, "dog": 0.0, "cow": 0.0}, layers=[{"category": {"cat": 0.0, "dog": 0.0}}] * 2),
        _row(1, (5, 10), {"cat": 1.0, "dog": 2.0, "cow": 0.0}, layers=[{"category": {"cat": 1.0, "dog": 0.0}}] * 2),
        _row(2, (1, 10), {"cat": 0.0, "dog": 2.0, "cow": 1.0}, layers=[{"category": {"cat": 2.0, "dog": 0.0}}] * 2),
        _row(3, (1, 10), None),  # no probe
        _row(4, (1, 10), {"cat": 1.0}, error="NotInReplay: x"),
        _row(5, (1, 10), {"giraffe": 1.0}),  # the target's word is not in the list
    ]
    analysis = analyse_task("toy", TASK, rows, iterations=100, seed=0)
    assert [s.index for s in analysis.samples] == [0, 1, 2]
    assert [s.iou for s in analysis.samples] == pytest.approx([0.9, 0.5, 0.1], rel=1e-5)  # I / (U + 1e-5)
    assert [s.scores["category"].rank for s in analysis.samples] == [1, 2, 3]
    assert analysis.correlations["category_probability"].spearman == pytest.approx(1.0)
    assert analysis.correlations["category_rank"].spearman == pytest.approx(-1.0)
    assert analysis.skipped == {"no [SEG] probe": 1, "failed sample": 1, "no target word in the probe's lists": 1}
    assert analysis.unmatched["color: probe has no list for it"] == 4
    assert [item["n"] for item in analysis.bins] == [1, 1, 1, 0, 0, 0]
    # per layer: the category probability rises as IoU falls, so Spearman is -1 at both layers
    assert [point["spearman"] for point in analysis.layers] == pytest.approx([-1.0, -1.0])
    assert analyse_task("toy", TASK, [_row(0, (1, 2), None)]) is None  # no probes at all
    assert analyse_task("toy", {"config": {"metrics": [{"name": "pope"}]}}, rows) is None


# ---------------------------------------------------------------------------
# End to end on the mini benchmark: replay predictions with probes, then `run_eval.py analyze`
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def probed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RefCOCO val of the mini benchmark replayed with probes: every 3rd sample (index % 3 == 1) gets an
    empty mask (IoU 0) and its category word the logit -3 (rank 80 of LIRA's 80 words, the others at 0);
    the others get the exact mask and the logit 3 + area / 1e9 (rank 1). An exact mask's IoU is
    A / (A + 1e-5), rising with the target area A, so probability and IoU order the samples identically
    (ties included). Two layers: all zeros (no signal) and the final logits."""
    from dataset_builders.mini import build

    work = tmp_path_factory.mktemp("analysis")
    root = build(work / "mini")
    oracle = work / "oracle"
    common = ["--data-root", str(root), "--no-progress", "--bootstrap-iters", "0"]
    assert main(["--model", "oracle", "--tasks", "refcoco_val", "--output-dir", str(oracle), *common]) == 0
    lines = []
    for row in map(json.loads, (oracle / "samples/refcoco_val.jsonl").read_text().splitlines()):
        good = row["index"] % 3 != 1
        mask = row["prediction"]["masks"][0]
        words = dict.fromkeys(WORD_LISTS["category"], 0.0)
        lira_names = {"dining table": "diningtable", "motorcycle": "motorbike"}  # app_lira.py spells them so
        category = lira_names.get(row["target"]["category"], row["target"]["category"])
        words[category] = 3.0 + masks.area(row["target"]["mask"]) / 1e9 if good else -3.0
        probe = {
            "position": 0,
            "word_logits": {"objects": words, "colors": dict.fromkeys(WORD_LISTS["color"], 0.0)},
            "layer_word_logits": [{"objects": dict.fromkeys(words, 0.0)}, {"objects": words}],
        }
        lines.append(
            {
                "task": "refcoco_val",
                "sample_id": row["sample_id"],
                "text": "[SEG]",
                "masks": [mask if good else masks.empty(*mask["size"])],
                "probes": [probe],
            }
        )
    replay = work / "replay.jsonl"
    replay.write_text("".join(json.dumps(line) + "\n" for line in lines))
    run = work / "run"
    arguments = ["--model", "replay", "--model-args", f"predictions={replay}", "--tasks", "refcoco_val"]
    assert main([*arguments, "--output-dir", str(run), *common]) == 0
    return run


def test_analyze_command_writes_tables_plots_and_the_report_section(probed_run, capsys):
    capsys.readouterr()
    assert main(["analyze", str(probed_run), "--bootstrap-iters", "200"]) == 0
    printed = capsys.readouterr().out
    assert "refcoco_val: 16 samples with [SEG] probes scored" in printed
    folder = probed_run / "analysis"
    with (folder / "seg_semantics.csv").open() as stream:
        table = list(csv.DictReader(stream))
    assert len(table) == 16
    bad = [row for row in table if int(row["index"]) % 3 == 1]
    assert len(bad) == 5 and all(row["category_rank"] == "80" and float(row["iou"]) == 0.0 for row in bad)
    good = [row for row in table if int(row["index"]) % 3 != 1]
    assert all(row["category_rank"] == "1" and float(row["iou"]) == pytest.approx(1.0) for row in good)
    assert float(good[0]["category_probability"]) == pytest.approx(math.exp(3) / (math.exp(3) + 79), rel=1e-3)
    summary = json.loads((folder / "seg_semantics.json").read_text())["refcoco_val"]
    # probability and IoU order the samples identically: Spearman 1; the rank takes two values (1, 80)
    # while IoU varies slightly inside the good group: scipy's spearmanr of the table gives its rho
    from scipy.stats import spearmanr

    correlations = summary["correlations"]
    assert correlations["category_probability"]["spearman"] == pytest.approx(1.0)
    expected = spearmanr([float(r["category_rank"]) for r in table], [float(r["iou"]) for r in table]).statistic
    assert correlations["category_rank"]["spearman"] == pytest.approx(expected) and expected < -0.5
    assert correlations["category_rank"]["pearson"] == pytest.approx(-1.0, abs=1e-6)
    assert summary["iou_by_category_rank"][0] == {"bin": "1", "n": 11, "mean_iou": pytest.approx(1.0)}
    assert summary["iou_by_category_rank"][-1] == {"bin": ">10", "n": 5, "mean_iou": 0.0}
    layers = list(csv.DictReader((folder / "seg_semantics_layers.csv").open()))
    assert layers[0]["spearman"] == ""  # layer 0: no signal, correlation undefined
    assert float(layers[1]["spearman"]) == pytest.approx(1.0)
    assert {p.name for p in (folder / "plots").iterdir()} == {
        "refcoco_val-semantics-scatter.png",
        "refcoco_val-semantics-rank-bins.png",
        "refcoco_val-semantics-layers.png",
    }
    page = (probed_run / "report.html").read_text()
    assert 'id="seg-semantics"' in page and "report_files/seg_semantics.csv" in page
    assert (probed_run / "report_files/seg_semantics.csv").read_text() == (folder / "seg_semantics.csv").read_text()


def test_analyze_needs_probes(probed_run, tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "missing")]) == 2
    oracle = probed_run.parent / "oracle"
    assert main(["analyze", str(oracle)]) == 2
    assert "no task of" in capsys.readouterr().err
    assert 'id="seg-semantics"' not in (oracle / "report.html").read_text()
