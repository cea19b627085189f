"""Referring segmentation: hand-worked cases, the summed-polygon target, and 300 random cases against a
naive decode-and-count port of LISA/LIRA's intersectionAndUnionGPU."""

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from harness import masks
from harness.errors import SampleError
from harness.metrics import build_metric
from harness.metrics.refseg import ReferringSegmentation, refer_target_mask
from harness.types import Prediction, Sample


def grid(*rows: str) -> np.ndarray:
    return np.array([[int(c) for c in row] for row in rows], dtype=np.uint8)


def rle(*rows: str):
    return masks.encode(grid(*rows))


def sample(target, ignore=None, size=None, name="s"):
    target_dict = {"mask": target} if ignore is None else {"mask": target, "ignore": ignore}
    return Sample(sample_id=name, image="x.jpg", target=target_dict, image_size=size or tuple(target["size"]))


def predicted(*rows: str) -> Prediction:
    return Prediction(text="[SEG]", masks=(rle(*rows),))


def score_all(metric, pairs):
    for index, (s, p) in enumerate(pairs):
        metric.add(index, metric.score(s, p))
    return metric.compute()


# ---------------------------------------------------------------------------
# Target masks
# ---------------------------------------------------------------------------


def test_summed_parts_keep_only_pixels_covered_once():
    first = rle("1100", "1100", "0000")
    second = rle("0110", "0110", "0000")
    # sum = 1210 / 1210 / 0000: the value-2 column is neither target nor background
    assert refer_target_mask([first, second], 3, 4) == rle("1010", "1010", "0000")
    assert refer_target_mask([first, first], 3, 4) == rle("0000", "0000", "0000")  # every pixel covered twice
    three = rle("1110", "0000", "0000")
    # sum = 2320 / 1210 / 0000
    assert refer_target_mask([first, second, three], 3, 4) == rle("0000", "1010", "0000")


def test_target_mask_from_other_segmentation_shapes():
    assert refer_target_mask([], 3, 4) == masks.empty(3, 4)
    single = rle("0100", "0100", "0000")
    assert refer_target_mask(single, 3, 4) == single  # one RLE dict (crowd-style)
    # uncompressed column-major counts: 3 background, 2 foreground (column 1, rows 0-1), 7 background
    assert refer_target_mask({"size": [3, 4], "counts": [3, 2, 7]}, 3, 4) == single
    assert refer_target_mask([{"size": [3, 4], "counts": [3, 2, 7]}], 3, 4) == single
    # pycocotools takes a list whose first "polygon" has exactly 4 numbers for boxes and then fails on the
    # list, so LISA and LIRA cannot build this target either
    with pytest.raises(ValueError, match="cannot be rasterised"):
        refer_target_mask([[1, 0, 2, 2], [0, 0, 1, 0, 1, 1]], 3, 4)
    with pytest.raises(ValueError, match="size"):
        refer_target_mask([rle("11", "11")], 3, 4)
    with pytest.raises(ValueError, match="mixes"):
        refer_target_mask([single, [0, 0, 1, 0, 1, 1]], 3, 4)


def test_random_polygon_sets_give_the_decoded_sum_equal_to_one():
    rng = np.random.default_rng(11)
    for _ in range(250):
        height, width = (int(v) for v in rng.integers(4, 50, 2))
        polygons = [
            list(np.c_[rng.uniform(-3, width + 3, k), rng.uniform(-3, height + 3, k)].ravel())
            for k in rng.integers(3, 8, int(rng.integers(1, 5)))
        ]
        summed = coco_mask.decode(coco_mask.frPyObjects(polygons, height, width)).sum(axis=2)
        assert refer_target_mask(polygons, height, width) == masks.encode((summed == 1).astype(np.uint8))


# ---------------------------------------------------------------------------
# Hand-worked scores
# ---------------------------------------------------------------------------


def hand_cases():
    target = refer_target_mask([rle("1100", "1100", "0000"), rle("0110", "0110", "0000")], 3, 4)
    return [
        # I = {(0,0), (0,2)} = 2; |P| = 4 (the value-2 pixel (0,1) included); |G==1| = 4; U = 4 + 4 - 2 = 6
        (sample(target), predicted("1110", "0000", "0001")),
        # empty target, empty prediction: U = 0, IoU 1
        (sample(rle("000", "000")), predicted("000", "000")),
        # no [SEG] mask for a 3-pixel target
        (sample(rle("111", "000")), Prediction(text="no mask here")),
        # exact hit of one pixel: I = U = 1
        (sample(rle("01", "00")), predicted("01", "00")),
    ]


