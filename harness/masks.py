"""Binary masks as COCO RLE: a small typed layer over pycocotools.

Masks stay run-length encoded end to end; areas and overlaps are computed on the RLE. Decode only to
draw or when a protocol needs pixel values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import rlemasklib
from pycocotools import mask as coco_mask
from rlemasklib import RLEMask

from harness.errors import SampleError
from harness.types import RLE


def encode(mask: np.ndarray) -> RLE:
    """Encode a 2-D mask (any dtype; non-zero = foreground) as RLE with string counts."""
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    encoded = coco_mask.encode(np.asfortranarray(mask != 0, dtype=np.uint8))
    return RLE(size=[int(encoded["size"][0]), int(encoded["size"][1])], counts=encoded["counts"].decode("ascii"))


def _native(rle: RLE) -> dict[str, Any]:
    return {"size": list(rle["size"]), "counts": rle["counts"].encode("ascii")}


def decode(rle: RLE) -> np.ndarray:
    """Decode to a ``(height, width)`` uint8 array of 0 and 1."""
    return coco_mask.decode(_native(rle))


def area(rle: RLE) -> int:
    """Number of foreground pixels."""
    return int(coco_mask.area(_native(rle)))


def intersection_area(first: RLE, second: RLE) -> int:
    """Pixels in both masks (sizes must agree)."""
    merged = coco_mask.merge([_native(first), _native(second)], intersect=True)
    return int(coco_mask.area(merged))


def iou_matrix(predicted: Sequence[RLE], truth: Sequence[RLE]) -> np.ndarray:
    """IoU of every (predicted, truth) pair, shape ``(len(predicted), len(truth))``; 0 where both are empty."""
    if not predicted or not truth:
        return np.zeros((len(predicted), len(truth)))
    return np.asarray(
        coco_mask.iou([_native(r) for r in predicted], [_native(r) for r in truth], [0] * len(truth)),
        dtype=float,
    )


def empty(height: int, width: int) -> RLE:
    """An all-background mask."""
    return encode(np.zeros((height, width), dtype=np.uint8))


def from_polygons(polygons: Sequence[Sequence[float]], height: int, width: int) -> list[RLE]:
    """One RLE per polygon (flat ``[x1, y1, x2, y2, ...]`` lists), as COCO rasterises them."""
    if not polygons:
        return []
    encoded = coco_mask.frPyObjects([list(map(float, p)) for p in polygons], height, width)
    return [RLE(size=[int(e["size"][0]), int(e["size"][1])], counts=e["counts"].decode("ascii")) for e in encoded]


def validate(value: Any, expected_size: tuple[int, int] | None = None, *, what: str = "mask") -> RLE:
    """Check that ``value`` is a decodable RLE (of ``expected_size`` = (h, w) when given).

    The counts string is decoded exactly as pycocotools reads it (uint32 runs) and must cover the
    ``height * width`` pixels exactly: pycocotools itself does not check this, and its merge and IoU
    loop forever on masks whose runs add up to different totals. Decoding uses rlemasklib (C, a few
    microseconds per mask).

    Raises:
        SampleError: naming what is wrong, so the sample is recorded as failed instead of scored 0.
    """
    rle, raw = _checked_structure(value, expected_size, what)
    _checked_area(rle, raw, what)
    return rle


def validated_mask(value: Any, expected_size: tuple[int, int] | None = None, *, what: str = "mask") -> RLEMask:
    """`validate`, returning the decoded runs as an rlemasklib ``RLEMask`` for arithmetic on RLE.

    ``RLEMask`` objects give areas (``.area()``) and intersections (``a & b``) without decoding pixels,
    with the run lengths pycocotools would read, so scores that need several overlaps of one mask parse
    its counts once.
    """
    rle, raw = _checked_structure(value, expected_size, what)
    try:  # rlemasklib decodes the uint32 runs and checks that they add up to height * width
        return RLEMask.from_dict({"size": rle["size"], "counts": raw})
    except ValueError:
        raise _uncovered(rle, what) from None


def _checked_structure(value: Any, expected_size: tuple[int, int] | None, what: str) -> tuple[RLE, bytes]:
    """Everything `validate` checks but the run lengths; returns the RLE and its counts as bytes."""
    if not isinstance(value, dict) or "size" not in value or "counts" not in value:
        raise SampleError(f"{what} is not an RLE dict with 'size' and 'counts': {str(value)[:80]}")
    size, counts = value["size"], value["counts"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2):
        raise SampleError(f"{what} has size {size!r}; expected [height, width] as two non-negative integers")
    height, width = size
    if not (isinstance(height, int) and isinstance(width, int) and height >= 0 and width >= 0):
        raise SampleError(f"{what} has size {size!r}; expected [height, width] as two non-negative integers")
    if not isinstance(counts, str):
        raise SampleError(f"{what} counts must be a compressed RLE string, got {type(counts).__name__}")
    if expected_size is not None and (height != expected_size[0] or width != expected_size[1]):
        raise SampleError(f"{what} has size {[height, width]} but the image is {list(expected_size)} (height, width)")
    try:
        raw = counts.encode("ascii")
    except UnicodeEncodeError:
        raise SampleError(f"{what} counts are not a COCO compressed RLE string (non-ASCII characters)") from None
    kinds = raw.translate(_RLE_CHARACTER_KINDS)  # "0" ends a run, "P" continues it, "X" is no RLE character
    if b"X" in kinds or kinds.endswith(b"P") or b"PPPPPP" in kinds:
        raise SampleError(
            f"{what} RLE counts cover no valid run lengths (a character outside '0'..'o', "
            "an unfinished run, or a run longer than 6 characters)"
        )
    return RLE(size=[height, width], counts=counts), raw


def _checked_area(rle: RLE, raw: bytes, what: str) -> int:
    """Foreground area; rlemasklib decodes the uint32 runs and checks that they add up to height * width."""
    try:
        return int(rlemasklib.area({"size": rle["size"], "counts": raw}))
    except ValueError:
        raise _uncovered(rle, what) from None


def _uncovered(rle: RLE, what: str) -> SampleError:
    pixels = rle["size"][0] * rle["size"][1]
    return SampleError(f"{what} RLE counts cover a different number of pixels than the {pixels} of size {rle['size']}")


_RLE_CHARACTER_KINDS = bytes(
    ord("0") if 48 <= code < 80 else ord("P") if 80 <= code < 112 else ord("X") for code in range(256)
)
"""COCO's compressed counts use ``chr(48 + v)`` for 6-bit ``v``; bit 0x20 of ``v`` marks a continued run.
A run of 7 characters (6 continuations) holds over 30 bits, which pycocotools' C decoder shifts out of its
``int`` (undefined behaviour); its own encoder needs at most 6 characters for images under 2**29 pixels."""


__all__ = [
    "area",
    "decode",
    "empty",
    "encode",
    "from_polygons",
    "intersection_area",
    "iou_matrix",
    "validate",
    "validated_mask",
]
