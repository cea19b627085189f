"""A tiny training data root in LIRA's `data/` layout, one small file per training format, written by the tests.

Six pictures of coloured shapes on a grey background (`SCENES`); each shape is an object with a known mask. From them:

- `pretrained/stage1.json`, `finetune/sft.json`: LLaVA conversations (captions);
- `ref_seg/refcoco/refs(unc).p` + `instances.json` (polygon masks), train refs, two sentences each;
- `glamm_data/annotations/GranDf_HA_GCG_train.json` (RLE masks, `token_positives`),
  `OpenPsgGCG_train.json` (same format), `RefCOCOg_GCG_train.json` (polygons, `refs[].sentence`),
  `flickr_mergedGT_GCG_train.json` (COCO format, `tokens_positive`, `sam_mask`);
- images under `glamm_data/images/{coco2014/train2014,grandf/train,coco2017,flickr30k/Flickr30K}` and
  `finetune/`, `pretrained/`.

`write_crops` then renders the ILVC crops with `dataset_builders.ilvc_crops` (the `ref_seg_high/` and
`*_highlight_bg.json` copies).
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from models.lira.assets.tiny_tokenizer import FOLDER

TOKENIZER = FOLDER  # the tokenizer bundled with lira-tiny


@dataclass(frozen=True)
class Shape:
    name: str
    colour: tuple[int, int, int]
    box: tuple[int, int, int, int]  # left, top, right, bottom (exclusive)


@dataclass(frozen=True)
class Scene:
    size: tuple[int, int]  # width, height
    shapes: tuple[Shape, ...]

    def pixels(self) -> np.ndarray:
        width, height = self.size
        y, x = np.mgrid[0:height, 0:width]
        image = np.stack([(x * 3 + y) % 64 + 96, (x + y * 2) % 64 + 96, (x * y) % 64 + 96], -1).astype(np.uint8)
        for shape in self.shapes:
            image[self.mask(shape) != 0] = shape.colour
        return image

    def mask(self, shape: Shape) -> np.ndarray:
        width, height = self.size
        mask = np.zeros((height, width), dtype=np.uint8)
        left, top, right, bottom = shape.box
        mask[top:bottom, left:right] = 1
        return mask


RED, BLUE, GREEN, YELLOW = (200, 30, 30), (30, 40, 210), (30, 170, 60), (220, 200, 20)
SCENES = (
    Scene((96, 64), (Shape("red box", RED, (8, 8, 40, 40)), Shape("blue box", BLUE, (56, 20, 90, 60)))),
    Scene((64, 80), (Shape("green box", GREEN, (4, 30, 30, 70)), Shape("yellow box", YELLOW, (36, 4, 60, 40)))),
    Scene((80, 80), (Shape("blue box", BLUE, (10, 10, 34, 70)), Shape("red box", RED, (44, 30, 76, 62)))),
    Scene((72, 56), (Shape("yellow box", YELLOW, (6, 6, 30, 50)), Shape("green box", GREEN, (40, 12, 68, 44)))),
    Scene((88, 64), (Shape("red box", RED, (4, 4, 28, 28)), Shape("green box", GREEN, (50, 30, 84, 60)))),
    Scene((64, 64), (Shape("blue box", BLUE, (20, 20, 44, 44)), Shape("yellow box", YELLOW, (2, 46, 60, 62)))),
)


def polygon(box: tuple[int, int, int, int]) -> list[float]:
    """The box outline as a COCO polygon covering exactly its pixels."""
    left, top, right, bottom = box
    return [float(left), float(top), float(right), float(top), float(right), float(bottom), float(left), float(bottom)]


def rle(mask: np.ndarray) -> dict:
    encoded = coco_mask.encode(np.asfortranarray(mask))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


def caption(scene: Scene) -> tuple[str, list[tuple[int, int]]]:
    """'the red box and the blue box' with the character spans of each shape's phrase."""
    first, second = (f"the {shape.name}" for shape in scene.shapes)
    text = f"{first} and {second}"
    return text, [(0, len(first)), (len(first) + 5, len(text))]


