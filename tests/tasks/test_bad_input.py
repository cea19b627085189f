"""Bad input on the mini benchmark: each gives a clear error naming the file and what was expected, or,
for a missing or corrupt image, fails that sample with its reason while the run goes on."""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from harness.cli import main
from harness.model import MODELS, ModelAdapter
from harness.types import REQUEST_KINDS, Prediction, Request
from tasks.loaders.common import load_plain_pickle

ANNOTATIONS = Path(__file__).resolve().parents[2] / "dataset_builders" / "mini" / "annotations"


def cli(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str, str]:
    code = main([*arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run(capsys, root: Path, output: Path, tasks: str, model: str = "oracle", *extra: str) -> tuple[int, str, str]:
    return cli(
        capsys,
        "--model",
        model,
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
    )


def test_truncated_json_is_named_with_its_line(mini_copy, tmp_path, capsys):
    path = mini_copy / "glamm_data/annotations/gcg_val_test/val_gcg_coco_caption_gt.json"
    path.write_text(path.read_text()[:300])
    code, _, err = run(capsys, mini_copy, tmp_path / "run", "gcg_val")
    assert code == 2 and "Traceback" not in err
    assert f"error: GCG caption file {path} is not valid JSON (line 1, column" in err


def test_check_data_lists_present_missing_and_malformed(mini_copy, capsys):
    (mini_copy / "pope/coco/coco_pope_popular.json").unlink()
    (mini_copy / "coco/val2014/COCO_val2014_000000910005.jpg").unlink()
    broken = mini_copy / "pope/coco/coco_pope_random.json"
    broken.write_text(broken.read_text().replace('"label": "yes"', '"answer": "yes"', 1))
    code, out, _ = cli(capsys, "check-data", "--tasks", "pope,attreval_qa_lira", "--data-root", str(mini_copy))
    assert code == 1
    lines = out.splitlines()
    assert any(line.split()[:3] == ["pope_random", "questions", "present"] for line in lines)
    assert any(line.split()[:3] == ["pope_popular", "questions", "MISSING"] for line in lines)
    assert any(
        line.startswith("pope_random") and "MALFORMED" in line and f"{broken} line 1: missing field 'label'" in line
        for line in lines
    )
    normalised = [" ".join(line.split()) for line in lines]
    expected = (
        f"pope_adversarial MISSING 1 of 14 images, e.g. {mini_copy / 'coco/val2014/COCO_val2014_000000910005.jpg'}"
    )
    assert expected in normalised
    assert "attreval_qa_lira ok: 48 samples, 8 images" in normalised


@pytest.mark.parametrize(
    ("relative", "change", "fragment"),
    [
        (
            "refcoco_attri/refcoco_attri.jsonl",
            lambda rows: rows[3].update(question_id=3.5),
            "line 4: field 'question_id' must be a string or an integer, got float 3.5",
        ),
        ("refcoco_attri/refcoco_attri.jsonl", lambda rows: rows[0].pop("answer"), "line 1: missing field 'answer'"),
        (
            "pope/coco/coco_pope_random.json",
            lambda rows: rows[1].update(label="maybe"),
            "line 2: field 'label' must be 'yes' or 'no'",
        ),
    ],
)
def test_missing_fields_and_wrong_types(mini_copy, tmp_path, capsys, relative, change, fragment):
    path = mini_copy / relative
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    change(rows)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    task = "attreval_qa_lira" if "attri" in relative else "pope_random"
    code, _, err = run(capsys, mini_copy, tmp_path / "run", task)
    assert code == 2 and str(path) in err and fragment in err


def test_wrong_types_in_instances_json(mini_copy, tmp_path, capsys):
    path = mini_copy / "ref_seg/refcoco/instances.json"
    data = json.loads(path.read_text())
    data["images"][0]["height"] = "512"
    path.write_text(json.dumps(data))
    code, _, err = run(capsys, mini_copy, tmp_path / "run", "refcoco_val")
    assert code == 2
    assert f"instances file {path} images[0]: field 'height' must be an integer, got str '512'" in err


def test_unknown_split(mini_root, tmp_path, capsys):
    code, _, err = run(
        capsys, mini_root, tmp_path / "run", "refcoco_testA", "oracle", "--task-args", "refcoco.split_by=umd"
    )
    assert code == 2 and "unknown split 'testA' for splitBy 'umd'; expected one of train, val, test" in err
    code, _, err = run(
        capsys, mini_root, tmp_path / "run", "refcoco_val", "oracle", "--task-args", "refcoco_val.split=train"
    )
    assert code == 2 and "fixes split" in err


def test_a_split_missing_from_the_refs_file(mini_copy, tmp_path, capsys):
    path = mini_copy / "ref_seg/refcoco+/refs(unc).p"
    refs = [ref for ref in load_plain_pickle(path, "refs pickle") if ref["split"] != "testB"]
    path.write_bytes(pickle.dumps(refs, protocol=2))
    code, _, err = run(capsys, mini_copy, tmp_path / "run", "refcoco+_testB")
    assert code == 2 and f"refs pickle {path} has no ref in split 'testB' (splits present: ['testA', 'val'])" in err


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_that_imports_a_callable_is_refused(mini_copy, tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = mini_copy / "ref_seg/refcocog/refs(umd).p"
    path.write_bytes(pickle.dumps([{"ref_id": 1, "payload": Payload(marker)}], protocol=2))
    code, _, err = run(capsys, mini_copy, tmp_path / "run", "refcocog_val")
    assert code == 2 and "Traceback" not in err
    assert f"pickle {path} tries to import posix.system; refused" in err
    assert not marker.exists()


def pope_questions_on(image_key: str) -> int:
    return 2 * len(json.loads((ANNOTATIONS / "pope.json").read_text())["images"][image_key]["present"])


def test_a_missing_image_fails_its_samples_and_the_run_goes_on(mini_copy, tmp_path, capsys):
    (mini_copy / "coco/val2014/COCO_val2014_000000910003.jpg").unlink()  # chelsea
    code, out, _ = run(capsys, mini_copy, tmp_path / "run", "pope_random")
    assert code == 0 and "ImageNotFound: 2" in out
    results = json.loads((tmp_path / "run/results.json").read_text())["tasks"]["pope_random"]
    assert results["n_failed"] == pope_questions_on("chelsea") == 2
    assert results["metrics"]["accuracy"] == 1.0  # the other 58 answers are scored
    rows = [json.loads(line) for line in (tmp_path / "run/samples/pope_random.jsonl").read_text().splitlines()]
    failed = [row for row in rows if row["error"]]
    assert [row["sample_id"] for row in failed] == ["15", "16"]  # after astronaut's 6 and coffee's 8 questions
    assert failed[0]["error"].startswith("ImageNotFound:") and "COCO_val2014_000000910003.jpg" in failed[0]["error"]


class OpeningAdapter(ModelAdapter):
    """Answers like the oracle after decoding the image, as every real model does."""

    capabilities = frozenset({"text", "masks", "reference"})
    request_kinds = frozenset(REQUEST_KINDS)

    def __init__(self) -> None:
        super().__init__()

    def predict(self, requests: Sequence[Request]) -> list[Prediction]:
        for request in requests:
            with Image.open(request.image) as image:
                image.convert("RGB")
        return [request.reference for request in requests]  # type: ignore[misc]


def test_a_corrupt_image_fails_its_samples_and_the_run_goes_on(mini_copy, tmp_path, capsys):
    if "image_opening" not in MODELS:
        MODELS.register("image_opening", OpeningAdapter)
    path = mini_copy / "glamm_data/images/coco2014/train2014/COCO_train2014_000000900008.jpg"  # motorcycle
    path.write_bytes(b"\xff\xd8 this is not a JPEG")
    code, out, _ = run(capsys, mini_copy, tmp_path / "run", "refcoco_val,attreval_qa_lira", "image_opening")
    assert code == 0 and "UnidentifiedImageError: 9" in out
    results = json.loads((tmp_path / "run/results.json").read_text())["tasks"]
    refs = [ref for ref in json.loads((ANNOTATIONS / "refs.json").read_text())["refcoco"] if ref["split"] == "val"]
    on_motorcycle = sum(len(ref["sentences"]) for ref in refs if ref["object"].startswith("motorcycle/"))
    assert results["refcoco_val"]["n_failed"] == on_motorcycle == 9
    assert results["refcoco_val"]["failures"] == {"UnidentifiedImageError": 9}
    assert results["refcoco_val"]["metrics"]["cIoU"] == pytest.approx(1.0)  # the coffee-table sentences still score
    pairs = json.loads((ANNOTATIONS / "attreval.json").read_text())["pairs"]
    assert results["attreval_qa_lira"]["n_failed"] == 2 * sum(pair["image"] == "motorcycle" for pair in pairs) == 8
    row = json.loads((tmp_path / "run/samples/refcoco_val.jsonl").read_text().splitlines()[-1])
    assert row["error"].startswith("UnidentifiedImageError: cannot identify image file") and str(path) in row["error"]
