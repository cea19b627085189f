"""Grounded Conversation Generation (GranD-f val/test), scored as GLaMM's ``eval/gcg/evaluate.py``.

One sample is one image. ``Sample.target``: ``{"caption": str, "labels": [phrase, ...], "masks": [RLE, ...],
"captions": [caption]}`` (GT mask i belongs to label i); the prediction carries ``masks`` and ``phrases``
(predicted phrase i belongs to predicted mask i, as GLaMM pairs them by order). Caption quality (METEOR,
CIDEr) comes from `harness.metrics.captions.CaptionScores` on the same samples.

* **AP50** (`GcgMasks`): every predicted mask is a COCO result with category 1 and score 1.0;
  ``COCOeval(gt, gt.loadRes(results), "segm")`` with ``params.catIds = [1]`` over all scored images;
  AP50 = ``stats[1]`` (IoU 0.5, all areas, 100 detections). With every score tied, COCOeval's stable
  sort keeps the masks in prediction order and the images in sorted-id order, as in GLaMM.
* **mIoU** (`GcgMasks`): per image, the (prediction x ground truth) IoU matrix, with NaN where both masks
  are empty (numpy's 0/0 in GLaMM); greedily take the largest entry, record it, delete its row and column,
  while the matrix is non-empty and its maximum is > 0 (a NaN anywhere stops the loop). The image scores
  the mean of the recorded IoUs, or 0 when none; mIoU is the mean over images. Unmatched masks on either
  side do not lower it.
* **recall** (`GcgRecall`): ground-truth phrases matched by a predicted phrase with mask IoU >= 0.5 and
  text similarity >= 0.5, over all ground-truth phrases. Text similarity is the cosine of mean-pooled
  last hidden states (all tokens, [CLS] and [SEP] included; ``max_length=512``) of a BERT encoder;
  ``bert-base-uncased`` reproduces GLaMM. Protocol ``glamm`` (default) reproduces its matching: take
  the largest IoU of the (ground truth x prediction) matrix and *stop* as soon as it fails either
  threshold, so a lower-IoU pair that would pass is never considered; any indexing error (more masks
  than phrases on either side) makes the image count zero matches, its phrases still counting. Protocol
  ``full`` is the corrected count: the largest one-to-one matching among all pairs passing both
  thresholds (pairs beyond the shorter of a mask list and its phrase list cannot match).

LIRA's copy of the evaluator comments the recall out; it is reported here only with a text encoder.
"""

from __future__ import annotations

import contextlib
import io
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from harness import masks
from harness.errors import SampleError, UserError
from harness.metrics.base import Metric, Record
from harness.metrics.captions import clean_gcg_caption
from harness.stats import resample_sums
from harness.types import RLE, Prediction, Sample

RecallProtocol = Literal["glamm", "full"]
IOU_THRESHOLD = 0.5
TEXT_THRESHOLD = 0.5


def gcg_phrases(text: str) -> list[str]:
    """Phrases between ``<p>`` and ``</p>`` (non-greedy, stripped), after GLaMM's newline removal."""
    text = text.replace("\n", "").replace("  ", " ")
    return [phrase.strip() for phrase in re.findall(r"<p>(.*?)</p>", text)]


def _image_masks(sample: Sample, prediction: Prediction) -> tuple[list[RLE], list[RLE], tuple[int, int]]:
    """Validated ground-truth and predicted masks of one image, and the image size they all share."""
    truth = sample.target.get("masks")
    if not isinstance(truth, list):
        raise SampleError(f"target 'masks' must be a list of RLE masks, got {type(truth).__name__}")
    size = sample.image_size
    if size is None and truth:
        first = masks.validate(truth[0], what="ground-truth mask 0")
        size = (first["size"][0], first["size"][1])
    if size is None and prediction.masks:
        first = masks.validate(prediction.masks[0], what="predicted mask 0")
        size = (first["size"][0], first["size"][1])
    gt = [masks.validate(m, size, what=f"ground-truth mask {i}") for i, m in enumerate(truth)]
    predicted = [masks.validate(m, size, what=f"predicted mask {i}") for i, m in enumerate(prediction.masks)]
    return gt, predicted, size or (0, 0)


