"""Referring segmentation per group (AttrEval's segmentation track: per attribute type), worked out by hand."""

import numpy as np
import pytest

from harness import masks
from harness.errors import SampleError
from harness.metrics import build_metric
from harness.metrics.refseg import GroupedReferringSegmentation, ReferringSegmentation
from harness.types import Prediction, Sample


def rle(*rows: str):
    return masks.encode(np.array([[int(c) for c in row] for row in rows], dtype=np.uint8))


TARGET = rle("1100", "1100")  # 4 pixels


def sample(group, name):
    target = {"mask": TARGET} if group is None else {"mask": TARGET, "attribute": group}
    return Sample(sample_id=name, image="x.jpg", target=target, image_size=(2, 4))


CASES = [
    # group, predicted mask -> (I, U)
    ("color", rle("1100", "1100")),  # (4, 4)
    ("color", rle("1000", "0000")),  # (1, 4)
    ("position", rle("0011", "0011")),  # (0, 8)
    ("position", None),  # no mask: left out of cIoU sums, 0 in gIoU
    (None, rle("1110", "1100")),  # (4, 5): counts only overall
]


def scored(metric):
    for index, (group, mask) in enumerate(CASES):
        prediction = Prediction(text="[SEG]", masks=() if mask is None else (mask,))
        metric.add(index, metric.score(sample(group, str(index)), prediction))
    return metric.compute()


def test_values_overall_and_per_group():
    values = scored(GroupedReferringSegmentation())
    plain = scored(ReferringSegmentation())
    assert {key: values[key] for key in plain} == plain  # overall: exactly the refseg numbers
    assert values["cIoU"] == pytest.approx((4 + 1 + 0 + 4) / (4 + 4 + 8 + 5))
    assert values["cIoU_color"] == pytest.approx(5 / 8)
    assert values["gIoU_color"] == pytest.approx((4 / (4 + 1e-5) + 1 / (4 + 1e-5)) / 2)
    assert values["cIoU_position"] == pytest.approx(0.0)
    assert values["gIoU_position"] == 0.0  # 0 / 8 and a missing mask, over 2 samples
    assert sorted(key for key in values if "_" in key) == ["cIoU_color", "cIoU_position", "gIoU_color", "gIoU_position"]


def test_lisa_protocol_and_rebuilding_from_the_config():
    metric = GroupedReferringSegmentation(protocol="lisa", key="attribute")
    values = scored(metric)
    # lisa: the missing mask is an empty prediction (I 0, U 4) and counts; gIoU divides by N + 1e-5
    assert values["cIoU_position"] == pytest.approx(0 / (8 + 4))
    assert values["gIoU_color"] == pytest.approx((4 / (4 + 1e-5) + 1 / (4 + 1e-5)) / (2 + 1e-5))
    rebuilt = build_metric(metric.config())
    assert metric.config() == {"name": "refseg_grouped", "protocol": "lisa", "key": "attribute"}
    assert isinstance(rebuilt, GroupedReferringSegmentation) and rebuilt.options == metric.options


def test_resampling_agrees_with_aggregate():
    metric = GroupedReferringSegmentation()
    scored(metric)
    records = metric.records()
    identity = np.arange(len(records))[None, :]
    again = metric.resampled(records, np.vstack([identity, identity[:, ::-1]]))
    direct = metric.aggregate(records)
    for key, value in direct.items():
        assert again[key][0] == pytest.approx(value) and again[key][1] == pytest.approx(value)
    only_color = metric.resampled(records, np.array([[0, 0, 1, 1, 0]]))
    assert np.isnan(only_color["cIoU_position"][0]) and only_color["cIoU_color"][0] == pytest.approx(
        (3 * 4 + 2 * 1) / (5 * 4)
    )


def test_a_group_that_is_not_a_string_fails_the_sample():
    bad = Sample(sample_id="b", image="x.jpg", target={"mask": TARGET, "attribute": 3}, image_size=(2, 4))
    with pytest.raises(SampleError, match="'attribute' must be a string"):
        GroupedReferringSegmentation().score(bad, Prediction(masks=(TARGET,)))
