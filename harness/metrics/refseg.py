"""Referring segmentation (RefCOCO, RefCOCO+, RefCOCOg, AttrEval-seg): cIoU, gIoU and precision at IoU thresholds.

`GroupedReferringSegmentation` (``refseg_grouped``) adds the same cIoU and gIoU per group of samples
(AttrEval's segmentation track: per attribute type).

Reproduces LISA's ``validate`` and LIRA's ``refcoco_lira.py`` (both built on ``intersectionAndUnionGPU`` with
two classes and ``ignore_index=255``). For one sentence with prediction P and ground truth G, where G holds
the *sum* of the annotation's polygons (value 1 = target, 2+ = covered by several polygons, 255 = ignore):

* pixels of G equal to 255 are removed from P;
* I = |P ∧ (G == 1)| and U = |P| + |G == 1| - I: a pixel covered by two polygons is neither target nor
  background; it adds to the union only where it is predicted.

The target mask of a sample is therefore the *exactly-one-coverage* mask (`refer_target_mask`, built with
pycocotools' polygon rasterisation), and I and U are computed on COCO RLE without decoding masks: each mask's
counts are decoded once into runs by rlemasklib (pycocotools' RLE code with the same uint32 reading, about
twice as fast here as pycocotools' merge, which allocates a full height x width buffer per call), which
gives the areas and the intersection.

Aggregates over sentences s:

* ``cIoU`` = Σ I_s / (Σ U_s + 1e-10);
* ``gIoU`` = mean of I_s / (U_s + 1e-5), plus 1 where U_s = 0 (an empty prediction of an empty target
  scores 1);
* ``P@X`` = share of sentences with I_s / U_s >= X (U_s = 0 counts as IoU 1). Not computed by LISA or
  LIRA; offered as the usual precision-at-threshold extra.

Protocols (option ``protocol``):

* ``generation`` (default; OMG-LLaVA, LIRA, Sa2VA): the first ``[SEG]`` mask is scored; a sentence
  without any mask adds nothing to Σ I and Σ U and scores 0 in gIoU and P@X. gIoU divides by N.
* ``lisa`` (teacher-forced; LISA, GLaMM referring_seg): every sentence has a mask; gIoU divides by
  N + 1e-5 as LISA's meter does after its all-reduce. A prediction without a mask is scored as an empty
  mask (its target area counts in the union), which the reference never meets.

The references accumulate I and U in float32 (``torch.histc``) and sum per image in float32; on a full
split that rounding moves their printed cIoU/gIoU by up to about 1e-6 from the exact integer sums used here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np
import rlemasklib
from pycocotools import mask as coco_mask
from rlemasklib import RLEMask

from harness import masks
from harness.errors import SampleError
from harness.metrics.base import Metric, Record
from harness.stats import resample_sums
from harness.types import RLE, Prediction, Sample

Protocol = Literal["generation", "lisa"]
THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)
CIOU_EPSILON = 1e-10
GIOU_EPSILON = 1e-5
LISA_COUNT_EPSILON = 1e-5


# ---------------------------------------------------------------------------
# Ground truth
# ---------------------------------------------------------------------------


def refer_target_mask(segmentation: Any, height: int, width: int) -> RLE:
    """The class-1 target of one annotation: pixels covered by exactly one of its parts.

    LISA and LIRA decode every polygon (or RLE) of the annotation, *sum* them and score the pixels equal
    to 1; pixels covered by two or more parts count neither as target nor as background. This returns
    that mask as RLE, computed on run lengths without decoding.

    Args:
        segmentation: the annotation's ``segmentation``: a list of flat polygons ``[x1, y1, x2, y2, ...]``
            (passed to ``pycocotools.mask.frPyObjects`` as one list, as the references do: a first polygon
            of exactly 4 numbers makes pycocotools, and so LISA and LIRA, fail), a list of RLE dicts, or
            one RLE dict (compressed or uncompressed counts). An empty list gives an empty mask.
        height, width: the image size.

    Raises:
        ValueError: the segmentation is neither polygons nor RLE, or an RLE has another size.
    """
    if isinstance(segmentation, dict):
        return _as_rle(_native_part(segmentation, height, width))
    if not isinstance(segmentation, (list, tuple)):
        raise ValueError(f"segmentation must be a list of polygons or RLE dicts, got {type(segmentation).__name__}")
    if len(segmentation) == 0:
        return masks.empty(height, width)
    if all(isinstance(part, dict) for part in segmentation):
        parts = [_native_part(part, height, width) for part in segmentation]
    elif all(isinstance(part, (list, tuple)) for part in segmentation):
        try:
            parts = coco_mask.frPyObjects([[float(x) for x in polygon] for polygon in segmentation], height, width)
        except Exception as error:  # pycocotools raises bare Exception for shapes it cannot read
            raise ValueError(f"segmentation polygons cannot be rasterised by pycocotools: {error}") from None
    else:
        raise ValueError("segmentation mixes polygons and RLE dicts")
    if len(parts) == 1:
        return _as_rle(parts[0])
    return _exactly_one(parts, height, width)


def _native_part(part: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    """One RLE part as a pycocotools dict with bytes counts (uncompressed counts are compressed)."""
    if "size" not in part or "counts" not in part:
        raise ValueError(f"RLE segmentation needs 'size' and 'counts', got keys {sorted(part)}")
    if [int(s) for s in part["size"]] != [height, width]:
        raise ValueError(f"RLE segmentation has size {list(part['size'])}, the image is [{height}, {width}]")
    counts = part["counts"]
    if isinstance(counts, list):
        return coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width)
    if isinstance(counts, str):
        counts = counts.encode("ascii")
    masks.validate({"size": [height, width], "counts": counts.decode("ascii")}, what="RLE segmentation")
    return {"size": [height, width], "counts": counts}


def _as_rle(native: dict[str, Any]) -> RLE:
    counts = native["counts"]
    return RLE(
        size=[int(native["size"][0]), int(native["size"][1])],
        counts=counts.decode("ascii") if isinstance(counts, bytes) else counts,
    )


def _exactly_one(parts: Sequence[dict[str, Any]], height: int, width: int) -> RLE:
    """Pixels covered by exactly one part, by a sweep over the parts' foreground intervals."""
    starts, ends = [], []
    for part in parts:
        runs = rlemasklib.decompress(part)["ucounts"].astype(np.int64)
        edges = np.concatenate(([0], np.cumsum(runs)))  # run i spans [edges[i], edges[i + 1])
        starts.append(edges[1 : len(runs) : 2])  # odd runs are foreground
        ends.append(edges[2 : len(runs) + 1 : 2])
    positions = np.concatenate(starts + ends)
    if positions.size == 0:
        return masks.empty(height, width)
    steps = np.concatenate([np.ones(sum(map(len, starts)), np.int64), -np.ones(sum(map(len, ends)), np.int64)])
    points, where = np.unique(positions, return_inverse=True)
    coverage = np.cumsum(np.bincount(where, weights=steps, minlength=len(points)))[:-1]  # on [points[k], points[k+1])
    single = np.concatenate(([False], coverage == 1, [False]))
    change = np.flatnonzero(single[1:] != single[:-1])  # alternating starts and ends of exactly-one stretches
    boundaries = np.concatenate(([0], points[change], [height * width]))
    counts = np.diff(boundaries).tolist()
    if len(counts) > 1 and counts[-1] == 0:  # pycocotools ends a mask that reaches the last pixel on its run
        counts.pop()
    return _as_rle(coco_mask.frPyObjects({"size": [height, width], "counts": counts}, height, width))


