"""Replay importers on files written the way LLaVA, LIRA, GLaMM and OPERA write them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from harness import masks
from harness.errors import DataError, UnknownNameError
from harness.types import Request
from models.replay import ReplayAdapter


def glamm_rle(pixels: np.ndarray) -> dict:
    """GLaMM ``infer.py`` (SAM's ``mask_to_rle_pytorch`` + ``coco_encode_rle``): column-major run lengths
    starting with a background run, compressed by ``frPyObjects``, counts decoded to a string."""
    counts, current, run = [], 0, 0
    for value in pixels.flatten(order="F"):
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    counts.append(run)
    rle = coco_mask.frPyObjects({"size": list(pixels.shape), "counts": counts}, *pixels.shape)
    rle["counts"] = rle["counts"].decode("utf-8")
    return rle


def request(task: str, sample_id: str) -> Request:
    return Request(task=task, task_family="x", sample_id=sample_id, kind="vqa", image="i.jpg", prompt="p")


def test_llava_pope_answer_file_maps_ids_to_settings(tmp_path):
    path = tmp_path / "answers.jsonl"  # LLaVA model_vqa_loader.py over llava_pope_test.jsonl
    rows = [
        (3, "No"),  # adversarial 3
        (10000001, "Yes, there is a snowboard."),  # random 1
        (20000002, "There is no dog."),  # popular 2
    ]
    prompt = "Is there ...?\nAnswer the question using a single word or phrase."
    lines = [
        {
            "question_id": qid,
            "prompt": prompt,
            "text": text,
            "answer_id": f"a{qid}",
            "model_id": "llava",
            "metadata": {},
        }
        for qid, text in rows
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    adapter = ReplayAdapter(predictions=path, format="llava_pope")
    answers = adapter.predict(
        [request("pope_adversarial", "3"), request("pope_random", "1"), request("pope_popular", "2")]
    )
    assert [a.text for a in answers] == ["No", "Yes, there is a snowboard.", "There is no dog."]
    missing = adapter.predict([request("pope_random", "3")])[0]
    assert missing.error is not None and missing.error.startswith("NotInReplay")


def test_lira_pope_result_array_of_one_question_file_matches_any_pope_task(tmp_path):
    path = tmp_path / "pope_241001120000.json"  # LIRA evaluate_pope.py: a JSON array
    path.write_text(
        json.dumps(
            [{"question_id": 1, "text": "Yes", "metadata": {}}, {"question_id": 2, "text": "No", "metadata": {}}]
        )
    )
    adapter = ReplayAdapter(predictions=path, format="llava_pope")
    assert [a.text for a in adapter.predict([request("pope_gqa_random", "2"), request("pope_random", "1")])] == [
        "No",
        "Yes",
    ]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"question_id": 1, "text": 5}\n', "line 1: field 'text' must be a string, got int"),
        ('{"text": "Yes"}\n', "line 1: field 'question_id' must be an integer id, got None"),
        (
            '{"question_id": 1, "text": "a"}\n{"question_id": 1, "text": "b"}\n',
            "line 2: a second prediction for sample '1'",
        ),
        ('{"question_id": 30000001, "text": "a"}\n', "outside llava_pope_test.jsonl's ranges"),
    ],
)
def test_llava_pope_problems_are_named(tmp_path, content, fragment):
    path = tmp_path / "answers.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=fragment):
        ReplayAdapter(predictions=path, format="llava_pope")


def test_glamm_gcg_folder_flat_wrapped_and_empty(tmp_path):
    folder = tmp_path / "gcg_predictions"
    folder.mkdir()
    pixels = np.zeros((6, 8), dtype=np.uint8)
    pixels[1:4, 2:5] = 1
    flat = {
        "image_id": "sa_1",
        "caption": "A dog on grass.",
        "phrases": [" A dog ", "grass"],
        "pred_masks": [glamm_rle(pixels), glamm_rle(1 - pixels)],
    }
    (folder / "sa_1.json").write_text(json.dumps(flat))
    wrapped = {"sa_2": {"caption": "A cat.", "phrases": ["A cat"], "pred_masks": [glamm_rle(pixels)]}}
    (folder / "sa_2.json").write_text(json.dumps(wrapped))
    (folder / "sa_3.json").write_text(
        json.dumps({"image_id": "sa_3", "caption": "Nothing.", "phrases": [], "pred_masks": []})
    )
    adapter = ReplayAdapter(predictions=folder, format="glamm_gcg")
    one, two, three = adapter.predict([request("gcg_val", f"sa_{i}") for i in (1, 2, 3)])
    assert one.text == "A dog on grass." and one.phrases == ("A dog", "grass")
    assert [masks.area(m) for m in one.masks] == [9, 39]
    assert np.array_equal(masks.decode(one.masks[0]), pixels)
    assert two.text == "A cat." and len(two.masks) == 1
    assert three.masks == () and three.phrases == ()


def test_glamm_gcg_uncompressed_masks_and_problems(tmp_path):
    folder = tmp_path / "predictions"
    folder.mkdir()
    (folder / "sa_1.json").write_text(
        json.dumps({"caption": "x", "phrases": ["x"], "pred_masks": [{"size": [2, 2], "counts": [1, 2, 1]}]})
    )
    answer = ReplayAdapter(predictions=folder, format="glamm_gcg").predict([request("gcg_val", "sa_1")])[0]
    assert masks.decode(answer.masks[0]).flatten(order="F").tolist() == [0, 1, 1, 0]
    (folder / "sa_1.json").write_text(json.dumps({"caption": "x", "phrases": ["x"], "pred_masks": [{"size": [2, 2]}]}))
    with pytest.raises(DataError, match=r"sa_1.json pred_masks\[0\] is not an RLE dict"):
        ReplayAdapter(predictions=folder, format="glamm_gcg")
    (folder / "sa_1.json").write_text('{"caption": "x", ')
    with pytest.raises(DataError, match=r"sa_1\.json is not valid JSON"):
        ReplayAdapter(predictions=folder, format="glamm_gcg")
    with pytest.raises(DataError, match=r"must be a folder of <image_id>\.json files"):
        ReplayAdapter(predictions=folder / "sa_1.json", format="glamm_gcg")


def test_opera_and_lira_chair_captions(tmp_path):
    opera = tmp_path / "ours.jsonl"  # OPERA chair_eval.py: {"image_id", "caption"} per line
    opera.write_text('{"image_id": 391895, "caption": "A man riding a bike."}\n')
    lira = tmp_path / "chair_results.jsonl"  # LIRA evaluate_chair.py adds the question
    question = "Provide an in-depth description of this image."
    lira.write_text(json.dumps({"question": question, "image_id": 42, "caption": "A cat on a sofa."}) + "\n")
    assert ReplayAdapter(predictions=opera, format="opera_chair").predict([request("chair", "391895")])[0].text == (
        "A man riding a bike."
    )
    assert (
        ReplayAdapter(predictions=lira, format="opera_chair").predict([request("chair", "42")])[0].text
        == "A cat on a sofa."
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image_id": "COCO_val2014_000000000042.jpg", "caption": "x"}\n')
    with pytest.raises(DataError, match="line 1: field 'image_id' must be an integer id"):
        ReplayAdapter(predictions=bad, format="opera_chair")


def test_lira_vqa_results_for_attreval(tmp_path):
    path = tmp_path / "refcoco_attri_241001120000.json"  # LIRA evaluate_vqa.py: question id under "image"
    rows = [
        {"image": 1, "question": "What color is the bus?", "answer": "Red.", "annotation": "red"},
        {"image": "q2", "question": "Is the bus blue?", "answer": "no", "annotation": "no"},
    ]
    path.write_text(json.dumps(rows))
    adapter = ReplayAdapter(predictions=path, format="lira_vqa")
    assert [a.text for a in adapter.predict([request("attreval_qa", "1"), request("attreval_qa", "q2")])] == [
        "Red.",
        "no",
    ]
    path.write_text(json.dumps([{"question": "q", "answer": "a"}]))
    with pytest.raises(DataError, match="item 1: field 'image' must hold the question id"):
        ReplayAdapter(predictions=path, format="lira_vqa")


def test_refseg_jsonl_masks_and_missing_seg(tmp_path):
    pixels = np.zeros((4, 5), dtype=np.uint8)
    pixels[0, :2] = 1
    path = tmp_path / "refseg.jsonl"
    lines = [
        {"sample_id": "14024:39906", "mask": dict(masks.encode(pixels))},
        {"sample_id": "14024:39907", "mask": None, "task": "refcoco_val", "text": "I cannot see it."},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    adapter = ReplayAdapter(predictions=path, format="refseg_jsonl")
    first, second = adapter.predict([request("refcoco_val", "14024:39906"), request("refcoco_val", "14024:39907")])
    assert first.text == "[SEG]" and masks.area(first.masks[0]) == 2
    assert second.masks == () and second.text == "I cannot see it."
    path.write_text(json.dumps({"sample_id": "1:2"}) + "\n")
    with pytest.raises(DataError, match="line 1: missing field 'mask'"):
        ReplayAdapter(predictions=path, format="refseg_jsonl")
    path.write_text(json.dumps({"sample_id": "1:2", "mask": {"size": [2, 2], "counts": "2"}}) + "\n")
    with pytest.raises(DataError, match="line 1 mask RLE counts cover"):
        ReplayAdapter(predictions=path, format="refseg_jsonl")


def test_unknown_format_suggests_the_known_ones(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text("")
    with pytest.raises(UnknownNameError, match="Did you mean 'llava_pope'"):
        ReplayAdapter(predictions=path, format="llava_pop")


def test_importers_are_registered_lazily():
    import models  # noqa: F401
    from models.replay import REPLAY_FORMATS

    assert {"attreval", "llava_pope", "glamm_gcg", "opera_chair", "lira_vqa", "refseg_jsonl"} <= set(
        REPLAY_FORMATS.names()
    )
    assert REPLAY_FORMATS.origin("glamm_gcg") == "models.importers:load_glamm_gcg"


def test_glamm_rle_helper_matches_pycocotools_encode():
    pixels = (np.arange(30).reshape(5, 6) % 7 < 3).astype(np.uint8)
    assert glamm_rle(pixels)["counts"] == masks.encode(pixels)["counts"]
