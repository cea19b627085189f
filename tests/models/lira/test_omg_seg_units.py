"""Hand-worked checks of the OMG-Seg building blocks, and behaviour the fixture does not cover
(batches, explicit memories instead of the original's cache, low precision, bad input)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from models.lira.checkpoint.omg_seg import load_omg_seg
from models.lira.config import OMG_SEG_TINY, TEXT_TO_VISION_TINY, MaskLossConfig
from models.lira.losses import seg_mask_losses
from models.lira.processor import postprocess_mask_logits
from models.lira.projector import TextToVisionProjector
from models.lira.segmentation import (
    OmgSegEncoder,
    OmgSegMemory,
    mask_pool,
    multi_scale_deformable_attention,
    panoptic_pixel_queries,
    sine_positional_encoding,
    sine_positional_encoding_3d,
    space_to_depth,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "lira_seg_tiny"


@pytest.fixture(scope="module")
def encoder() -> OmgSegEncoder:
    model = OmgSegEncoder(OMG_SEG_TINY).eval()
    load_omg_seg(model, FIXTURE / "omg_seg.safetensors", FIXTURE / "ov_classifier.safetensors")
    return model


# --- deformable attention -------------------------------------------------------------------


def _sample(value_map: list[list[float]], points: list[tuple[float, float]], weights: list[float]) -> float:
    """One head, one query, one level, d = 1."""
    h, w = len(value_map), len(value_map[0])
    value = torch.tensor(value_map).reshape(1, h * w, 1, 1)
    locations = torch.tensor(points).view(1, 1, 1, 1, len(points), 2)
    attention = torch.tensor(weights).view(1, 1, 1, 1, len(points))
    return float(multi_scale_deformable_attention(value, [(h, w)], locations, attention))


@pytest.mark.parametrize(
    ("point", "expected"),
    [
        ((0.25, 0.25), 1.0),  # centre of pixel (0, 0)
        ((0.75, 0.25), 2.0),  # x first: pixel (row 0, col 1)
        ((0.25, 0.75), 3.0),
        ((0.5, 0.5), 2.5),  # mean of the four pixels
        ((0.5, 0.25), 1.5),
        ((0.0, 0.0), 0.25),  # corner: three of four neighbours are zero padding
        ((1.2, 0.5), 0.3),  # x at pixel 1.9: 0.1 of the right column's mean (3), rest padding
        ((1.3, 0.5), 0.0),  # beyond half a pixel outside
    ],
)
def test_deformable_sampling_is_bilinear_with_zero_padding(point: tuple[float, float], expected: float) -> None:
    assert _sample([[1.0, 2.0], [3.0, 4.0]], [point], [1.0]) == pytest.approx(expected, abs=1e-6)


def test_deformable_attention_weights_levels_and_heads() -> None:
    # Level 0: 2×2 map; level 1: 1×1 map. Two heads of width 1.
    level0 = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])  # (h·w, heads)
    level1 = torch.tensor([[100.0, 1000.0]])
    value = torch.cat([level0, level1]).view(1, 5, 2, 1)
    locations = torch.zeros(1, 1, 2, 2, 2, 2)
    locations[0, 0, :, 0, 0] = torch.tensor([0.25, 0.25])  # level 0, point 0: pixel (0, 0)
    locations[0, 0, :, 0, 1] = torch.tensor([0.75, 0.75])  # level 0, point 1: pixel (1, 1)
    locations[0, 0, :, 1, :] = 0.5  # level 1: its only pixel
    weights = torch.tensor([0.1, 0.2, 0.3, 0.4]).view(1, 1, 1, 2, 2).repeat(1, 1, 2, 1, 1)
    out = multi_scale_deformable_attention(value, [(2, 2), (1, 1)], locations, weights)
    head0 = 0.1 * 1 + 0.2 * 4 + (0.3 + 0.4) * 100
    head1 = 0.1 * 10 + 0.2 * 40 + (0.3 + 0.4) * 1000
    torch.testing.assert_close(out, torch.tensor([[[head0, head1]]]))


# --- small tensor functions -----------------------------------------------------------------


def test_space_to_depth_channel_order() -> None:
    c, r = 3, 2
    features = torch.arange(c * 4 * 6, dtype=torch.float32).view(1, c, 4, 6)
    out = space_to_depth(features, r)
    assert out.shape == (1, r * r * c, 2, 3)
    for rh in range(r):
        for rw in range(r):
            for ch in range(c):
                for y in range(2):
                    for x in range(3):
                        assert out[0, (rh * r + rw) * c + ch, y, x] == features[0, ch, y * r + rh, x * r + rw]
    with pytest.raises(ValueError, match="not divisible"):
        space_to_depth(torch.zeros(1, 1, 3, 4), 2)


def test_sine_encodings_by_hand() -> None:
    two_pi, eps = 2 * math.pi, 1e-6
    y = 1 / (1 + eps) * two_pi
    x = 2 / (2 + eps) * two_pi  # second column of a 1×2 map
    # num_feats = 4: frequencies 10000^(2·⌊i/2⌋/4) = 1, 1, 100, 100.
    expected_2d = [math.sin(y), math.cos(y), math.sin(y / 100), math.cos(y / 100)]
    expected_2d += [math.sin(x), math.cos(x), math.sin(x / 100), math.cos(x / 100)]
    pos = sine_positional_encoding(1, 2, 4)
    assert pos.shape == (1, 8, 1, 2)
    torch.testing.assert_close(pos[0, :, 0, 1], torch.tensor(expected_2d), rtol=0, atol=1e-6)
    # 3-D: plus the frame term over 8 channels, frequencies 10000^(2·⌊i/2⌋/8) = 1, 1, 10, 10, 100, ...
    z = 1 / (1 + eps) * two_pi
    frame = []
    for k in range(4):
        frame += [math.sin(z / 10**k), math.cos(z / 10**k)]
    pos3 = sine_positional_encoding_3d(1, 2, 4)
    assert pos3.shape == (1, 1, 8, 1, 2)
    expected_3d = torch.tensor(expected_2d) + torch.tensor(frame)
    torch.testing.assert_close(pos3[0, 0, :, 0, 1], expected_3d, rtol=0, atol=1e-6)


def test_mask_pool_by_hand() -> None:
    features = torch.tensor([[[1.0, 2.0], [3.0, 4.0]], [[10.0, 20.0], [30.0, 40.0]]])[None]
    logits = torch.tensor([[[5.0, -1.0], [-1.0, 0.5]], [[-1.0, -2.0], [-3.0, 0.0]]])[None]
    pooled = mask_pool(features, logits)
    torch.testing.assert_close(pooled[0, 0], torch.tensor([2.5, 25.0]))  # pixels (0,0) and (1,1)
    torch.testing.assert_close(pooled[0, 1], torch.zeros(2))  # no positive logit (0 is not > 0)


def test_panoptic_pixel_queries_by_hand() -> None:
    class_logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # 2 classes + background
    mask_logits = torch.stack([torch.full((2, 2), 3.0), torch.full((2, 2), -1.0)])
    query_pos_feat = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, -2.0]])
    pixel_query, attn_mask = panoptic_pixel_queries(class_logits, mask_logits, query_pos_feat, (8, 8), (2, 2))
    score0 = math.exp(2) / (math.exp(2) + 2)
    score1 = 1 / 3
    p0 = (0.5 * score0 + 0.5) / (1 + math.exp(-3))
    p1 = (0.5 * score1 + 0.5) / (1 + math.exp(1))
    w0 = math.exp(p0) / (math.exp(p0) + math.exp(p1))
    expected = w0 * query_pos_feat[0] + (1 - w0) * query_pos_feat[1]
    assert pixel_query.shape == (2, 2, 3)
    torch.testing.assert_close(pixel_query, expected.expand(2, 2, 3), rtol=1e-5, atol=1e-6)
    assert attn_mask.tolist() == [[False] * 4, [True] * 4]


def test_panoptic_pixel_queries_chunking_changes_nothing() -> None:
    generator = torch.Generator().manual_seed(0)
    class_logits = torch.randn(7, 4, generator=generator)
    mask_logits = torch.randn(7, 12, 12, generator=generator) * 4
    query_pos_feat = torch.randn(7, 6, generator=generator)
    whole = panoptic_pixel_queries(class_logits, mask_logits, query_pos_feat, (48, 48), (3, 3))
    one_by_one = panoptic_pixel_queries(class_logits, mask_logits, query_pos_feat, (48, 48), (3, 3), chunk_elements=1)
    assert torch.equal(whole[0], one_by_one[0]) and torch.equal(whole[1], one_by_one[1])


@pytest.mark.parametrize(
    ("size", "expected_rows"),
    [
        ((6, 4), [1, 2, 3, 4]),  # w > h: pad 2, rows [1, 5)
        ((6, 3), [1, 2, 3]),  # w > h: pad 3, 1 before and 2 after
        ((6, 6), [0, 1, 2, 3, 4, 5]),
    ],
)
def test_seg_masks_crop_rows(size: tuple[int, int], expected_rows: list[int]) -> None:
    rows = torch.arange(6, dtype=torch.float32).view(6, 1).expand(6, 6)
    logits = (rows - 2.5)[None, None]  # positive from row 3 on; 6×6 → 6×6 resize is the identity
    masks = postprocess_mask_logits(logits, size[1], size[0])
    assert masks.shape == (1, size[1], size[0])
    assert masks[0, :, 0].tolist() == [r >= 3 for r in expected_rows]


def test_seg_masks_crop_columns_when_taller() -> None:
    cols = torch.arange(6, dtype=torch.float32).view(1, 6).expand(6, 6)
    masks = postprocess_mask_logits((cols - 2.5)[None, None], 6, 4)
    assert masks.shape == (1, 6, 4)
    assert masks[0, 0].tolist() == [c >= 3 for c in [1, 2, 3, 4]]


def test_seg_masks_threshold_after_upsampling() -> None:
    # 2×2 → 4×4 bilinear: columns −1, −0.5, 0.5, 1; rows kept 1..2 of 4 (w = 4, h = 2).
    logits = torch.tensor([[-1.0, 1.0], [-1.0, 1.0]])[None, None]
    masks = postprocess_mask_logits(logits, 2, 4)
    assert masks[0].tolist() == [[False, False, True, True]] * 2
    with pytest.raises(ValueError, match=r"shape \(N, 1, h, w\)"):
        postprocess_mask_logits(torch.zeros(1, 2, 4, 4), 4, 4)


# --- encoder behaviour ------------------------------------------------------------------------


def test_batch_of_two_equals_single_images(encoder: OmgSegEncoder) -> None:
    images = torch.randn(2, 3, 128, 192, generator=torch.Generator().manual_seed(1))
    both = encoder.encode(images)
    for b in range(2):
        single = encoder.encode(images[b : b + 1])
        torch.testing.assert_close(both.clip_feature[b], single.clip_feature[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(both.query_pos_feat[b], single.query_pos_feat[0], rtol=1e-5, atol=1e-5)
        assert torch.equal(both.attn_mask[b], single.attn_mask[0])
    assert both.clip_feature.shape == (2, 2 * 3, OMG_SEG_TINY.clip_feature_channels)


def test_seg_queries_decode_against_the_indexed_image(encoder: OmgSegEncoder) -> None:
    """`batch_idxs` picks the memory explicitly; nothing is cached between calls (§15.16)."""
    images = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    memory = encoder.encode(images).memory
    queries = torch.randn(3, 128, generator=torch.Generator().manual_seed(3))
    mixed = encoder.decode_seg_queries(queries, memory, torch.tensor([1, 0, 1])).predictions[-1].mask_logits

    def single(b: int) -> OmgSegMemory:
        return OmgSegMemory(memory.mask_features[b : b + 1], tuple(m[b : b + 1] for m in memory.multi_scale_memories))

    alone0 = encoder.decode_seg_queries(queries[1:2], single(0), torch.tensor([0])).predictions[-1].mask_logits
    alone1 = encoder.decode_seg_queries(queries[[0, 2]], single(1), torch.tensor([0, 0])).predictions[-1].mask_logits
    torch.testing.assert_close(mixed[[0, 2]], alone1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(mixed[1:2], alone0, rtol=1e-5, atol=1e-5)
    swapped = encoder.decode_seg_queries(queries[1:2], memory, torch.tensor([1])).predictions[-1].mask_logits
    assert not torch.allclose(swapped, alone0)


def test_seg_decoding_returns_all_maps_and_passes_gradients(encoder: OmgSegEncoder) -> None:
    memory = encoder.encode(torch.randn(1, 3, 128, 128)).memory
    queries = torch.randn(2, 128, requires_grad=True)
    decoded = encoder.decode_seg_queries(queries, memory, torch.zeros(2, dtype=torch.long))
    assert len(decoded.predictions) == OMG_SEG_TINY.decoder.num_layers + 1
    assert all(p.mask_logits.shape == (2, 1, 32, 32) for p in decoded.predictions)
    sum(p.mask_logits.sum() for p in decoded.predictions).backward()
    assert queries.grad is not None and queries.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in encoder.parameters())
    last_only = encoder.decode_seg_queries(queries, memory, torch.zeros(2, dtype=torch.long), keep_intermediate=False)
    assert len(last_only.predictions) == 1
    torch.testing.assert_close(last_only.predictions[0].mask_logits, decoded.predictions[-1].mask_logits)


def test_low_precision_runs_without_nan() -> None:
    model = OmgSegEncoder(OMG_SEG_TINY)
    load_omg_seg(model, FIXTURE / "omg_seg.safetensors", FIXTURE / "ov_classifier.safetensors")
    model.to(torch.bfloat16)
    images = torch.randn(1, 3, 192, 192, generator=torch.Generator().manual_seed(0))
    for _ in range(3):
        outputs = model.encode(images)
        assert outputs.clip_feature.dtype == torch.bfloat16
        assert torch.isfinite(outputs.clip_feature).all() and torch.isfinite(outputs.query_pos_feat).all()
    queries = torch.randn(2, 128, dtype=torch.bfloat16)
    logits = model.decode_seg_queries(queries, outputs.memory, torch.zeros(2, dtype=torch.long)).predictions[-1]
    assert torch.isfinite(logits.mask_logits).all()


def test_bad_inputs_are_named(encoder: OmgSegEncoder) -> None:
    with pytest.raises(ValueError, match="multiple of 64"):
        encoder.encode(torch.zeros(1, 3, 100, 128))
    with pytest.raises(ValueError, match=r"expected \(B, 3, H, W\)"):
        encoder.encode(torch.zeros(3, 128, 128))
    memory = encoder.encode(torch.zeros(1, 3, 128, 128)).memory
    with pytest.raises(ValueError, match=r"expected \(N, 128\) queries"):
        encoder.decode_seg_queries(torch.zeros(2, 64), memory, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"batch_idxs must lie in \[0, 1\)"):
        encoder.decode_seg_queries(torch.zeros(2, 128), memory, torch.tensor([0, 1]))


def test_one_step_through_the_frozen_decoder_lowers_the_mask_losses(encoder: OmgSegEncoder) -> None:
    """Training path of §6/§8: gradients reach `projector_text2vision` through the frozen decoder."""
    torch.manual_seed(0)
    text_to_vision = TextToVisionProjector(TEXT_TO_VISION_TINY)
    memory = encoder.encode(torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(4))).memory
    hidden = torch.randn(2, 64, generator=torch.Generator().manual_seed(5))
    gt = torch.zeros(2, 128, 128)
    gt[0, 20:90, 10:70] = 1
    gt[1, 60:120, 40:128] = 1
    optimizer = torch.optim.SGD(text_to_vision.parameters(), lr=0.003)

    def total() -> torch.Tensor:
        queries = text_to_vision(hidden)
        predictions = encoder.decode_seg_queries(queries, memory, torch.zeros(2, dtype=torch.long)).predictions
        # Uniform points only, same seed: both evaluations read the same points.
        config = MaskLossConfig(num_points=2000, importance_sample_ratio=0.0)
        generator = torch.Generator().manual_seed(6)
        losses = seg_mask_losses([p.mask_logits for p in predictions], gt, config, generator=generator)
        return losses.dice + losses.mask

    before = total()
    assert torch.isfinite(before)
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = total()
    assert float(after) < float(before.detach())