# ---------------------------------------------------------------------------
# Metric
# ---------------------------------------------------------------------------


def _overlap(predicted: RLEMask | None, target: RLEMask, ignore: RLEMask | None) -> tuple[int, int]:
    """(I, U) of one sentence on run lengths; ``predicted=None`` scores an empty prediction."""
    target_area = target.area()
    if ignore is not None:  # pixels under the ignore mask count neither as predicted nor as target
        target_area -= (target & ignore).area()
    if predicted is None:
        return 0, target_area
    predicted_area = predicted.area()
    both = predicted & target
    intersection = both.area()
    if ignore is not None:
        predicted_area -= (predicted & ignore).area()
        intersection -= (both & ignore).area()
    return intersection, predicted_area + target_area - intersection


class ReferringSegmentation(Metric):
    """cIoU, gIoU and P@0.5…P@0.9 of the first predicted mask against the exactly-one-coverage target.

    ``Sample.target``: ``{"mask": RLE}`` (from `refer_target_mask`), optionally ``"ignore": RLE``
    (ReasonSeg-style value-255 pixels). ``Prediction.masks[0]`` is scored; further masks are ignored,
    as in OMG-LLaVA and LIRA.

    Args:
        protocol: ``"generation"`` (default) or ``"lisa"``; see the module docstring.

    Raises:
        SampleError (per sample): a target or predicted mask that is not valid RLE, or whose size differs
        from the image's.
    """

    name = "refseg"
    higher_is_better = {"cIoU": True, "gIoU": True, **{f"P@{t}": True for t in THRESHOLDS}}

    def __init__(self, protocol: Protocol = "generation") -> None:
        if protocol not in get_args(Protocol):
            raise ValueError(f"refseg protocol must be one of {get_args(Protocol)}, got {protocol!r}")
        super().__init__(protocol=protocol)
        self.protocol = protocol
        missing = (
            "sentences without a mask are left out of both sums"
            if protocol == "generation"
            else "a missing mask is scored as an empty one"
        )
        count = "N" if protocol == "generation" else "N + 1e-5 (LISA's meter)"
        self.definitions = {
            "cIoU": f"Σ intersection / (Σ union + 1e-10) over sentences, foreground class; {missing}",
            "gIoU": f"Σ_s [I_s / (U_s + 1e-5) + (1 if U_s = 0)] / {count}; a sentence without a mask scores 0",
            **{f"P@{t}": f"share of sentences with I/U >= {t} (empty union = 1; no mask = miss)" for t in THRESHOLDS},
        }

    def score(self, sample: Sample, prediction: Prediction) -> Record:
        if "mask" not in sample.target:
            raise SampleError(f"target has no 'mask' (keys: {sorted(sample.target)})")
        target = masks.validated_mask(sample.target["mask"], sample.image_size, what="target mask")
        size = (int(target.shape[0]), int(target.shape[1]))
        ignore = sample.target.get("ignore")
        if ignore is not None:
            ignore = masks.validated_mask(ignore, size, what="ignore mask")
        predicted = masks.validated_mask(prediction.masks[0], size, what="predicted mask") if prediction.masks else None
        if predicted is None and self.protocol == "generation":
            intersection, union = 0, 0
        else:
            intersection, union = _overlap(predicted, target, ignore)
        return {
            "intersection": intersection,
            "union": union,
            "has_mask": predicted is not None,
            "n_masks": len(prediction.masks),
        }

    def sample_values(self, record: Record) -> dict[str, float]:
        intersection, union = record["intersection"], record["union"]
        counted = record["has_mask"] or self.protocol == "lisa"
        iou = intersection / (union + GIOU_EPSILON) + (union == 0) if counted else 0.0
        return {"iou": float(iou), "intersection": intersection, "union": union}

    # -- aggregate ------------------------------------------------------------------------------

    def _counted(self, has_mask: np.ndarray) -> np.ndarray:
        return has_mask if self.protocol == "generation" else np.ones_like(has_mask, dtype=bool)

    def _columns(self, records: Sequence[Record]) -> np.ndarray:
        """Per record: I, U (0 when not counted), reference IoU, and IoU >= t for every threshold."""
        intersection = np.array([r["intersection"] for r in records], dtype=np.int64)
        union = np.array([r["union"] for r in records], dtype=np.int64)
        counted = self._counted(np.array([bool(r["has_mask"]) for r in records], dtype=bool))
        intersection, union = np.where(counted, intersection, 0), np.where(counted, union, 0)
        reference = np.where(counted, _reference_iou(intersection, union), 0.0)
        exact = np.divide(intersection, union, out=np.ones(len(records)), where=union > 0)
        hits = [(counted & (exact >= t)).astype(float) for t in THRESHOLDS]
        return np.column_stack([intersection, union, reference, *hits]).astype(float)

    def _values(self, sums: np.ndarray, count: int) -> dict[str, Any]:
        """Reported values from column sums (last axis) over ``count`` records."""
        divisor = count if self.protocol == "generation" else count + LISA_COUNT_EPSILON
        values = {
            "cIoU": sums[..., 0] / (sums[..., 1] + CIOU_EPSILON),
            "gIoU": sums[..., 2] / divisor,
        }
        values.update({f"P@{t}": sums[..., 3 + i] / count for i, t in enumerate(THRESHOLDS)})
        return values

    def aggregate(self, records: Sequence[Record]) -> dict[str, float]:
        if not records:
            return {key: float("nan") for key in self.higher_is_better}
        # pixel counts are integers far below 2**53: their float64 sums are exact
        sums = self._columns(records).sum(axis=0)
        return {key: float(value) for key, value in self._values(sums, len(records)).items()}

    def resampled(self, records: Sequence[Record], draws: np.ndarray) -> dict[str, np.ndarray]:
        if not records:
            return {}
        return self._values(resample_sums(draws, self._columns(records)), draws.shape[1])