def test_generation_protocol_by_hand():
    values = score_all(ReferringSegmentation(), hand_cases())
    assert values["cIoU"] == pytest.approx((2 + 0 + 1) / (6 + 0 + 1 + 1e-10), abs=1e-15)
    assert values["gIoU"] == pytest.approx((2 / (6 + 1e-5) + 1.0 + 0.0 + 1 / (1 + 1e-5)) / 4, abs=1e-15)
    # exact IoUs 1/3, 1 (empty union), miss, 1
    assert values["P@0.5"] == values["P@0.9"] == 0.5


def test_lisa_protocol_by_hand():
    values = score_all(ReferringSegmentation(protocol="lisa"), hand_cases())
    # the missing mask is scored as an empty prediction: I = 0, U = 3
    assert values["cIoU"] == pytest.approx(3 / (6 + 0 + 3 + 1 + 1e-10), abs=1e-15)
    expected = (2 / (6 + 1e-5) + 1.0 + 0 / (3 + 1e-5) + 1 / (1 + 1e-5)) / (4 + 1e-5)
    assert values["gIoU"] == pytest.approx(expected, abs=1e-15)
    assert values["gIoU"] != pytest.approx((2 / (6 + 1e-5) + 2 + 1 / (1 + 1e-5) - 1) / 4, abs=1e-7)  # LISA's +1e-5


def test_empty_prediction_on_empty_target_scores_one_and_nothing_is_undefined():
    values = score_all(ReferringSegmentation(), [(sample(rle("00", "00")), predicted("00", "00"))])
    assert values == {"cIoU": 0.0, "gIoU": 1.0, "P@0.5": 1.0, "P@0.6": 1.0, "P@0.7": 1.0, "P@0.8": 1.0, "P@0.9": 1.0}


def test_only_the_first_mask_counts_and_records_show_per_sample_values():
    metric = ReferringSegmentation()
    both = Prediction(text="[SEG] [SEG]", masks=(rle("10", "00"), rle("11", "11")))
    record = metric.score(sample(rle("11", "00")), both)
    assert record == {"intersection": 1, "union": 2, "has_mask": True, "n_masks": 2}
    assert metric.sample_values(record) == {"iou": 1 / (2 + 1e-5), "intersection": 1, "union": 2}


def test_ignore_pixels_count_neither_as_prediction_nor_as_target():
    metric = ReferringSegmentation()
    target, ignore = rle("1100", "0000"), rle("0011", "0000")
    # P minus ignore = {(0,0), (0,1)}: I = 2, U = 2 + 2 - 2
    record = metric.score(sample(target, ignore), predicted("1111", "0000"))
    assert (record["intersection"], record["union"]) == (2, 2)
    record = metric.score(sample(target, ignore), predicted("0011", "1000"))
    assert (record["intersection"], record["union"]) == (0, 3)
    # a target pixel under the ignore mask is no target pixel: |G| = 1
    record = metric.score(sample(rle("1100", "0000"), rle("0100", "0000")), predicted("0000", "0000"))
    assert (record["intersection"], record["union"]) == (0, 1)
    lisa = ReferringSegmentation(protocol="lisa")
    record = lisa.score(sample(rle("1100", "0000"), rle("0100", "0000")), Prediction())
    assert (record["intersection"], record["union"]) == (0, 1)


def test_precision_threshold_uses_the_exact_ratio():
    values = score_all(ReferringSegmentation(), [(sample(rle("1100")), predicted("0110"))])  # I = 1, U = 3
    assert values["P@0.5"] == 0.0
    values = score_all(ReferringSegmentation(), [(sample(rle("1111")), predicted("1100"))])  # I / U = 2 / 4
    assert values["P@0.5"] == 1.0 and values["P@0.6"] == 0.0
    assert values["gIoU"] == pytest.approx(2 / (4 + 1e-5))


def test_no_records_give_undefined_values():
    values = ReferringSegmentation().compute()
    assert set(values) == {"cIoU", "gIoU", "P@0.5", "P@0.6", "P@0.7", "P@0.8", "P@0.9"}
    assert all(np.isnan(v) for v in values.values())


def test_protocol_is_recorded_and_rebuilt():
    assert ReferringSegmentation().config() == {"name": "refseg", "protocol": "generation"}
    assert build_metric({"name": "refseg", "protocol": "lisa"}).protocol == "lisa"
    with pytest.raises(ValueError, match="protocol"):
        ReferringSegmentation(protocol="teacher")


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "message"),
    [
        (Prediction(masks=({"size": [3, 5], "counts": masks.empty(3, 5)["counts"]},)), r"size \[3, 5\] but the image"),
        (Prediction(masks=({"size": [3, 4], "counts": "zz"},)), "predicted mask RLE counts cover no valid"),
        (Prediction(masks=({"size": [3, 4], "counts": "0:"},)), "cover a different number of pixels"),
        (Prediction(masks=("0:",)), "not an RLE dict"),
    ],
)
def test_bad_predicted_masks_raise_sample_errors(prediction, message):
    with pytest.raises(SampleError, match=message):
        ReferringSegmentation().score(sample(masks.empty(3, 4)), prediction)


