"""Bad training input is skipped and counted by reason, never a crash (issue 9): a sample with more `[SEG]` than
masks, a missing image, an over-long conversation, malformed records when the data are read; an unreadable image and
a mask that does not fit its image when a sample is loaded. Also mask decoding and collation."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools import mask as coco_mask
from tiny_data import TOKENIZER, tiny_overrides, write_config

from harness.errors import UserError
from models.lira.model import IGNORE_INDEX
from models.lira.tokenizer import load_lira_tokenizer
from models.lira.training.config import load_config
from models.lira.training.dataset import (
    SkippedExample,
    TrainingDataset,
    TrainingExample,
    collate,
    decode_segmentation,
)
from models.lira.training.modeling import lira_config_for
from models.lira.training.trainer import run_training


def _conversation(image: str, answer: str) -> dict:
    return {
        "image": image,
        "conversations": [{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": answer}],
    }


@pytest.fixture
def bad_root(data_root: Path, tmp_path: Path) -> Path:
    root = tmp_path / "data"
    shutil.copytree(data_root / "finetune", root / "finetune")
    shutil.copytree(data_root / "glamm_data/images/grandf", root / "grandf")
    good = "COCO_train2014_000000000001.png"
    (root / "finetune" / "broken.png").write_bytes(b"not a picture")
    records = [
        _conversation(good, "the red box."),
        _conversation(good, "the [SEG] red box."),  # [SEG] without a mask
        _conversation("missing.png", "the red box."),
        _conversation(good, "the red box " * 400),  # over max_length
        _conversation("broken.png", "the red box."),  # fails when loaded
        {"image": good, "conversations": "not a list"},
        {"image": good, "conversations": [{"from": "system", "value": "x"}]},
        _conversation(good, "two boxes <image> here"),  # a crop placeholder without a grounding
    ]
    (root / "finetune" / "sft.json").write_text(json.dumps(records))
    grandf = json.loads((data_root / "glamm_data/annotations/GranDf_HA_GCG_train.json").read_text())
    wrong = np.zeros((5, 5), dtype=np.uint8)
    encoded = coco_mask.encode(np.asfortranarray(wrong))
    first = next(iter(grandf[1]["groundings"].values()))
    first["rle_masks"] = [{"size": [5, 5], "counts": encoded["counts"].decode()}]  # not the image's size
    (root / "grandf.json").write_text(json.dumps(grandf))
    return root


def _config(root: Path, tmp_path: Path, **values: object):
    overrides = tiny_overrides(root, tmp_path / "run", "stage2")
    overrides["data"]["sources"] = [
        {
            "name": "sft",
            "format": "llava",
            "annotations": str(root / "finetune/sft.json"),
            "images": str(root / "finetune"),
        },
        {
            "name": "grandf",
            "format": "grandf",
            "annotations": str(root / "grandf.json"),
            "images": str(root / "grandf/train"),
            "crops": "render",
        },
    ]
    overrides["data"]["max_length"] = 400
    return load_config(str(write_config(tmp_path / "bad.yaml", "stage2", overrides | values)))


def test_bad_samples_are_left_out_and_counted(bad_root: Path, tmp_path: Path) -> None:
    config = _config(bad_root, tmp_path)
    tokenizer = load_lira_tokenizer(TOKENIZER, expected_ids=None)
    dataset = TrainingDataset(config, tokenizer, lira_config_for(config))
    assert dict(dataset.skipped) == {
        "sft: [SEG] tokens do not match masks": 1,
        "sft: missing image": 1,
        "sft: over-long conversation": 1,
        "sft: malformed annotation record": 2,
        "sft: crop placeholders do not match masks": 1,
    }
    assert "1 [SEG] tokens for 0 masks (expected 0)" in dataset.skip_examples["sft: [SEG] tokens do not match masks"]
    assert "missing.png does not exist" in dataset.skip_examples["sft: missing image"]
    assert "> max_length 400" in dataset.skip_examples["sft: over-long conversation"]
    assert dict(dataset.per_source) == {"sft": 2, "grandf": 6}
    loaded = [dataset[index] for index in range(len(dataset))]
    skipped = [item for item in loaded if isinstance(item, SkippedExample)]
    assert sorted(item.reason for item in skipped) == ["grandf: bad mask", "sft: unreadable image"]
    assert "RLE size [5, 5] differs from the image's [80, 64]" in next(i.detail for i in skipped if "mask" in i.reason)


def test_training_goes_on_past_bad_samples(bad_root: Path, tmp_path: Path) -> None:
    config = _config(bad_root, tmp_path, batch={"per_device": 1, "accumulation": 2})
    result = run_training(config)
    assert result.steps == result.total_steps == 4 and result.export is not None
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "finished"
    assert run["load_skipped"] == {"sft: unreadable image": 1, "grandf: bad mask": 1}
    assert run["data"]["skipped"]["sft: over-long conversation"] == 1
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert sum(row["skipped"] for row in rows) == 2 and sum(row["samples"] for row in rows) == 6
    page = (tmp_path / "run" / "report.html").read_text()
    assert "sft: unreadable image (when loaded)" in page and "sft: [SEG] tokens do not match masks" in page


def test_decode_segmentation_joins_parts() -> None:
    first, second = np.zeros((6, 8), dtype=np.uint8), np.zeros((6, 8), dtype=np.uint8)
    first[1:4, 1:5], second[2:6, 3:8] = 1, 1
    rles = []
    for mask in (first, second):
        encoded = coco_mask.encode(np.asfortranarray(mask))
        rles.append({"size": [6, 8], "counts": encoded["counts"].decode()})
    joined = decode_segmentation(rles, 6, 8)
    assert joined.dtype == np.uint8 and np.array_equal(joined, first | second)  # overlaps are 1, not 2
    assert np.array_equal(decode_segmentation(rles[0], 6, 8), first)
    uncompressed = {"size": [6, 8], "counts": [7, 3, 3, 3, 3, 3, 3, 3, 20]}  # column-major runs, zeros first
    expected = np.zeros((6, 8), dtype=np.uint8)
    expected[1:4, 1:5] = 1
    assert np.array_equal(decode_segmentation(uncompressed, 6, 8), expected)
    assert not decode_segmentation([], 6, 8).any()
    with pytest.raises(ValueError, match="differs from the image"):
        decode_segmentation(rles[0], 8, 6)
    with pytest.raises(ValueError, match="at least three"):
        decode_segmentation([[1.0, 2.0, 3.0, 4.0]], 6, 8)


def test_collate_pads_right_and_keeps_per_row_images() -> None:
    def example(index: int, length: int, masks: int) -> TrainingExample:
        return TrainingExample(
            index=index,
            input_ids=torch.arange(1, length + 1),
            labels=torch.arange(1, length + 1),
            seg_pixel_values=torch.full((3, 4, 4), float(index)),
            internvl_pixel_values=torch.zeros(index + 1, 3, 2, 2),
            local_crops=torch.zeros(masks, 3, 2, 2),
            masks=torch.ones(masks, 5, 7, dtype=torch.uint8),
        )

    batch = collate([example(0, 3, 0), SkippedExample(9, "x: bad", "d"), example(1, 5, 2)], pad_token_id=2)
    assert batch.indices == [0, 1] and [s.index for s in batch.skipped] == [9]
    assert batch.input_ids.tolist() == [[1, 2, 3, 2, 2], [1, 2, 3, 4, 5]]
    assert batch.labels.tolist() == [[1, 2, 3, IGNORE_INDEX, IGNORE_INDEX], [1, 2, 3, 4, 5]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert batch.text_tokens == 8 and batch.seg_pixel_values[:, 0, 0, 0].tolist() == [0.0, 1.0]
    assert [t.shape[0] for t in batch.internvl_pixel_values] == [1, 2]
    assert [c.shape[0] for c in batch.local_crop_pixel_values] == [0, 2]
    assert [m.shape[0] for m in batch.gt_masks] == [0, 2]
    empty = collate([SkippedExample(3, "x: bad", "d")])
    assert empty.empty and len(empty.skipped) == 1


def test_truncation_keeps_only_whole_grounded_phrases(data_root: Path, tmp_path: Path) -> None:
    """`data.overlong: truncate` cuts as xtuner does; the masks and crops of phrases cut off are dropped, and a cut
    between a phrase's two [SEG] leaves the sample unusable (skipped and counted)."""
    records = json.loads((data_root / "glamm_data/annotations/GranDf_HA_GCG_train.json").read_text())[:1]
    (tmp_path / "one.json").write_text(json.dumps(records))
    tokenizer = load_lira_tokenizer(TOKENIZER, expected_ids=None)

    def dataset(max_length: int, overlong: str = "truncate") -> TrainingDataset:
        overrides = tiny_overrides(data_root, tmp_path / "run", "stage2")
        overrides["data"] |= {"max_length": max_length, "overlong": overlong}
        overrides["data"]["sources"] = [
            {
                "name": "grandf",
                "format": "grandf",
                "annotations": str(tmp_path / "one.json"),
                "images": str(data_root / "glamm_data/images/grandf/train"),
                "crops": "render",
            }
        ]
        config = load_config(str(write_config(tmp_path / f"t{max_length}.yaml", "stage2", overrides)))
        return TrainingDataset(config, tokenizer, lira_config_for(config))

    full = dataset(1024).samples[0]
    seg = np.flatnonzero(full.input_ids == 300)  # [SEG] of phrase 1, [SEG] closing it, then phrase 2's two
    assert len(seg) == 4 and len(full.raw.groundings) == 2
    cut = dataset(int(seg[1]) + 1)  # ends with the first phrase's closing [SEG]
    (sample,) = cut.samples
    assert len(sample.input_ids) == seg[1] + 1 and len(sample.raw.groundings) == 1
    assert np.array_equal(sample.input_ids, full.input_ids[: seg[1] + 1])
    # a cut that drops phrase 2's closing [SEG] leaves nothing to train on: a clear error naming the reason
    with pytest.raises(UserError, match=r"no training sample is left.*over-long conversation \(truncation leaves"):
        dataset(int(seg[3]))
    with pytest.raises(UserError, match=r"'grandf: over-long conversation': 1"):
        dataset(int(seg[1]) + 1, overlong="skip")
