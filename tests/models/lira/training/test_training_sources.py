"""Training annotation readers: conversations in the ILVC format, phrase spans, filters and draws of the original
process functions (values worked out by hand from `gcg_process.py` / `referring_seg_process.py`)."""

from __future__ import annotations

import json
from pathlib import Path

from tiny_data import SCENES

from models.lira.training.config import SourceSpec
from models.lira.training.conversation import GCG_QUESTIONS
from models.lira.training.sources import read_source

TAG = "[SEG]<image_id><image> <p> {} </p> [SEG]"


def _spec(name: str, fmt: str, annotations: Path, images: Path, **values: object) -> SourceSpec:
    return SourceSpec(name=name, format=fmt, annotations=str(annotations), images=str(images), **values)  # type: ignore[arg-type]


def test_grandf_caption_with_phrases_and_crops(data_root: Path) -> None:
    annotations = data_root / "glamm_data/annotations/GranDf_HA_GCG_train_highlight_bg.json"
    read = read_source(_spec("grandf", "grandf", annotations, data_root / "img"), Path("."), seed=0, copy=0)
    assert len(read.samples) == 6 and not read.skipped
    sample = read.samples[0]
    (turn,) = sample.turns
    assert turn.answer == TAG.format("the red box") + " and " + TAG.format("the blue box")
    assert turn.question.startswith("<image>\n") and turn.question[len("<image>\n") :] in GCG_QUESTIONS
    assert sample.image == data_root / "img" / "COCO_train2014_000000000001.png"
    assert [Path(g.crop_path).name for g in sample.groundings] == ["00000000.png", "00000001.png"]
    again = read_source(_spec("grandf", "grandf", annotations, data_root / "img"), Path("."), seed=0, copy=0)
    assert [s.turns for s in again.samples] == [s.turns for s in read.samples]  # the question draw is seeded


def test_refcocog_gcg_lower_cases_and_trims_overlaps(tmp_path: Path) -> None:
    records = [
        {
            "7": {
                "img_file_name": "a.jpg",
                "caption": '"A man riding a horse"',
                "refs": [
                    {"sentence": "riding a horse", "segmentation": [[0, 0, 4, 0, 4, 4]]},
                    {"sentence": "A Man riding", "segmentation": [[1, 1, 5, 1, 5, 5]]},
                    {"sentence": "a dog", "segmentation": [[1, 1, 5, 1, 5, 5]]},  # not in the caption: no phrase
                ],
            }
        },
        {"8": {"img_file_name": "b.jpg", "caption": "two boxes", "refs": [{"sentence": "a cat", "segmentation": []}]}},
        {"9": "not an object"},
    ]
    path = tmp_path / "refcocog.json"
    path.write_text(json.dumps(records))
    read = read_source(_spec("g", "refcocog_gcg", path, tmp_path, crops="render"), tmp_path, seed=1, copy=0)
    (sample,) = read.samples
    # "a man riding" [0, 12) reaches "riding a horse" [6, 20): it now ends at 6 - 1 = 5
    assert sample.turns[0].answer == TAG.format("a man") + " " + TAG.format("riding a horse")
    assert [g.segmentation for g in sample.groundings] == [[[1, 1, 5, 1, 5, 5]], [[0, 0, 4, 0, 4, 4]]]
    assert all(g.crop_path is None for g in sample.groundings)
    assert dict(read.skipped) == {"no grounded phrase": 1, "malformed annotation record": 1}