def test_bad_targets_raise_sample_errors():
    metric = ReferringSegmentation()
    with pytest.raises(SampleError, match="target has no 'mask'"):
        metric.score(Sample(sample_id="s", image="x"), Prediction())
    with pytest.raises(SampleError, match="target mask has size"):
        metric.score(sample(masks.empty(3, 4), size=(4, 3)), Prediction())


# ---------------------------------------------------------------------------
# Random cases against decode-and-count
# ---------------------------------------------------------------------------


def naive_intersection_union(prediction: np.ndarray, truth: np.ndarray) -> tuple[int, int]:
    """intersectionAndUnionGPU(output, target, K=2, ignore_index=255), class 1, in numpy."""
    output = prediction.astype(np.int64).ravel().copy()
    target = truth.astype(np.int64).ravel()
    output[target == 255] = 255
    intersection = output[output == target]
    area_intersection = int(np.sum(intersection == 1))
    area_output = int(np.sum(output == 1))
    area_target = int(np.sum(target == 1))
    return area_intersection, area_output + area_target - area_intersection


def random_case(rng):
    height, width = (int(v) for v in rng.integers(3, 40, 2))
    polygons = [
        list(np.c_[rng.uniform(-2, width + 2, k), rng.uniform(-2, height + 2, k)].ravel())
        for k in rng.integers(3, 7, int(rng.integers(1, 4)))
    ]
    summed = coco_mask.decode(coco_mask.frPyObjects(polygons, height, width)).sum(axis=2).astype(np.int64)
    ignore = None
    if rng.random() < 0.3:
        ignore = rng.random((height, width)) < 0.2
        summed[ignore] = 255
    kind = rng.random()
    if kind < 0.15:
        guess = None
    elif kind < 0.25:
        guess = np.zeros((height, width), np.uint8)
    else:
        guess = (rng.random((height, width)) < rng.uniform(0.05, 0.8)).astype(np.uint8)
    truth = Sample(
        sample_id=str(rng.integers(1 << 30)),
        image="x.jpg",
        target={"mask": refer_target_mask(polygons, height, width)}
        | ({} if ignore is None else {"ignore": masks.encode(ignore.astype(np.uint8))}),
        image_size=(height, width),
    )
    prediction = Prediction() if guess is None else Prediction(text="[SEG]", masks=(masks.encode(guess),))
    return truth, prediction, summed, guess


@pytest.mark.parametrize("protocol", ["generation", "lisa"])
def test_random_cases_match_decode_and_count(protocol):
    rng = np.random.default_rng(5 if protocol == "generation" else 6)
    metric = ReferringSegmentation(protocol=protocol)
    sum_i = sum_u = 0
    ious, exact = [], []
    for index in range(300):
        truth, prediction, summed, guess = random_case(rng)
        record = metric.score(truth, prediction)
        metric.add(index, record)
        if guess is None and protocol == "generation":
            ious.append(0.0)
            exact.append(-1.0)
            continue
        i, u = naive_intersection_union(np.zeros_like(summed) if guess is None else guess, summed)
        assert (record["intersection"], record["union"]) == (i, u)
        sum_i, sum_u = sum_i + i, sum_u + u
        iou = i / (u + 1e-5)
        if u == 0:
            iou += 1.0
        ious.append(iou)
        exact.append(1.0 if u == 0 else i / u)
    values = metric.compute()
    count = 300 if protocol == "generation" else 300 + 1e-5
    assert values["cIoU"] == pytest.approx(sum_i / (sum_u + 1e-10), abs=1e-12)
    assert values["gIoU"] == pytest.approx(sum(ious) / count, abs=1e-12)
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9):
        assert values[f"P@{threshold}"] == pytest.approx(sum(e >= threshold for e in exact) / 300, abs=1e-12)


@pytest.mark.parametrize("protocol", ["generation", "lisa"])
def test_vectorised_resampling_equals_aggregating_each_resample(protocol):
    rng = np.random.default_rng(8)
    metric = ReferringSegmentation(protocol=protocol)
    records = [metric.score(*random_case(rng)[:2]) for _ in range(60)]
    draws = rng.integers(0, len(records), size=(40, len(records)))
    fast = metric.resampled(records, draws)
    for row, draw in enumerate(draws):
        slow = metric.aggregate([records[i] for i in draw])
        for key, value in slow.items():
            assert fast[key][row] == pytest.approx(value, abs=1e-12)
