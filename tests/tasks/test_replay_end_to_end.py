"""Other code bases' output files, written as they write them, scored on the mini benchmark through replay."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest

from harness.cli import main
from harness.task import get_task
from tasks.loaders.common import load_plain_pickle

ANNOTATIONS = Path(__file__).resolve().parents[2] / "dataset_builders" / "mini" / "annotations"


def replay(capsys, root: Path, output: Path, tasks: str, predictions: Path, format: str, *extra: str) -> dict:
    code = main(
        [
            "--model",
            "replay",
            "--model-args",
            f"predictions={predictions},format={format}",
            "--tasks",
            tasks,
            "--data-root",
            str(root),
            "--output-dir",
            str(output),
            "--no-progress",
            "--bootstrap-iters",
            "0",
            *extra,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads((output / "results.json").read_text())["tasks"]


def test_llava_pope_answers_for_all_three_settings(mini_root, tmp_path, capsys):
    """LLaVA numbering: adversarial 1.., random 10000001.., popular 20000001..; six answers flipped."""
    offsets = {"adversarial": 0, "random": 10_000_000, "popular": 20_000_000}
    wrong = {
        ("random", "1"),
        ("random", "2"),
        ("popular", "60"),
        ("adversarial", "7"),
        ("adversarial", "8"),
        ("adversarial", "9"),
    }
    lines = []
    for setting, offset in offsets.items():
        for sample in get_task(f"pope_{setting}").samples(mini_root):
            truth = sample.target["label"]
            answer = {"yes": "No", "no": "Yes"}[truth] if (setting, sample.sample_id) in wrong else truth.capitalize()
            question_id = offset + int(sample.sample_id)
            lines.append(
                {
                    "question_id": question_id,
                    "prompt": sample.inputs["question"],
                    "text": answer,
                    "answer_id": "x",
                    "model_id": "llava-v1.5-7b",
                    "metadata": {},
                }
            )
    path = tmp_path / "merge.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    results = replay(capsys, mini_root, tmp_path / "run", "pope", path, "llava_pope")
    assert results["pope_random"]["metrics"]["accuracy"] == pytest.approx(58 / 60)
    assert results["pope_popular"]["metrics"]["accuracy"] == pytest.approx(59 / 60)
    assert results["pope_adversarial"]["metrics"]["accuracy"] == pytest.approx(57 / 60)
    # random 1 and 2 are astronaut's "person" (yes) and "giraffe" (no): one FN and one FP
    random = results["pope_random"]["metrics"]
    assert (random["precision"], random["recall"]) == (pytest.approx(29 / 30), pytest.approx(29 / 30))


def glamm_file(folder: Path, image_id: str, caption: str, phrases: list[str], masks: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)  # GLaMM infer.py: one {image_id}.json per image
    data = {"image_id": image_id, "caption": caption, "phrases": phrases, "pred_masks": masks}
    (folder / f"{image_id}.json").write_text(json.dumps(data))


def test_glamm_gcg_prediction_folder(mini_root, tmp_path, capsys):
    folder = tmp_path / "gcg_predictions"
    samples = get_task("gcg_test").samples(mini_root)
    for sample in samples:
        target = sample.target
        if sample.sample_id == "sa_920006":  # the horse: LIRA writes an empty mask list when nothing was found
            glamm_file(folder, sample.sample_id, "A horse.", [], [])
        else:
            glamm_file(folder, sample.sample_id, target["caption"], target["labels"], target["masks"])
    results = replay(
        capsys, mini_root, tmp_path / "run", "gcg_test", folder, "glamm_gcg", "--task-args", "gcg.caption_scorers=CIDEr"
    )
    metrics = results["gcg_test"]["metrics"]
    assert metrics["mIoU"] == pytest.approx(4 / 5)  # the horse image scores 0, the other four 1
    assert sum(len(s.target["masks"]) for s in samples) == 13
    # 12 of 13 ground-truth masks found, no false positive: precision 1 up to recall 12/13, so COCO's
    # 101-point AP counts the recall thresholds 0.00 ... 0.92
    assert metrics["AP50"] == pytest.approx(93 / 101)


def test_opera_chair_captions(mini_root, tmp_path, capsys):
    path = tmp_path / "ours-s_50-t_15.jsonl"  # OPERA chair_eval.py log
    ids = [910000 + i for i in range(1, 15)]
    path.write_text(
        "".join(json.dumps({"image_id": i, "caption": "A giraffe stands next to a giraffe."}) + "\n" for i in ids)
    )
    metrics = replay(capsys, mini_root, tmp_path / "run", "chair", path, "opera_chair")["chair"]["metrics"]
    assert (metrics["CHAIR_s"], metrics["CHAIR_i"], metrics["recall"]) == (1.0, 1.0, 0.0)  # no image shows a giraffe


def test_refseg_jsonl_without_seg_for_one_sentence(mini_root, tmp_path, capsys):
    samples = get_task("refcoco_val").samples(mini_root)
    path = tmp_path / "refseg.jsonl"
    with path.open("w") as stream:
        for number, sample in enumerate(samples):
            mask = None if number == 0 else sample.target["mask"]
            stream.write(json.dumps({"sample_id": sample.sample_id, "mask": mask}) + "\n")
    metrics = replay(capsys, mini_root, tmp_path / "run", "refcoco_val", path, "refseg_jsonl")["refcoco_val"]["metrics"]
    # generation protocol: a sentence without [SEG] adds nothing to the cIoU sums and 0 to gIoU
    assert metrics["cIoU"] == pytest.approx(1.0) and metrics["gIoU"] == pytest.approx(15 / 16)
    assert len(samples) == 16


def test_refs_pickle_from_python_2_layout_still_loads(mini_copy):
    """REFER pickles date from Python 2 (protocol 2, plain containers): re-dumped that way they load unchanged."""
    path = mini_copy / "ref_seg/refcoco/refs(unc).p"
    refs = load_plain_pickle(path, "refs pickle")
    path.write_bytes(pickle.dumps(refs, protocol=0))
    assert len(get_task("refcoco_testA").samples(mini_copy)) == 9
