"""The mini benchmark: sizes the issue asks for, real formats, determinism, build stamp and default root."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dataset_builders import mini
from dataset_builders.writer import Benchmark, GcgEntry, ImageEntry, ObjectEntry, check
from tasks import ensure_default_data_root
from tasks.loaders.attreval import load_attreval
from tasks.loaders.common import load_plain_pickle
from tasks.loaders.gcg import load_gcg
from tasks.loaders.pope import load_pope
from tasks.loaders.refer import referring_units

ANNOTATIONS = Path(mini.__file__).parent / "annotations"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mini.build(tmp_path_factory.mktemp("mini") / "data")


def digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_sizes_asked_for_by_the_issue(built):
    photos = sorted((built / "glamm_data/images/coco2014/train2014").glob("*.jpg"))
    assert len(photos) >= 12
    splits = {"refcoco": ("val", "testA", "testB"), "refcoco+": ("val", "testA", "testB"), "refcocog": ("val", "test")}
    sentences = {}
    for dataset, names in splits.items():
        partition = "umd" if dataset == "refcocog" else "unc"
        folder = built / "ref_seg" / dataset
        for split in names:
            units = referring_units(folder / f"refs({partition}).p", folder / "instances.json", split)
            sentences[f"{dataset}_{split}"] = len(units)
    assert sum(sentences.values()) >= 40 and min(sentences.values()) >= 1 and len(sentences) == 8
    gcg = built / "glamm_data/annotations/gcg_val_test"
    gcg_images = sum(
        len(load_gcg(gcg / f"{s}_gcg_coco_caption_gt.json", gcg / f"{s}_gcg_coco_mask_gt.json"))
        for s in ("val", "test")
    )
    assert gcg_images >= 8
    for source, pattern in (
        ("coco", "coco_pope_{}.json"),
        ("aokvqa", "aokvqa_pope_seem_{}.json"),
        ("gqa", "gqa_pope_seem_{}.json"),
    ):
        for setting in ("random", "popular", "adversarial"):
            labels = [q.label for q in load_pope(built / "pope" / source / pattern.format(setting))]
            assert len(labels) >= 60 and labels.count("yes") == labels.count("no")
    questions = load_attreval(built / "refcoco_attri/refcoco_attri.jsonl")
    assert len(questions) >= 40 and len(questions) % 2 == 0
    chair_images = json.loads((built / "chair/annotations/instances_val2014.json").read_text())["images"]
    assert len(chair_images) == len(photos) == len(list((built / "coco/val2014").glob("*.jpg")))


def test_files_are_in_the_original_formats(built):
    refs = load_plain_pickle(built / "ref_seg/refcoco/refs(unc).p", "refs pickle")
    first = refs[0]
    assert set(first) >= {"ref_id", "ann_id", "image_id", "split", "sent_ids", "sentences", "category_id", "file_name"}
    assert set(first["sentences"][0]) == {"sent_id", "sent", "raw", "tokens"}
    assert first["sentences"][1] == {
        "tokens": ["cup", "of", "coffee"],
        "raw": "Cup of coffee",
        "sent_id": 2,
        "sent": "cup of coffee",
    }
    # POPE COCO files are JSON Lines under .json; the SEEM variants are pretty-printed arrays
    assert (built / "pope/coco/coco_pope_random.json").read_text().startswith('{"question_id": 1,')
    assert (built / "pope/gqa/gqa_pope_seem_random.json").read_text().startswith("[\n")
    # LIRA's convert_chair.py reads instances_val2014.json by its first line: single-line JSON
    assert len((built / "chair/annotations/instances_val2014.json").read_text().splitlines()) == 1
    captions = json.loads((built / "glamm_data/annotations/gcg_val_test/val_gcg_coco_caption_gt.json").read_text())
    assert all(
        isinstance(image["id"], str) and image["file_name"] == f"{image['id']}.jpg" for image in captions["images"]
    )


def test_images_are_the_shipped_photographs(built):
    instances = json.loads((built / "ref_seg/refcoco/instances.json").read_text())
    for record in instances["images"]:
        with Image.open(built / "glamm_data/images/coco2014/train2014" / record["file_name"]) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert (image.height, image.width) == (record["height"], record["width"])
    import skimage.data

    astronaut = skimage.data.astronaut()
    with Image.open(built / "coco/val2014/COCO_val2014_000000910001.jpg") as image:
        assert image.size == (astronaut.shape[1], astronaut.shape[0])


def test_build_is_deterministic_and_stamped(built, tmp_path):
    again = mini.build(tmp_path / "again")
    assert digests(built) == digests(again)
    assert mini.is_current(built) is True
    stamp = json.loads((built / "BUILD.json").read_text())
    assert stamp["builder"] == "dataset_builders.mini" and len(stamp["sources_sha256"]) == 64


def test_stale_builds_are_rebuilt_and_foreign_folders_left_alone(tmp_path, capsys):
    root = ensure_default_data_root(tmp_path / "data" / "mini")
    assert mini.is_current(root) is True and "building the bundled mini benchmark" in capsys.readouterr().err
    (root / "BUILD.json").write_text(json.dumps({"builder": "dataset_builders.mini", "version": 0}))
    (root / "pope/coco/coco_pope_random.json").write_text("stale")
    assert mini.is_current(root) is False
    ensure_default_data_root(root)
    assert mini.is_current(root) is True
    assert (root / "pope/coco/coco_pope_random.json").read_text().startswith('{"question_id": 1')
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("my own data")
    assert mini.is_current(foreign) is None
    assert ensure_default_data_root(foreign) == foreign and (foreign / "notes.txt").exists()
    with pytest.raises(FileExistsError, match="was not made by this builder"):
        mini.build(foreign)
    shutil.rmtree(root)


def test_annotation_files_are_checked_before_writing():
    image = ImageEntry("a", 10, 10, lambda: None, 1, 2, "sa_1")  # type: ignore[arg-type,return-value]
    inside = ObjectEntry("a/x", "a", "cat", [[0, 0, 10, 0, 10, 10]])
    check(Benchmark([image], [inside]))
    with pytest.raises(ValueError, match="leaves the 10x10 image"):
        check(Benchmark([image], [ObjectEntry("a/y", "a", "cat", [[0, 0, 11, 0, 5, 5]])]))
    with pytest.raises(ValueError, match="'sofa' is not a COCO category"):
        check(Benchmark([image], [ObjectEntry("a/z", "a", "sofa", [[0, 0, 5, 0, 5, 5]])]))
    with pytest.raises(ValueError, match="phrase 'a dog' is not in the caption in order"):
        check(Benchmark([image], [inside], gcg=[GcgEntry("val", "a", "A cat.", [("a dog", ["a/x"])])]))


def test_committed_annotations_are_hand_written_json():
    names = sorted(path.name for path in ANNOTATIONS.glob("*.json"))
    assert names == [
        "attreval.json",
        "captions.json",
        "gcg.json",
        "images.json",
        "objects.json",
        "pope.json",
        "refs.json",
    ]
    objects = json.loads((ANNOTATIONS / "objects.json").read_text())["objects"]
    assert len(objects) >= 30 and all(value["polygons"] for value in objects.values())


def test_concurrent_callers_build_the_default_root_once(tmp_path):
    repo = Path(mini.__file__).resolve().parents[2]
    code = "import sys; from pathlib import Path; from tasks import ensure_default_data_root as e; e(Path(sys.argv[1]))"
    env = dict(os.environ, PYTHONPATH=str(repo))
    target = tmp_path / "data" / "mini"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, str(target)], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    messages = [process.communicate(timeout=120)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], messages
    assert sum("building the bundled mini benchmark" in message for message in messages) == 1
    assert mini.is_current(target) is True
