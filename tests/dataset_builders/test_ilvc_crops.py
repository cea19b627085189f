"""`dataset_builders.ilvc_crops`: the rendered crops against crops computed here with NumPy (bounding box of the
mask, pixels outside the mask at floor(0.3 · v)), the annotation copies LIRA's training reads, the manifest,
determinism and missing inputs."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from dataset_builders.ilvc_crops import build_crops
from dataset_builders.ilvc_crops.__main__ import main

WIDTH, HEIGHT = 50, 40
TRIANGLE = [5.0, 5.0, 30.0, 8.0, 12.0, 33.0]
ELL = [20.0, 10.0, 44.0, 10.0, 44.0, 16.0, 28.0, 16.0, 28.0, 36.0, 20.0, 36.0]


def _pixels() -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    return np.stack([(x * 7 + y * 13) % 256, (x * y + 3 * x) % 256, (x * x + y * 5 + 11) % 256], -1).astype(np.uint8)


def _disk() -> np.ndarray:
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    return (((x - 33) ** 2 + (y - 22) ** 2) <= 64).astype(np.uint8)


def expected_crop(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rows, columns = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
    crop = pixels[top:bottom, left:right].astype(int)
    inside = mask[top:bottom, left:right, None] != 0
    return np.where(inside, crop, (3 * crop) // 10).astype(np.uint8)


def _polygon_mask(polygon: list[float]) -> np.ndarray:
    return coco_mask.decode(coco_mask.frPyObjects([polygon], HEIGHT, WIDTH)).any(axis=2).astype(np.uint8)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    images = data / "glamm_data/images"
    for folder in ("coco2014/train2014", "grandf/train"):
        (images / folder).mkdir(parents=True)
        Image.fromarray(_pixels()).save(images / folder / "pic.png")
    refer = data / "ref_seg/refcoco"
    refer.mkdir(parents=True)
    refs = [
        {"ref_id": 1, "ann_id": 1, "image_id": 7, "split": "train", "sentences": [{"sent_id": 1, "sent": "a"}]},
        {"ref_id": 2, "ann_id": 2, "image_id": 7, "split": "train", "sentences": [{"sent_id": 2, "sent": "b"}]},
        {"ref_id": 3, "ann_id": 3, "image_id": 7, "split": "val", "sentences": [{"sent_id": 3, "sent": "c"}]},
    ]
    (refer / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    annotations = [
        {"id": i, "image_id": 7, "category_id": 1, "segmentation": [polygon]}
        for i, polygon in ((1, TRIANGLE), (2, ELL), (3, TRIANGLE))
    ]
    images_json = [{"id": 7, "file_name": "pic.png", "width": WIDTH, "height": HEIGHT}]
    (refer / "instances.json").write_text(json.dumps({"images": images_json, "annotations": annotations}))
    rle = coco_mask.encode(np.asfortranarray(_disk()))
    disk = {"size": [HEIGHT, WIDTH], "counts": rle["counts"].decode()}
    grandf = [
        {
            "file_name": "pic.png",
            "caption": "a disk",
            "groundings": {"a disk": {"token_positives": [0, 6], "rle_masks": [disk]}},
        },
        {
            "file_name": "gone.png",
            "caption": "a disk",
            "groundings": {"a disk": {"token_positives": [0, 6], "rle_masks": [disk]}},
        },
    ]
    folder = data / "glamm_data/annotations"
    folder.mkdir(parents=True)
    (folder / "GranDf_HA_GCG_train.json").write_text(json.dumps(grandf))
    return data


def _all_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_crops_match_numpy_and_annotations_point_at_them(root: Path) -> None:
    out = root / "crops"
    manifest = build_crops(root, out, ("refcoco", "grandf"))
    assert manifest["counts"] == {
        "refcoco": {"rendered": 2},
        "grandf": {"rendered": 1, "missing or unreadable image": 1},
    }

    pixels = _pixels()
    expected = {
        out / "refcoco/ann1.png": expected_crop(pixels, _polygon_mask(TRIANGLE)),
        out / "refcoco/ann2.png": expected_crop(pixels, _polygon_mask(ELL)),
        out / "grandf/00000000.png": expected_crop(pixels, _disk()),
    }
    for path, crop in expected.items():
        assert np.array_equal(np.asarray(Image.open(path)), crop), path
    assert (expected_crop(pixels, _disk()) != pixels[14:31, 25:42]).any()  # the background really is darker

    instances = json.loads((root / "ref_seg_high/refcoco/instances.json").read_text())
    paths = {annotation["id"]: annotation.get("seg_img_path") for annotation in instances["annotations"]}
    assert paths == {1: str(out / "refcoco/ann1.png"), 2: str(out / "refcoco/ann2.png"), 3: None}  # 3 is val
    assert (root / "ref_seg_high/refcoco/refs(unc).p").read_bytes() == (
        root / "ref_seg/refcoco/refs(unc).p"
    ).read_bytes()
    grandf = json.loads((root / "glamm_data/annotations/GranDf_HA_GCG_train_highlight_bg.json").read_text())
    assert grandf[0]["groundings"]["a disk"]["seg_img_path"] == str(out / "grandf/00000000.png")
    assert "seg_img_path" not in grandf[1]["groundings"]["a disk"]

    by_crop = {entry["crop"]: entry for entry in manifest["crops"]}
    for path in expected:
        entry = by_crop[str(path)]
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert by_crop[str(out / "grandf/00000000.png")]["bbox"] == [25, 14, 42, 31]  # disk of radius 8 at (33, 22)
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_builds_are_deterministic(root: Path, tmp_path: Path) -> None:
    build_crops(root, root / "crops", ("refcoco", "grandf"))
    first = _all_files(root)
    build_crops(root, root / "crops", ("refcoco", "grandf"), workers=2)
    assert _all_files(root) == first


def test_command_line(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--data-root", str(root), "--out", str(root / "c"), "--sources", "grandf", "--format", "jpg"]) == 0
    printed = capsys.readouterr().out
    assert "grandf: missing or unreadable image: 1, rendered: 1" in printed
    assert (root / "c/grandf/00000000.jpg").is_file()
    assert main(["--data-root", str(root), "--sources", "nope"]) == 2
    assert main(["--data-root", str(root / "absent"), "--sources", "grandf"]) == 2