def _save(folder: Path, name: str, scene: Scene) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene.pixels()).save(folder / name)


def write_data(root: Path) -> Path:
    """Write every annotation format and its images under `root`; returns `root`."""
    names = [f"COCO_train2014_{i + 1:012d}.jpg" for i in range(len(SCENES))]
    for folder in (
        "glamm_data/images/coco2014/train2014",
        "glamm_data/images/grandf/train",
        "glamm_data/images/coco2017",
        "glamm_data/images/flickr30k/Flickr30K",
        "finetune",
        "pretrained",
    ):
        for name, scene in zip(names, SCENES, strict=True):
            _save(root / folder, name.replace(".jpg", ".png"), scene)
    files = [name.replace(".jpg", ".png") for name in names]

    llava = [
        {
            "id": str(i),
            "image": file,
            "conversations": [
                {"from": "human", "value": "<image>\nDescribe the image."},
                {"from": "gpt", "value": caption(scene)[0] + "."},
            ],
        }
        for i, (file, scene) in enumerate(zip(files, SCENES, strict=True))
    ]
    for folder, name in (("pretrained", "stage1.json"), ("finetune", "sft.json")):
        (root / folder / name).write_text(json.dumps(llava), encoding="utf-8")

    refs, images, annotations = [], [], []
    for i, (file, scene) in enumerate(zip(files, SCENES, strict=True)):
        image_id = i + 1
        width, height = scene.size
        images.append({"id": image_id, "file_name": file, "width": width, "height": height})
        for k, shape in enumerate(scene.shapes):
            ann_id = image_id * 10 + k
            left, top, right, bottom = shape.box
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": [polygon(shape.box)],
                    "bbox": [left, top, right - left, bottom - top],
                    "area": float((right - left) * (bottom - top)),
                    "iscrowd": 0,
                }
            )
            sentences = [shape.name, f"the {shape.name}"]
            refs.append(
                {
                    "ref_id": ann_id,
                    "ann_id": ann_id,
                    "image_id": image_id,
                    "category_id": 1,
                    "split": "train",
                    "sent_ids": [ann_id * 10, ann_id * 10 + 1],
                    "sentences": [
                        {"sent_id": ann_id * 10 + n, "sent": s, "raw": s.capitalize(), "tokens": s.split()}
                        for n, s in enumerate(sentences)
                    ],
                    "file_name": file,
                }
            )
    folder = root / "ref_seg" / "refcoco"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "refs(unc).p").open("wb") as stream:
        pickle.dump(refs, stream)
    instances = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "box"}]}
    (folder / "instances.json").write_text(json.dumps(instances), encoding="utf-8")

    grandf, refcocog, flickr_images, flickr_annotations = [], [], [], []
    for i, (file, scene) in enumerate(zip(files, SCENES, strict=True)):
        text, spans = caption(scene)
        groundings = {
            text[s:e]: {"token_positives": [s, e], "rle_masks": [rle(scene.mask(shape))]}
            for shape, (s, e) in zip(scene.shapes, spans, strict=True)
        }
        grandf.append({"file_name": file, "caption": text, "groundings": groundings})
        refcocog_refs = [
            {"sentence": f"the {shape.name}", "segmentation": [polygon(shape.box)], "bbox": list(shape.box)}
            for shape in scene.shapes
        ]
        refcocog.append({str(i): {"img_file_name": file, "caption": text.capitalize(), "refs": refcocog_refs}})
        width, height = scene.size
        flickr_images.append({"id": i + 1, "file_name": file, "height": height, "width": width, "caption": text})
        for k, (shape, span) in enumerate(zip(scene.shapes, spans, strict=True)):
            left, top, right, bottom = shape.box
            flickr_annotations.append(
                {
                    "id": (i + 1) * 10 + k,
                    "image_id": i + 1,
                    "bbox": [left, top, right - left, bottom - top],
                    "area": float((right - left) * (bottom - top)),
                    "tokens_positive": [list(span)],
                    "sam_mask": rle(scene.mask(shape)),
                }
            )
    annotations_folder = root / "glamm_data" / "annotations"
    annotations_folder.mkdir(parents=True, exist_ok=True)
    for name, data in (
        ("GranDf_HA_GCG_train.json", grandf),
        ("OpenPsgGCG_train.json", grandf),
        ("RefCOCOg_GCG_train.json", refcocog),
        ("flickr_mergedGT_GCG_train.json", {"images": flickr_images, "annotations": flickr_annotations}),
    ):
        (annotations_folder / name).write_text(json.dumps(data), encoding="utf-8")
    return root


