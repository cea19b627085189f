"""masks.validate against a literal Python transcription of pycocotools' ``rleFrString`` (C semantics)."""

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from harness import masks
from harness.errors import SampleError


def pycocotools_runs(counts: bytes) -> list[int] | None:
    """``rleFrString`` of maskApi.c line by line, uint32 casts included; None where the C code would read
    past the string or shift out of its int (groups over 6 characters), i.e. where nothing is defined."""
    runs: list[int] = []
    position = 0
    while position < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if position >= len(counts) or shift >= 6:
                return None
            char = counts[position] - 48
            if not 0 <= char < 64:
                return None
            value |= (char & 0x1F) << (5 * shift)
            more = bool(char & 0x20)
            position += 1
            shift += 1
            if not more and (char & 0x10):
                value |= -1 << (5 * shift)
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value & 0xFFFFFFFF)  # cnts[m++] = (uint) x
    return runs


def expected_valid(counts: bytes, height: int, width: int) -> bool:
    runs = pycocotools_runs(counts)
    return runs is not None and sum(runs) == height * width


def _is_valid(counts: bytes, height: int, width: int) -> bool:
    try:
        masks.validate({"size": [height, width], "counts": counts.decode("latin-1")})
    except SampleError:
        return False
    return True


def test_randomised_strings_are_accepted_exactly_when_pycocotools_reads_a_covering_run_list():
    rng = np.random.default_rng(0)
    alphabet = bytes(range(48, 112))
    verdicts = []
    for case in range(700):
        height, width = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        mask = rng.random((height, width)) < rng.uniform(0.05, 0.95)
        counts = bytearray(coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"])
        kind = case % 7
        if kind == 6:  # valid but unusual: zero-length runs inside, as frPyObjects encodes them
            runs = rng.multinomial(height * width, np.ones(9) / 9).tolist()
            encoded = coco_mask.frPyObjects({"size": [height, width], "counts": runs}, height, width)
            counts = bytearray(encoded["counts"])
        elif kind == 1 and counts:  # substitute one character
            counts[int(rng.integers(len(counts)))] = alphabet[int(rng.integers(64))]
        elif kind == 2 and counts:  # drop the tail
            counts = counts[: int(rng.integers(len(counts)))]
        elif kind == 3:  # append a run
            counts += bytes([alphabet[int(rng.integers(64))]])
        elif kind == 4:  # random characters of the alphabet
            counts = bytearray(alphabet[i] for i in rng.integers(0, 64, int(rng.integers(0, 12))))
        elif kind == 5:  # a character outside the alphabet
            counts.insert(int(rng.integers(len(counts) + 1)), int(rng.choice([32, 47, 112, 122, 200])))
        counts = bytes(counts)
        expected = expected_valid(counts, height, width)
        assert _is_valid(counts, height, width) == expected, (counts, height, width)
        verdicts.append(expected)
        if expected:
            runs = pycocotools_runs(counts)
            area = int(coco_mask.area({"size": [height, width], "counts": counts}))
            assert area == sum(runs[1::2])
    assert sum(verdicts) >= 200 and len(verdicts) - sum(verdicts) >= 400  # both outcomes well exercised


@pytest.mark.parametrize(
    ("counts", "fragment"),
    [
        ("0:", "cover a different number of pixels than the 16"),  # runs [0, 10]: merge would loop forever
        ("0P", "no valid run lengths"),  # unfinished run
        ("0PPPPPP0", "no valid run lengths"),  # 7-character run
        ("0 4", "no valid run lengths"),  # space is no RLE character
        ("", "cover a different number of pixels"),
    ],
)
def test_runs_that_do_not_cover_the_image_are_rejected_before_pycocotools_sees_them(counts, fragment):
    with pytest.raises(SampleError, match=fragment):
        masks.validate({"size": [4, 4], "counts": counts})


def test_empty_images_and_masks_are_valid():
    assert masks.validate({"size": [0, 0], "counts": ""}) == {"size": [0, 0], "counts": ""}
    assert masks.validate(masks.encode(np.zeros((0, 3), np.uint8)))["size"] == [0, 3]
    assert masks.validate(masks.empty(5, 7))["size"] == [5, 7]