def test_flickr_filters(tmp_path: Path) -> None:
    rle = {"size": [40, 60], "counts": "0"}
    data = {
        "images": [
            {"id": 1, "file_name": "a.jpg", "height": 40, "width": 60, "caption": "a man on a horse"},
            {"id": 2, "file_name": "b.jpg", "height": 40, "width": 60, "caption": "two words"},
            {"id": 3, "file_name": "c.jpg", "height": 31, "width": 60, "caption": "a small picture here"},
        ],
        "annotations": [
            {"image_id": 1, "bbox": [0, 0, 10, 10], "area": 50, "tokens_positive": [[0, 5]], "sam_mask": rle},
            {
                "image_id": 1,
                "bbox": [0, 0, 10, 10],
                "area": 50,
                "tokens_positive": [[11, 16]],
                "sam_mask": rle,
                "ignore": True,
            },
            {"image_id": 1, "bbox": [70, 0, 10, 10], "area": 50, "tokens_positive": [[11, 16]], "sam_mask": rle},
            {"image_id": 1, "bbox": [0, 0, 10, 0.5], "area": 5, "tokens_positive": [[11, 16]], "sam_mask": rle},
            {"image_id": 1, "bbox": [5, 5, 10, 10], "area": 50, "tokens_positive": [[9, 16], [0, 1]], "sam_mask": rle},
        ],
    }
    path = tmp_path / "flickr.json"
    path.write_text(json.dumps(data))
    read = read_source(_spec("f", "flickr_gcg", path, tmp_path, crops="render"), tmp_path, seed=0, copy=0)
    (sample,) = read.samples
    assert sample.turns[0].answer == TAG.format("a man") + " on " + TAG.format("a horse")
    assert len(sample.groundings) == 2
    assert dict(read.skipped) == {"caption shorter than 3 words": 1, "image side under 32 px": 1}


def test_gcg_overlapping_spans_and_missing_crops_are_counted(tmp_path: Path) -> None:
    mask = {"size": [4, 4], "counts": "0"}
    records = [
        {
            "file_name": "a.jpg",
            "caption": "a red box",
            "groundings": {
                "a red box": {"token_positives": [0, 9], "rle_masks": [mask], "seg_img_path": "c0.png"},
                "red": {"token_positives": [2, 5], "rle_masks": [mask], "seg_img_path": "c1.png"},
            },
        },
        {
            "file_name": "b.jpg",
            "caption": "a box",
            "groundings": {"a box": {"token_positives": [0, 5], "rle_masks": [mask]}},
        },
        {"file_name": "c.jpg", "caption": "a box", "groundings": {"box": None}},
    ]
    path = tmp_path / "grandf.json"
    path.write_text(json.dumps(records))
    read = read_source(_spec("g", "grandf", path, tmp_path, crops="file"), tmp_path, seed=0, copy=0)
    assert not read.samples
    assert dict(read.skipped) == {"phrase spans overlap": 1, "missing crop path": 1, "no grounded phrase": 1}
    assert "b.jpg" not in read.examples["missing crop path"] and "record 1" in read.examples["missing crop path"]


def test_refcoco_draws_three_expressions_per_image(data_root: Path) -> None:
    def read(seed: int, copy: int, crops: str = "file"):
        spec = _spec(
            "refcoco",
            "refcoco",
            data_root / "ref_seg_high",
            data_root / "glamm_data/images/coco2014/train2014",
            dataset="refcoco",
            crops=crops,
        )
        return read_source(spec, Path("."), seed=seed, copy=copy)

    first = read(0, 0)
    assert len(first.samples) == len(SCENES)
    scene, sample = SCENES[0], first.samples[0]
    names = [shape.name for shape in scene.shapes]
    sentences = [name for name in names] + [f"the {name}" for name in names]
    assert len(sample.turns) == 3
    expressions = [turn.answer[len("[SEG]<image_id><image> <p> ") : -len(" </p> [SEG].")] for turn in sample.turns]
    assert len(set(expressions)) == 3 and set(expressions) <= set(sentences)  # without replacement
    assert sample.turns[0].question == f"<image>\nPlease segment {expressions[0]}."
    assert sample.turns[1].question == f"Please segment {expressions[1]}."
    for turn, expression in zip(sample.turns, expressions, strict=True):
        assert turn.answer == TAG.format(expression) + "."
    # each expression's mask and crop are its object's (annotation ids 10, 11 of image 1)
    for expression, grounding in zip(expressions, sample.groundings, strict=True):
        k = 0 if expression.endswith(names[0]) else 1
        assert Path(grounding.crop_path).name == f"ann{10 + k}.png"
    assert [s.turns for s in read(0, 0).samples] == [s.turns for s in first.samples]
    draws = {tuple(t.answer for s in read(seed, copy).samples for t in s.turns) for seed in (0, 1) for copy in (0, 1)}
    assert len(draws) > 1  # copies and seeds draw their own expressions
    assert all(g.crop_path is None for s in read(0, 0, crops="render").samples for g in s.groundings)