def glamm_iou_matrix(rows: Sequence[RLE], columns: Sequence[RLE]) -> np.ndarray:
    """IoU of every (row, column) pair as GLaMM's ``compute_iou``: NaN where both masks are empty."""
    matrix = masks.iou_matrix(list(rows), list(columns))
    if matrix.size:
        empty_rows = np.array([masks.area(m) == 0 for m in rows])
        empty_columns = np.array([masks.area(m) == 0 for m in columns])
        matrix[np.outer(empty_rows, empty_columns)] = np.nan
    return matrix


def greedy_miou(ious: np.ndarray) -> float:
    """GLaMM's ``compute_miou`` on a (prediction x ground truth) IoU matrix."""
    matrix = np.array(ious, dtype=float)
    paired = []
    while matrix.size > 0 and np.max(matrix) > 0:
        row, column = np.unravel_index(np.argmax(matrix, axis=None), matrix.shape)
        paired.append(matrix[row, column])
        matrix = np.delete(np.delete(matrix, row, axis=0), column, axis=1)
    return float(np.mean(paired)) if paired else 0.0


def glamm_matches(ious: np.ndarray, similarities: np.ndarray) -> list[tuple[int, int]]:
    """GLaMM's ``find_best_matches`` inside its ``try``: (ground truth, prediction) pairs, [] on IndexError.

    Args:
        ious: (ground-truth masks x predicted masks) IoU, NaN where both are empty.
        similarities: (ground-truth labels x predicted phrases) text similarity.
    """
    ious, similarities = np.array(ious, dtype=float), np.array(similarities, dtype=float)
    matches: list[tuple[int, int]] = []
    try:
        while ious.size > 0:
            best = np.unravel_index(np.argmax(ious), ious.shape)
            if ious[best] < IOU_THRESHOLD or similarities[best] < TEXT_THRESHOLD:
                break  # GLaMM's early stop: no later, lower-IoU pair is considered
            matches.append((int(best[0]), int(best[1])))
            ious[best[0], :] = 0
            ious[:, best[1]] = 0
            similarities[best[0], :] = 0
            similarities[:, best[1]] = 0
    except IndexError:  # GLaMM's except: the image's phrases count, none of them as matched
        return []
    return matches


def full_matches(ious: np.ndarray, similarities: np.ndarray) -> list[tuple[int, int]]:
    """The largest one-to-one matching among pairs with IoU >= 0.5 and similarity >= 0.5."""
    from scipy.optimize import linear_sum_assignment

    rows = min(ious.shape[0], similarities.shape[0])
    columns = min(ious.shape[1], similarities.shape[1])
    if rows == 0 or columns == 0:
        return []
    with np.errstate(invalid="ignore"):
        admissible = (ious[:rows, :columns] >= IOU_THRESHOLD) & (similarities[:rows, :columns] >= TEXT_THRESHOLD)
    chosen_rows, chosen_columns = linear_sum_assignment(admissible.astype(float), maximize=True)
    return [(int(r), int(c)) for r, c in zip(chosen_rows, chosen_columns, strict=True) if admissible[r, c]]


# ---------------------------------------------------------------------------
# Mask AP50 and mIoU
# ---------------------------------------------------------------------------


class GcgMasks(Metric):
    """AP50 (COCOeval segm, one category, all scores 1.0) and GLaMM's greedy mIoU of predicted masks.

    Raises:
        SampleError (per sample): a ground-truth or predicted mask that is not valid RLE or whose size
        differs from the image's.
    """

    name = "gcg_masks"
    higher_is_better = {"AP50": True, "mIoU": True}
    definitions = {
        "AP50": "COCO mask AP at IoU 0.5 (stats[1]; one category, every score 1.0), GLaMM GCG protocol",
        "mIoU": "mean over images of the mean IoU of greedy one-to-one mask pairs (0 for an image without any)",
    }

    def __init__(self) -> None:
        super().__init__()

    def score(self, sample: Sample, prediction: Prediction) -> Record:
        gt, predicted, (height, width) = _image_masks(sample, prediction)
        ious = glamm_iou_matrix(predicted, gt)
        return {
            "image_id": sample.sample_id,
            "height": height,
            "width": width,
            "gt_masks": gt,
            "pred_masks": predicted,
            "miou": greedy_miou(ious),
        }

    def sample_values(self, record: Record) -> dict[str, float]:
        return {"miou": record["miou"], "masks": float(len(record["pred_masks"]))}

    def aggregate(self, records: Sequence[Record]) -> dict[str, float]:
        if not records:
            return {"AP50": float("nan"), "mIoU": float("nan")}
        return {"AP50": coco_ap50(records), "mIoU": float(np.mean([r["miou"] for r in records]))}

    def resampled(self, records: Sequence[Record], draws: np.ndarray) -> dict[str, np.ndarray]:
        """mIoU only: AP50 reruns COCOeval and is not resampled."""
        if not records:
            return {}
        return {"mIoU": resample_sums(draws, np.array([r["miou"] for r in records])) / draws.shape[1]}