def write_crops(root: Path) -> dict:
    """Render the ILVC crops of every source into `root/ilvc_crops` (and the annotation copies)."""
    from dataset_builders.ilvc_crops import build_crops

    return build_crops(root, root / "ilvc_crops", ("refcoco", "grandf", "openpsg", "refcocog_gcg", "flickr_gcg"))


def stage2_sources(root: Path) -> list[dict]:
    """The stage-2 mix of `configs/stage2.yaml` on the tiny data (one listing of each format)."""
    images = str(root / "glamm_data/images")
    annotations = root / "glamm_data/annotations"
    return [
        {
            "name": "sft",
            "format": "llava",
            "annotations": str(root / "finetune/sft.json"),
            "images": str(root / "finetune"),
        },
        {
            "name": "refcoco",
            "format": "refcoco",
            "dataset": "refcoco",
            "annotations": str(root / "ref_seg_high"),
            "images": f"{images}/coco2014/train2014",
            "crops": "file",
        },
        {
            "name": "refcocog_gcg",
            "format": "refcocog_gcg",
            "annotations": str(annotations / "RefCOCOg_GCG_train_highlight_bg.json"),
            "images": f"{images}/coco2014/train2014",
            "crops": "file",
        },
        {
            "name": "flickr_gcg",
            "format": "flickr_gcg",
            "annotations": str(annotations / "flickr_mergedGT_GCG_train_highlight_bg.json"),
            "images": f"{images}/flickr30k/Flickr30K",
            "crops": "file",
        },
        {
            "name": "grandf",
            "format": "grandf",
            "annotations": str(annotations / "GranDf_HA_GCG_train_highlight_bg.json"),
            "images": f"{images}/grandf/train",
            "crops": "file",
        },
        {
            "name": "openpsg",
            "format": "openpsg",
            "annotations": str(annotations / "OpenPsgGCG_train_highlight_bg.json"),
            "images": f"{images}/coco2017",
            "crops": "file",
        },
    ]


def tiny_overrides(root: Path, output: Path, stage: str) -> dict:
    """Config values that turn `configs/stage{1,2}.yaml` into a quick CPU run of `lira-tiny` on the tiny data."""
    sources = (
        stage2_sources(root)
        if stage == "stage2"
        else [
            {
                "name": "stage1",
                "format": "llava",
                "annotations": str(root / "pretrained/stage1.json"),
                "images": str(root / "pretrained"),
            }
        ]
    )
    return {
        "model": {
            "preset": "lira-tiny",
            "random_init_seed": 3,
            "tokenizer": str(TOKENIZER),
            "internvl": None,
            "omg_seg": None,
            "class_embeddings": None,
            "init_pth": None,
            "lora": {"rank": 8, "alpha": 16, "dropout": 0.05},
        },
        "data": {"num_workers": 0, "sources": sources, "max_length": 1024},
        "output_dir": str(output),
        "device": "cpu",
        "activation_checkpointing": False,
        "log_every_steps": 1,
    }


def write_config(path: Path, base: str, values: dict) -> Path:
    """A YAML config inheriting `configs/<base>.yaml` with `values` merged over it."""
    import yaml

    path.write_text(yaml.safe_dump({"base": base, **values}, sort_keys=False), encoding="utf-8")
    return path


__all__ = ["SCENES", "TOKENIZER", "stage2_sources", "tiny_overrides", "write_config", "write_crops", "write_data"]
