import numpy as np
import pytest

from harness import masks
from harness.errors import SampleError


def test_encode_decode_area_and_overlap():
    first = np.zeros((6, 9), dtype=np.uint8)
    first[1:4, 2:7] = 1  # 15 pixels
    second = np.zeros((6, 9), dtype=np.uint8)
    second[2:6, 5:9] = 1  # 16 pixels, 4 shared (rows 2-3, cols 5-6)
    a, b = masks.encode(first), masks.encode(second)
    assert isinstance(a["counts"], str) and a["size"] == [6, 9]
    np.testing.assert_array_equal(masks.decode(a), first)
    assert masks.area(a) == 15 and masks.area(b) == 16
    assert masks.intersection_area(a, b) == 4
    np.testing.assert_allclose(masks.iou_matrix([a], [b]), [[4 / 27]])
    assert masks.area(masks.empty(3, 4)) == 0


def test_polygons_rasterise_like_coco():
    (rle,) = masks.from_polygons([[0, 0, 4, 0, 4, 4, 0, 4]], 8, 8)
    assert masks.area(rle) > 0 and rle["size"] == [8, 8]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("not a mask", "not an RLE dict"),
        ({"size": [2], "counts": "0"}, "expected \\[height, width\\]"),
        ({"size": [2, 2], "counts": 4}, "must be a compressed RLE string"),
        ({"size": [2, 2], "counts": "zz"}, "counts cover"),
        ({"size": [2, 2], "counts": "é"}, "not a COCO compressed RLE"),
    ],
)
def test_validate_rejects_bad_rle(value, fragment):
    with pytest.raises(SampleError, match=fragment):
        masks.validate(value)


def test_validate_checks_image_size():
    rle = masks.encode(np.ones((3, 4), dtype=np.uint8))
    assert masks.validate(rle, (3, 4)) == rle
    with pytest.raises(SampleError, match=r"size \[3, 4\] but the image is \[4, 3\]"):
        masks.validate(rle, (4, 3))