def coco_ap50(records: Sequence[Record]) -> float:
    """COCOeval segm AP at IoU 0.5 over the images of ``records`` (NaN when there is no ground truth)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, truths, results = [], [], []
    for record in records:
        images.append({"id": record["image_id"], "height": record["height"], "width": record["width"]})
        for rle in record["gt_masks"]:
            truths.append(
                {
                    "id": len(truths) + 1,
                    "image_id": record["image_id"],
                    "category_id": 1,
                    "segmentation": dict(rle),
                    "area": float(masks.area(rle)),
                    "iscrowd": 0,
                }
            )
        results.extend(
            {"image_id": record["image_id"], "category_id": 1, "segmentation": dict(rle), "score": 1.0}
            for rle in record["pred_masks"]
        )
    if not truths:
        return float("nan")
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        ground_truth = COCO()
        ground_truth.dataset = {"images": images, "annotations": truths, "categories": [{"id": 1, "name": "object"}]}
        ground_truth.createIndex()
        if results:
            detections = ground_truth.loadRes(results)
        else:  # loadRes cannot take an empty list; no detection means AP 0 over the ground truth
            detections = COCO()
            detections.dataset = {"images": images, "annotations": [], "categories": ground_truth.dataset["categories"]}
            detections.createIndex()
        evaluator = COCOeval(ground_truth, detections, "segm")
        evaluator.params.catIds = [1]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    ap50 = float(evaluator.stats[1])
    return ap50 if ap50 >= 0 else float("nan")


# ---------------------------------------------------------------------------
# Recall
# ---------------------------------------------------------------------------


class TextEncoder:
    """GLaMM's phrase embedding: mean of the last hidden states over all tokens of a local BERT folder."""

    def __init__(self, folder: str | Path) -> None:
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
        except (OSError, ValueError) as error:
            raise UserError(f"cannot load the GCG recall text encoder from {folder}: {error}") from None
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, text: str) -> np.ndarray:
        """float32 sentence embedding of ``text`` (cached)."""
        if text not in self._cache:
            import torch

            inputs = self.tokenizer(text, return_tensors="pt", max_length=512, truncation=True)
            with torch.no_grad():
                hidden = self.model(**inputs).last_hidden_state[0]
            self._cache[text] = torch.mean(hidden, dim=0).numpy()
        return self._cache[text]

    def similarities(self, rows: Sequence[str], columns: Sequence[str]) -> np.ndarray:
        """Cosine similarity of every (row, column) pair, computed per pair in float32 as scikit-learn's
        ``cosine_similarity([a], [b])`` in GLaMM (rows L2-normalised, then a 1 x 1 matrix product)."""
        matrix = np.zeros((len(rows), len(columns)))
        normalised = {text: _l2_normalised(self.embed(text)) for text in (*rows, *columns)}
        for i, row in enumerate(rows):
            for j, column in enumerate(columns):
                matrix[i, j] = (normalised[row] @ normalised[column].T)[0, 0]
        return matrix


def _l2_normalised(vector: np.ndarray) -> np.ndarray:
    row = np.asarray(vector, dtype=np.float32)[None, :]
    norm = np.sqrt(np.einsum("ij,ij->i", row, row))
    return row / np.where(norm == 0, 1, norm)[:, None]


