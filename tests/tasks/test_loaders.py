"""GCG, POPE, CHAIR and AttrEval readers on small hand-written files in the original formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness import masks
from harness.errors import DataError
from tasks.loaders.attreval import load_attreval
from tasks.loaders.chair import choose_images, load_coco, read_image_ids
from tasks.loaders.common import resolve_image
from tasks.loaders.gcg import load_gcg
from tasks.loaders.pope import data_version, load_pope


def box(height: int, width: int, x0: int, y0: int, x1: int, y1: int) -> dict:
    pixels = np.zeros((height, width), dtype=np.uint8)
    pixels[y0:y1, x0:x1] = 1
    return dict(masks.encode(pixels))


# ---------------------------------------------------------------------------
# GCG
# ---------------------------------------------------------------------------


def write_gcg(folder: Path) -> tuple[Path, Path]:
    images = [
        {"id": "sa_2", "file_name": "sa_2.jpg", "height": 6, "width": 8},
        {"id": "sa_10", "file_name": "sa_10.jpg", "height": 6, "width": 8},
    ]
    captions = {
        "images": images,
        "annotations": [
            {"id": 1, "image_id": "sa_2", "caption": "A dog and a ball.", "labels": ["A dog", "a ball"]},
            {"id": 2, "image_id": "sa_10", "caption": "A cat.", "labels": ["A cat"]},
            {"id": 3, "image_id": "sa_2", "caption": "ignored second caption", "labels": []},
        ],
    }
    mask_gt = {
        "images": images,
        "annotations": [
            {"id": 1, "image_id": "sa_2", "category_id": 1, "segmentation": box(6, 8, 0, 0, 2, 2), "area": 4},
            {"id": 2, "image_id": "sa_10", "category_id": 1, "segmentation": [[0, 0, 3, 0, 3, 3, 0, 3]], "area": 9},
            {"id": 3, "image_id": "sa_2", "category_id": 1, "segmentation": box(6, 8, 4, 4, 8, 6), "area": 8},
        ],
        "categories": [{"id": 1, "name": "object"}],
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "val_gcg_coco_caption_gt.json").write_text(json.dumps(captions))
    (folder / "val_gcg_coco_mask_gt.json").write_text(json.dumps(mask_gt))
    return folder / "val_gcg_coco_caption_gt.json", folder / "val_gcg_coco_mask_gt.json"


def test_gcg_images_sorted_by_id_with_masks_in_file_order(tmp_path):
    images = load_gcg(*write_gcg(tmp_path))
    assert [image.image_id for image in images] == ["sa_10", "sa_2"]  # string order, as COCOeval sorts ids
    dog = images[1]
    assert dog.caption == "A dog and a ball." and dog.labels == ("A dog", "a ball")  # the first caption counts
    assert [masks.area(m) for m in dog.masks] == [4, 8] and dog.size == (6, 8)
    assert masks.area(images[0].masks[0]) == 9  # polygon rasterised to 3x3 pixels


def test_gcg_problems_are_named(tmp_path):
    captions, mask_gt = write_gcg(tmp_path)
    data = json.loads(captions.read_text())
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != "sa_10"]
    captions.write_text(json.dumps(data))
    with pytest.raises(DataError, match="has no caption annotation for image 'sa_10'"):
        load_gcg(captions, mask_gt)
    data["annotations"].append({"id": 9, "image_id": "sa_10", "caption": "x", "labels": "A cat"})
    captions.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"annotations\[2\]: field 'labels' must be a list, got str"):
        load_gcg(captions, mask_gt)
    bad = json.loads(mask_gt.read_text())
    bad["annotations"][0]["segmentation"] = {"size": [6, 8], "counts": "0"}
    mask_gt.write_text(json.dumps(bad))
    write_gcg_text = captions.read_text().replace('"labels": "A cat"', '"labels": ["A cat"]')
    captions.write_text(write_gcg_text)
    with pytest.raises(DataError, match=r"annotations\[0\] segmentation RLE counts cover"):
        load_gcg(captions, mask_gt)


# ---------------------------------------------------------------------------
# POPE
# ---------------------------------------------------------------------------

SUFFIX = "\nAnswer the question using a single word or phrase."


def test_pope_reads_json_lines_and_pretty_json_arrays_alike(tmp_path):
    image = "COCO_val2014_000000310196.jpg"
    rows = [
        {"question_id": 1, "image": image, "text": "Is there a snowboard in the image?", "label": "yes"},
        {"question_id": 2, "image": image, "text": "Is there an apple in the imange?" + SUFFIX, "label": "No"},
    ]
    lines, array = tmp_path / "coco_pope_random.json", tmp_path / "gqa_pope_seem_random.json"
    lines.write_text("".join(json.dumps(row) + "\n" for row in rows))
    array.write_text(json.dumps(rows, indent=4))
    for path in (lines, array):
        questions = load_pope(path)
        assert [q.question_id for q in questions] == ["1", "2"]
        assert [q.label for q in questions] == ["yes", "no"]
        assert questions[1].text == "Is there an apple in the imange?"  # LLaVA's suffix is not doubled


@pytest.mark.parametrize(
    ("source", "setting", "count", "typos", "version"),
    [
        ("coco", "random", 2910, 144, "e3e3926"),
        ("coco", "random", 3000, 0, "HEAD"),
        ("coco", "adversarial", 3000, 58, "e3e3926"),
        ("coco", "popular", 3000, 0, "HEAD"),
        ("aokvqa", "random", 3000, 0, "seem"),
        ("coco", "random", 60, 0, "nonstandard"),
    ],
)
def test_pope_data_version(tmp_path, source, setting, count, typos, version):
    from tasks.loaders.pope import PopeQuestion

    typo, plain = "Is there an apple in the imange?", "Is there a cat?"
    questions = [
        PopeQuestion(str(i), "x.jpg", typo if i < typos else plain, "yes" if i % 2 else "no") for i in range(count)
    ]
    found = data_version(source, setting, questions)
    assert found["version"] == version and found["questions"] == count and found["imange_typos"] == typos
    assert found["yes"] == count // 2 and found["no"] == count - count // 2


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            '{"question_id": 1, "image": "a.jpg", "text": "q", "label": "maybe"}',
            "line 1: field 'label' must be 'yes' or 'no'",
        ),
        ('{"question_id": 1, "image": "a.jpg", "text": "q"}', "line 1: missing field 'label'"),
        (
            '{"question_id": 1.5, "image": "a.jpg", "text": "q", "label": "no"}',
            "field 'question_id' must be an integer or a string",
        ),
        ('{"question_id": 1, "image": "a.jpg", "text": "q", "label": "no"', "line 1 is not valid JSON"),
        ('[{"question_id": 1, "image": "a.jpg",', "is not valid JSON (line 1"),
        ("", "holds no question"),
    ],
)
def test_pope_problems_are_named(tmp_path, text, fragment):
    path = tmp_path / "coco_pope_random.json"
    path.write_text(text)
    with pytest.raises(DataError) as caught:
        load_pope(path)
    assert fragment in str(caught.value) and str(path) in str(caught.value)


# ---------------------------------------------------------------------------
# CHAIR
# ---------------------------------------------------------------------------


def write_coco(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    categories = [{"id": 1, "name": "person"}, {"id": 62, "name": "chair"}, {"id": 17, "name": "cat"}]
    val_images = [{"id": i, "file_name": f"COCO_val2014_{i:012d}.jpg", "height": 4, "width": 4} for i in (5, 9, 42)]
    data = {
        "instances_val2014.json": {
            "images": val_images,
            "annotations": [{"id": 1, "image_id": 9, "category_id": 62}, {"id": 2, "image_id": 9, "category_id": 1}],
            "categories": categories,
        },
        "instances_train2014.json": {
            "images": [{"id": 7, "file_name": "COCO_train2014_000000000007.jpg", "height": 4, "width": 4}],
            "annotations": [{"id": 3, "image_id": 7, "category_id": 17}],
            "categories": categories,
        },
        "captions_val2014.json": {"annotations": [{"id": 1, "image_id": 9, "caption": "A man on a chair."}]},
        "captions_train2014.json": {"annotations": [{"id": 2, "image_id": 7, "caption": "A cat."}]},
    }
    for name, content in data.items():
        (folder / name).write_text(json.dumps(content))


def test_coco_annotations_for_chair(tmp_path):
    write_coco(tmp_path)
    coco = load_coco(tmp_path, ("train", "val"))
    assert sorted(coco.images) == [5, 9, 42]  # val2014 images only
    assert coco.categories[9] == {"chair", "person"} and coco.categories[7] == {"cat"}
    assert coco.captions[9] == ["A man on a chair."] and coco.captions[7] == ["A cat."]
    assert 7 not in load_coco(tmp_path, ("val",)).categories


def test_chair_image_draw_is_seeded_and_list_files_are_checked(tmp_path):
    write_coco(tmp_path)
    pool = load_coco(tmp_path, ("val",)).images
    first = choose_images(pool, 2, seed=3, listed=None, source="")
    assert first == choose_images(pool, 2, seed=3, listed=None, source="") and len(first) == 2
    assert first == sorted(first) and set(first) <= {5, 9, 42}
    assert {tuple(choose_images(pool, 2, seed=s, listed=None, source="")) for s in range(20)} != {tuple(first)}
    assert choose_images(pool, 500, seed=0, listed=None, source="") == [5, 9, 42]
    assert choose_images(pool, 500, seed=0, listed=[42, 5, 42], source="") == [5, 42]
    with pytest.raises(DataError, match=r"names ids \[7\] that instances_val2014.json lacks"):
        choose_images(pool, 500, seed=0, listed=[7], source="ids.txt")


def test_image_id_lists_in_the_formats_people_have(tmp_path):
    opera = tmp_path / "opera.jsonl"  # OPERA log/chair_eval_results/*/*.jsonl
    opera.write_text('{"image_id": 9, "caption": "A man."}\n{"image_id": 42, "caption": "A dog."}\n')
    lira = tmp_path / "chair_test.jsonl"  # LIRA data/chair/chair_test.jsonl
    line = {"image": "data/coco/val2014/COCO_val2014_000000000005.jpg", "question": "Q", "question_id": 5, "answer": ""}
    lira.write_text(json.dumps(line) + "\n")
    listing = tmp_path / "ids.json"
    listing.write_text("[9, 5]")
    text = tmp_path / "ids.txt"
    text.write_text("COCO_val2014_000000000042.jpg\n9\n\n")
    assert read_image_ids(opera) == [9, 42]
    assert read_image_ids(lira) == [5]
    assert read_image_ids(listing) == [9, 5]
    assert read_image_ids(text) == [42, 9]
    text.write_text("nine\n")
    with pytest.raises(DataError, match="line 1: expected an image id or COCO file name, got 'nine'"):
        read_image_ids(text)


def test_chair_annotation_problems_are_named(tmp_path):
    write_coco(tmp_path)
    path = tmp_path / "instances_val2014.json"
    data = json.loads(path.read_text())
    data["annotations"][0]["category_id"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"annotations\[0\]: category_id 99 is not in the file's categories"):
        load_coco(tmp_path, ("val",))
    captions = tmp_path / "captions_val2014.json"
    captions.write_text('{"annotations": [{"id": 1, "image_id": 9}]}')
    path.write_text(json.dumps({**data, "annotations": []}))
    with pytest.raises(DataError, match=r"captions_val2014.json annotations\[0\]: missing field 'caption'"):
        load_coco(tmp_path, ("val",))


# ---------------------------------------------------------------------------
# AttrEval
# ---------------------------------------------------------------------------


def test_attreval_keeps_file_order_and_optional_attribute(tmp_path):
    path = tmp_path / "refcoco_attri.jsonl"
    rows = [
        {"image": "data/x.jpg", "question": "What color is the bus?", "question_id": 8, "answer": "Red"},
        {
            "image": "data/x.jpg",
            "question": "Is the bus blue?",
            "question_id": "3",
            "answer": "no",
            "attribute": "color",
        },
        {"image": "/abs/y.jpg", "question": "Which side?", "question_id": 1, "answer": "left"},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    questions = load_attreval(path)
    assert [q.question_id for q in questions] == ["8", "3", "1"]
    assert [q.attribute for q in questions] == [None, "color", None]
    assert questions[0].answer == "Red"  # matching is the metric's business


def test_attreval_problems_are_named(tmp_path):
    path = tmp_path / "refcoco_attri.jsonl"
    line = json.dumps({"image": "a.jpg", "question": "q", "question_id": 1, "answer": "a"})
    path.write_text(f"{line}\n{line}\n")
    with pytest.raises(DataError, match="line 2: question_id '1' already appeared on line 1"):
        load_attreval(path)
    path.write_text(json.dumps({"image": "a.jpg", "question": "q", "question_id": 1, "answer": ["a", "b"]}) + "\n")
    with pytest.raises(DataError, match="line 1: field 'answer' must be a string, got list"):
        load_attreval(path)


def test_relative_image_paths_are_looked_up_in_order(tmp_path):
    root = tmp_path / "LIRA" / "data"
    (root / "coco").mkdir(parents=True)
    (root / "coco" / "a.jpg").write_bytes(b"x")
    assert resolve_image("data/coco/a.jpg", [root, root.parent]) == str(root.parent / "data/coco/a.jpg")
    assert resolve_image("./coco/a.jpg", [root, root.parent]) == str(root / "coco/a.jpg")
    assert resolve_image("coco/missing.jpg", [root, root.parent]) == str(root / "coco/missing.jpg")
    assert resolve_image("/abs/b.jpg", [root]) == "/abs/b.jpg"
