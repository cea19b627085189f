"""The AttrEval tasks on the mini benchmark's built AttrEval (attreval/refcoco_val) and LIRA's released file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.errors import UserError
from harness.task import get_task


def test_seg_samples_carry_the_attribute_type_and_the_object_attributes(mini_root):
    task = get_task("attreval_seg")
    samples = task.samples(mini_root)
    rows = [json.loads(line) for line in (mini_root / "attreval/refcoco_val/seg.jsonl").read_text().splitlines()]
    assert sorted(s.inputs["sentence"] for s in samples) == sorted(r["expression"] for r in rows)
    yellow = next(s for s in samples if s.inputs["sentence"] == "the yellow one")
    assert task.request(yellow).prompt == "Please segment the yellow one."
    assert yellow.target["attribute"] == "color" and yellow.target["category"] == "bottle"
    assert yellow.target["attributes"]["color"] == ["yellow"] and yellow.target["attributes"]["position"] == ["top"]
    assert yellow.target["mask"] == next(r["mask"] for r in rows if r["expression"] == "the yellow one")
    assert Path(yellow.image).is_file() and task.want_probes and task.request(yellow).want_probes
    assert task.config()["metrics"] == [{"name": "refseg_grouped", "protocol": "generation", "key": "attribute"}]


def test_refcoco_targets_name_the_category(mini_root):
    samples = get_task("refcoco_val").samples(mini_root)
    assert {s.target["category"] for s in samples} == {"cup", "spoon", "dining table", "motorcycle", "bench",
                                                       "bicycle", "bottle"}  # fmt: skip
    assert next(s for s in samples if s.inputs["sentence"] == "wooden table").target["supercategory"] == "furniture"
    assert not get_task("refcoco_val").want_probes and get_task("refcoco_val", "probes=true").want_probes


def test_subsets_and_paths(mini_root, tmp_path):
    task = get_task("attreval_seg", "subset=refcocog_test")
    assert task.data_files(mini_root)["refs"] == mini_root / "attreval/refcocog_test/refs(umd).p"
    assert task.config()["options"]["subset"] == "refcocog_test"
    qa = get_task("attreval_qa", "subset=refcoco+_testA")
    assert qa.data_files(mini_root)["questions"] == mini_root / "attreval/refcoco+_testA/refcoco_attri.jsonl"
    assert get_task("attreval_qa_lira").data_files(mini_root)["questions"] == (
        mini_root / "refcoco_attri/refcoco_attri.jsonl"
    )
    with pytest.raises(UserError, match="DATASET_SPLIT"):
        get_task("attreval_seg", "subset=val")
    with pytest.raises(UserError, match="unknown argument 'subset'"):
        get_task("attreval_qa_lira", "subset=refcoco_val")


def test_per_attribute_accuracy_on_built_data(mini_root, tmp_path, capsys):
    # the constant "yes" answers every pair's true question right and its negative wrong
    code = main(
        [
            "--model", "constant", "--model-args", "answer=yes,mask=full", "--tasks", "attreval",
            "--data-root", str(mini_root), "--output-dir", str(tmp_path), "--no-progress", "--bootstrap-iters", "50",
        ]
    )  # fmt: skip
    assert code == 0
    results = json.loads((tmp_path / "results.json").read_text())
    qa = results["tasks"]["attreval_qa"]["metrics"]
    assert qa == {
        "accuracy": 0.5,
        "paired_accuracy": 0.0,
        "accuracy_category": 0.5,
        "accuracy_color": 0.5,
        "accuracy_position": 0.5,
        "accuracy_relation": 0.5,
    }
    seg = results["tasks"]["attreval_seg"]["metrics"]
    assert {"cIoU_color", "gIoU_color", "cIoU_position", "cIoU_combined"} <= set(seg)
    # the full-image mask: I = the target's area, U = the image's area, per sample
    rows = [json.loads(line) for line in (tmp_path / "samples/attreval_seg.jsonl").read_text().splitlines()]
    color = [r["scores"]["refseg_grouped"] for r in rows if r["target"]["attribute"] == "color"]
    assert seg["cIoU_color"] == pytest.approx(sum(r["intersection"] for r in color) / sum(r["union"] for r in color))
    assert all(r["union"] == 500 * 741 for r in color)  # the bottle is in the 741 x 500 motorcycle photo
    assert "cIoU_color" in results["tasks"]["attreval_seg"]["intervals"]