def _reference_iou(intersection: np.ndarray, union: np.ndarray) -> np.ndarray:
    """LISA/LIRA per-sentence IoU: I / (U + 1e-5), plus 1 where U = 0."""
    return intersection / (union + GIOU_EPSILON) + (union == 0)


class GroupedReferringSegmentation(ReferringSegmentation):
    """`ReferringSegmentation` overall and per group of samples (AttrEval: per attribute type).

    ``Sample.target[key]`` (a string, e.g. ``target["attribute"] = "color"``) names each sample's group.
    Reports everything `ReferringSegmentation` reports over all samples, plus ``cIoU_<group>`` and
    ``gIoU_<group>`` for every group present, computed the same way over that group's samples (samples
    without a group count only overall).

    Args:
        protocol: as for `ReferringSegmentation`.
        key: the target field that names the group (default ``"attribute"``).
    """

    name = "refseg_grouped"

    def __init__(self, protocol: Protocol = "generation", key: str = "attribute") -> None:
        super().__init__(protocol=protocol)
        self.options = {"protocol": protocol, "key": key}
        self.key = key

    def score(self, sample: Sample, prediction: Prediction) -> Record:
        record = super().score(sample, prediction)
        group = sample.target.get(self.key)
        if group is not None and not isinstance(group, str):
            raise SampleError(f"target {self.key!r} must be a string, got {type(group).__name__}")
        record["group"] = group
        return record

    def _groups(self, records: Sequence[Record]) -> list[str]:
        return sorted({r["group"] for r in records if isinstance(r.get("group"), str)})

    def _grouped_columns(self, records: Sequence[Record]) -> tuple[np.ndarray, list[str]]:
        """The base columns, then per group: I, U and reference IoU inside the group, and membership."""
        base = self._columns(records)
        groups = self._groups(records)
        extra = []
        for group in groups:
            member = np.array([r.get("group") == group for r in records], dtype=float)
            extra += [base[:, 0] * member, base[:, 1] * member, base[:, 2] * member, member]
        columns = np.column_stack([base, *extra]) if extra else base
        return columns.reshape(len(records), base.shape[1] + 4 * len(groups)), groups

    def _grouped_values(self, sums: np.ndarray, count: int, groups: list[str]) -> dict[str, Any]:
        width = 3 + len(THRESHOLDS)
        values = self._values(sums[..., :width], count)
        with np.errstate(invalid="ignore", divide="ignore"):
            for number, group in enumerate(groups):
                start = width + 4 * number
                intersection, union, reference, members = (sums[..., start + k] for k in range(4))
                divisor = members if self.protocol == "generation" else members + LISA_COUNT_EPSILON
                values[f"cIoU_{group}"] = np.where(members > 0, intersection / (union + CIOU_EPSILON), np.nan)
                values[f"gIoU_{group}"] = np.where(members > 0, reference / divisor, np.nan)
        return values

    def aggregate(self, records: Sequence[Record]) -> dict[str, float]:
        if not records:
            return {key: float("nan") for key in ReferringSegmentation.higher_is_better}
        columns, groups = self._grouped_columns(records)
        values = self._grouped_values(columns.sum(axis=0), len(records), groups)
        for group in groups:  # the groups are only known from the data
            self.higher_is_better = {**self.higher_is_better, f"cIoU_{group}": True, f"gIoU_{group}": True}
            self.definitions = {
                **self.definitions,
                f"cIoU_{group}": f"cIoU over the samples whose {self.key} is {group!r}",
                f"gIoU_{group}": f"gIoU over the samples whose {self.key} is {group!r}",
            }
        return {key: float(value) for key, value in values.items()}

    def resampled(self, records: Sequence[Record], draws: np.ndarray) -> dict[str, np.ndarray]:
        if not records:
            return {}
        columns, groups = self._grouped_columns(records)
        return self._grouped_values(resample_sums(draws, columns), draws.shape[1], groups)


__all__ = ["THRESHOLDS", "GroupedReferringSegmentation", "Protocol", "ReferringSegmentation", "refer_target_mask"]