class GcgRecall(Metric):
    """Share of ground-truth phrases matched by a predicted phrase and mask (IoU and similarity >= 0.5).

    Args:
        protocol: ``"glamm"`` (default, GLaMM's early-stop matching) or ``"full"`` (maximum matching).
        text_encoder: folder of a local BERT model for phrase similarity (``bert-base-uncased`` reproduces
            GLaMM). Without one, recall is reported undefined, with the reason in its definition.

    Raises:
        SampleError (per sample): invalid masks, or labels/phrases that are not strings.
        UserError: the text encoder folder exists but cannot be loaded.
    """

    name = "gcg_recall"
    higher_is_better = {"recall": True}

    def __init__(self, protocol: RecallProtocol = "glamm", text_encoder: str | None = None) -> None:
        if protocol not in get_args(RecallProtocol):
            raise ValueError(f"GCG recall protocol must be one of {get_args(RecallProtocol)}, got {protocol!r}")
        super().__init__(protocol=protocol, text_encoder=None if text_encoder is None else str(text_encoder))
        self.protocol = protocol
        self.text_encoder = text_encoder
        self._encoder: TextEncoder | None = None
        rule = "GLaMM's early-stop greedy matching" if protocol == "glamm" else "a maximum one-to-one matching"
        self.definitions = {
            "recall": f"ground-truth phrases matched with mask IoU >= 0.5 and text similarity >= 0.5 ({rule})"
        }
        self.unavailable = self._unavailable_reason()
        if self.unavailable:
            self.definitions = {"recall": f"recall unavailable: {self.unavailable}"}

    def _unavailable_reason(self) -> str | None:
        if self.text_encoder is None:
            return "no text encoder given (pass text_encoder=FOLDER of a local bert-base-uncased, GLaMM's encoder)"
        if not Path(self.text_encoder).is_dir():
            return f"text encoder folder {self.text_encoder} does not exist"
        return None

    def score(self, sample: Sample, prediction: Prediction) -> Record:
        gt, predicted, _ = _image_masks(sample, prediction)
        labels = sample.target.get("labels")
        if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
            raise SampleError(f"target 'labels' must be a list of phrases, got {labels!r}"[:200])
        phrases = list(prediction.phrases)
        if not all(isinstance(phrase, str) for phrase in phrases):
            raise SampleError("predicted phrases must be strings")
        if self.unavailable:
            return {"positives": len(labels), "matches": None, "pairs": []}
        if self._encoder is None:
            self._encoder = TextEncoder(self.text_encoder)  # type: ignore[arg-type]
        ious = glamm_iou_matrix(gt, predicted)
        similarities = self._encoder.similarities(labels, phrases)
        pairs = glamm_matches(ious, similarities) if self.protocol == "glamm" else full_matches(ious, similarities)
        return {"positives": len(labels), "matches": len(pairs), "pairs": [list(p) for p in pairs]}

    def sample_values(self, record: Record) -> dict[str, float]:
        if record["matches"] is None:
            return {}
        return {"matches": float(record["matches"]), "positives": float(record["positives"])}

    def aggregate(self, records: Sequence[Record]) -> dict[str, float]:
        if not records or any(r["matches"] is None for r in records):
            if records and self.unavailable:
                warnings.warn(f"GCG recall not computed: {self.unavailable}", RuntimeWarning, stacklevel=2)
            return {"recall": float("nan")}
        positives = sum(r["positives"] for r in records)
        return {"recall": sum(r["matches"] for r in records) / positives if positives > 0 else 0.0}

    def resampled(self, records: Sequence[Record], draws: np.ndarray) -> dict[str, np.ndarray]:
        if not records or any(r["matches"] is None for r in records):
            return {}
        sums = resample_sums(draws, np.array([[r["matches"], r["positives"]] for r in records], dtype=float))
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"recall": np.where(sums[:, 1] > 0, sums[:, 0] / sums[:, 1], 0.0)}


__all__ = [
    "GcgMasks",
    "GcgRecall",
    "RecallProtocol",
    "TextEncoder",
    "clean_gcg_caption",
    "coco_ap50",
    "full_matches",
    "gcg_phrases",
    "glamm_iou_matrix",
    "glamm_matches",
    "greedy_miou",
]
