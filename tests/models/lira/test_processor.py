"""LIRA image inputs against the original scripts' arithmetic (lira-model.md §6.4, §7.2, §12).

Expected values come from three independent places:
- hand-worked tile grids, crop offsets and pixel formulas;
- a numpy re-implementation of Pillow's fixed-point bicubic resampling in the pass order of Pillow 10.2 (the
  original environment), which Pillow 13 no longer follows for every size;
- SHA-256 digests of the ORIGINAL functions' outputs (``dynamic_preprocess``, ``expand2square`` +
  transformers 4.37.2 ``CLIPImageProcessor``, ``extract_object_with_black_background``) run under the
  original's pinned Pillow 10.2.0 on the deterministic images of :func:`pattern`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance

from models.lira.processor import (
    OMG_PAD_COLOR,
    ORIGINAL_TILES,
    TaskTiles,
    TileSetting,
    collate_images,
    dynamic_tiles,
    expand_to_square,
    highlight_crop,
    postprocess_mask_logits,
    preprocess_internvl,
    preprocess_omg,
    process_image,
    resize_bicubic,
    select_tile_grid,
)


def pattern(width: int, height: int) -> np.ndarray:
    """A deterministic ``(height, width, 3)`` uint8 image with plenty of high-frequency content."""
    y, x = np.mgrid[0:height, 0:width]
    channels = [(x * 7 + y * 13) % 256, (x * y + 3 * x) % 256, (x * x + y * 5 + 11) % 256]
    return np.stack(channels, -1).astype(np.uint8)


def digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


# ---------------------------------------------------------------------------
# Pillow 10.2 bicubic resampling, re-implemented (src/libImaging/Resample.c)
# ---------------------------------------------------------------------------

PRECISION_BITS = 22  # 32 - 8 - 2


def _bicubic(x: float) -> float:
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _fixed_point_weights(in_size: int, out_size: int) -> np.ndarray:
    """``precompute_coeffs`` + ``normalize_coeffs_8bpc`` as an ``(out, in)`` int matrix."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    inverse = 1.0 / filterscale
    weights = np.zeros((out_size, in_size), dtype=np.int64)
    for out_index in range(out_size):
        center = (out_index + 0.5) * scale
        lo = max(int(center - support + 0.5), 0)
        hi = min(int(center + support + 0.5), in_size)
        taps = [_bicubic((x + lo - center + 0.5) * inverse) for x in range(hi - lo)]
        total = sum(taps)
        for x, tap in enumerate(taps):
            tap = tap / total if total != 0.0 else tap
            scaled = tap * (1 << PRECISION_BITS)
            weights[out_index, lo + x] = int(scaled - 0.5) if tap < 0 else int(scaled + 0.5)
    return weights


def _one_pass(pixels: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    moved = np.moveaxis(pixels.astype(np.int64), axis, -1)
    accumulated = moved @ weights.T + (1 << (PRECISION_BITS - 1))
    return np.moveaxis(np.clip(accumulated >> PRECISION_BITS, 0, 255).astype(np.uint8), -1, axis)


def pillow10_resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of an ``(H, W, C)`` uint8 array: horizontal pass, uint8 rounding, vertical pass."""
    if pixels.shape[1] != width:
        pixels = _one_pass(pixels, _fixed_point_weights(pixels.shape[1], width), axis=1)
    if pixels.shape[0] != height:
        pixels = _one_pass(pixels, _fixed_point_weights(pixels.shape[0], height), axis=0)
    return pixels


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((40, 300), (64, 20)),  # height shrinks far more than width: Pillow 13 would go vertical-first
        ((97, 1201), (448, 448)),  # same, as a thumbnail
        ((333, 517), (448, 448)),
        ((640, 480), (896, 448)),
        ((1000, 37), (896, 448)),
        ((61, 61), (1024, 1024)),
        ((7, 5), (13, 200)),
        ((50, 20), (50, 9)),  # one axis only
    ],
)
def test_resize_bicubic_is_pillow_10_2(source: tuple[int, int], target: tuple[int, int]) -> None:
    pixels = pattern(*source)
    ours = np.asarray(resize_bicubic(Image.fromarray(pixels), target))
    assert np.array_equal(ours, pillow10_resize(pixels, *target))


def test_resize_bicubic_same_size_is_a_copy() -> None:
    image = Image.fromarray(pattern(30, 20))
    resized = resize_bicubic(image, (30, 20))
    assert resized is not image
    assert np.array_equal(np.asarray(resized), pattern(30, 20))


# ---------------------------------------------------------------------------
# Tile grids (dynamic_preprocess)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "setting", "grid"),
    [
        # lira-model.md §12.2 table
        ((640, 480), TileSetting(1, 6), (3, 2)),
        ((640, 480), TileSetting(4, 6), (3, 2)),
        ((640, 480), TileSetting(4, 8), (3, 2)),
        ((640, 480), TileSetting(4, 12), (4, 3)),
        ((480, 640), TileSetting(1, 6), (2, 3)),
        ((480, 640), TileSetting(4, 12), (3, 4)),
        ((640, 427), TileSetting(1, 6), (3, 2)),
        ((640, 427), TileSetting(4, 12), (3, 2)),
        ((640, 640), TileSetting(1, 6), (2, 2)),
        ((640, 640), TileSetting(4, 12), (2, 2)),
        ((1024, 1024), TileSetting(4, 8), (2, 2)),
        ((1024, 1024), TileSetting(4, 12), (3, 3)),
        # a square ties (1, 1) with (2, 2): the larger grid needs w*h > 0.5 * 448^2 * 4 = 401408 (634^2 = 401956)
        ((633, 633), TileSetting(1, 6), (1, 1)),
        ((634, 634), TileSetting(1, 6), (2, 2)),
        # aspect 1.25 is equally far (0.25) from 1/1, 2/2 and 3/2: thresholds 401408 (2x2) and 602112 (3x2)
        ((500, 400), TileSetting(1, 6), (1, 1)),
        ((800, 640), TileSetting(1, 6), (2, 2)),
        ((1000, 800), TileSetting(1, 6), (3, 2)),
        # extreme shapes; the local crop is always one tile
        ((1000, 37), TileSetting(1, 6), (6, 1)),
        ((97, 1201), TileSetting(4, 6), (1, 6)),
        ((97, 1201), TileSetting(1, 1), (1, 1)),
    ],
)
def test_select_tile_grid(size: tuple[int, int], setting: TileSetting, grid: tuple[int, int]) -> None:
    assert select_tile_grid(*size, setting) == grid


def _grid_in_order(width: int, height: int, setting: TileSetting, same_count_order: int) -> tuple[int, int]:
    """The selection rule with grids of equal tile count visited by ascending (1) or descending (-1) columns."""
    grids = [
        (i, n // i)
        for n in range(setting.min_tiles, setting.max_tiles + 1)
        for i in sorted(range(1, n + 1), key=lambda c: same_count_order * c)
        if n % i == 0
    ]
    best, best_diff = (1, 1), math.inf
    for columns, rows in grids:
        diff = abs(width / height - columns / rows)
        if diff < best_diff:
            best, best_diff = (columns, rows), diff
        elif diff == best_diff and width * height > 0.5 * 448 * 448 * columns * rows:
            best = (columns, rows)
    return best


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(TaskTiles)])
def test_tile_grid_does_not_depend_on_the_order_of_grids_with_equal_tile_count(field: str) -> None:
    # The original visits equal-count grids in Python set order; for every shipped setting no tie can pair
    # two such grids, so the result is the same for both orders on every aspect ratio where ties happen.
    setting: TileSetting = getattr(ORIGINAL_TILES, field)
    ratios = sorted({c / r for c in range(1, 13) for r in range(1, 13)})
    heights = [7, 200, 600, 1500]
    for low, high in itertools.pairwise(ratios):
        for height in heights:
            width = max(1, round(height * (low + high) / 2))
            expected = _grid_in_order(width, height, setting, 1)
            assert _grid_in_order(width, height, setting, -1) == expected
            assert select_tile_grid(width, height, setting) == expected


def test_dynamic_tiles_row_major_then_thumbnail() -> None:
    # 1344 x 896 is exactly 3 x 2 tiles, so the grid resize is the identity and each tile is one colour.
    pixels = np.zeros((896, 1344, 3), dtype=np.uint8)
    for row in range(2):
        for column in range(3):
            pixels[row * 448 : (row + 1) * 448, column * 448 : (column + 1) * 448] = (10 * column, 100 * row, 7)
    tiles = dynamic_tiles(Image.fromarray(pixels), TileSetting(1, 6))
    assert len(tiles) == 7
    for index, tile in enumerate(tiles[:6]):
        row, column = divmod(index, 3)
        assert tile.size == (448, 448)
        assert np.all(np.asarray(tile) == (10 * column, 100 * row, 7))
    assert np.array_equal(np.asarray(tiles[6]), pillow10_resize(pixels, 448, 448))


def test_single_tile_has_no_thumbnail() -> None:
    tiles = preprocess_internvl(Image.fromarray(pattern(61, 23)), ORIGINAL_TILES.local_crop)
    assert tiles.grid == (1, 1)
    assert not tiles.has_thumbnail
    assert tiles.pixel_values.shape == (1, 3, 448, 448)


@pytest.mark.parametrize(
    ("size", "setting", "count", "sha256"),
    [
        ((500, 2000), TileSetting(1, 6), 5, "ec75878efbe16ef62d10a98a59de473314f1b1ce432109380ad0e23e22b01124"),
        ((500, 130), TileSetting(4, 12), 5, "b180cc35300e880b8ee8936a87a3352b8b25a861492f8c11a25429e54b54eb0b"),
        ((640, 480), TileSetting(4, 8), 7, "cfad1dfa0bad414d916a63b34ba5dd7a8f66d9363ea91aa3aa7c55dad5f93c4f"),
        ((97, 1201), TileSetting(4, 6), 7, "597aac42d6a398313a9fd5f8261b5695ef73a70034a99876784dc3eb9f771163"),
    ],
)
def test_tiles_equal_the_original_dynamic_preprocess(
    size: tuple[int, int], setting: TileSetting, count: int, sha256: str
) -> None:
    tiles = np.stack([np.asarray(t) for t in dynamic_tiles(Image.fromarray(pattern(*size)), setting)])
    assert tiles.shape == (count, 448, 448, 3)
    assert digest(tiles) == sha256


def test_internvl_pixel_values_are_totensor_then_imagenet_normalize() -> None:
    image = Image.fromarray(pattern(640, 480))
    tiles = preprocess_internvl(image, TileSetting(4, 8))
    assert tiles.grid == (3, 2) and tiles.has_thumbnail and tiles.num_tiles == 7
    assert tiles.pixel_values.dtype == torch.float32 and tiles.pixel_values.shape == (7, 3, 448, 448)
    raw = np.stack([np.asarray(t) for t in dynamic_tiles(image, TileSetting(4, 8))]).astype(np.float32)
    mean = np.array([0.485, 0.456, 0.406], dtype=np.float32)
    std = np.array([0.229, 0.224, 0.225], dtype=np.float32)
    expected = ((raw / np.float32(255) - mean) / std).transpose(0, 3, 1, 2)
    assert np.array_equal(tiles.pixel_values.numpy(), expected)


def test_internvl_converts_to_rgb() -> None:
    gray = Image.fromarray(pattern(100, 60)[..., 0])
    tiles = preprocess_internvl(gray, TileSetting(1, 6))
    rgb = preprocess_internvl(gray.convert("RGB"), TileSetting(1, 6))
    assert torch.equal(tiles.pixel_values, rgb.pixel_values)


def test_task_tiles_follow_the_original_scripts() -> None:
    assert ORIGINAL_TILES.referring_segmentation == TileSetting(4, 12)
    assert ORIGINAL_TILES.grounded_caption == TileSetting(1, 6)
    assert ORIGINAL_TILES.pope == TileSetting(4, 8)
    assert ORIGINAL_TILES.chair == TileSetting(1, 6)
    assert ORIGINAL_TILES.attreval == TileSetting(4, 6)
    assert ORIGINAL_TILES.vqa == TileSetting(4, 6)
    assert ORIGINAL_TILES.local_crop == TileSetting(1, 1)
    custom = dataclasses.replace(ORIGINAL_TILES, pope=TileSetting(1, 12))
    assert custom.pope == TileSetting(1, 12) and custom.chair == TileSetting(1, 6)
    with pytest.raises(ValueError, match="min_tiles"):
        TileSetting(6, 4)


# ---------------------------------------------------------------------------
# OMG branch (expand2square + CLIPImageProcessor)
# ---------------------------------------------------------------------------


def test_pad_colour_is_int_255_times_the_config_mean() -> None:
    # 255 * (0.4814, 0.4578, 0.4082) = (122.757, 116.739, 104.091)
    assert OMG_PAD_COLOR == (122, 116, 104)


@pytest.mark.parametrize(
    ("size", "offset"),
    [((5, 2), (0, 1)), ((6, 2), (0, 2)), ((2, 5), (1, 0)), ((2, 6), (2, 0)), ((4, 4), (0, 0))],
)
def test_expand_to_square_pastes_at_floor_offsets(size: tuple[int, int], offset: tuple[int, int]) -> None:
    width, height = size
    pixels = np.full((height, width, 3), 7, dtype=np.uint8)
    square = np.asarray(expand_to_square(Image.fromarray(pixels)))
    side = max(size)
    expected = np.empty((side, side, 3), dtype=np.uint8)
    expected[:] = (122, 116, 104)
    left, top = offset
    expected[top : top + height, left : left + width] = 7
    assert np.array_equal(square, expected)


def test_omg_values_follow_clip_image_processor_arithmetic() -> None:
    # A 1024 x 1024 input needs no resize: each value is float32(v * (1/255)) normalised in float32.
    pixels = pattern(1024, 1024)
    values = preprocess_omg(Image.fromarray(pixels))
    assert values.shape == (3, 1024, 1024) and values.dtype == torch.float32
    for (y, x, c), mean, std in [
        ((0, 0, 0), 0.4814, 0.2686),
        ((5, 300, 1), 0.4578, 0.2613),
        ((1023, 77, 2), 0.4082, 0.2757),
    ]:
        v = int(pixels[y, x, c])
        expected = (np.float32(v * (1 / 255)) - np.float32(mean)) / np.float32(std)
        assert values[c, y, x].item() == float(expected)


@pytest.mark.parametrize(
    ("size", "sha256"),
    [
        ((61, 23), "cda13a083b5aa0aff246b9d160c00a33841b047b9784a7a2fa597a72df75b416"),
        ((23, 61), "5355e514305aafd6b063e2628823525647c0a880201d48eb00b8968bd0bb5578"),
    ],
)
def test_omg_input_equals_the_original_clip_processor(size: tuple[int, int], sha256: str) -> None:
    values = preprocess_omg(Image.fromarray(pattern(*size)))
    assert digest(values.numpy()) == sha256


# ---------------------------------------------------------------------------
# Mask post-processing (upsample, un-pad, threshold)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "first_kept"),
    [
        (9, 4, 2),  # landscape, odd difference 5: rows [2, 6)
        (10, 4, 3),  # landscape, even difference 6: rows [3, 7)
        (4, 9, 2),  # portrait, odd: columns [2, 6)
        (4, 10, 3),  # portrait, even: columns [3, 7)
        (5, 5, 0),
    ],
)
def test_postprocess_crops_the_centred_padding(width: int, height: int, first_kept: int) -> None:
    side = max(width, height)
    # logits already at S x S (upsampling to the same size is the identity); mark the first image row/column
    logits = torch.full((1, 1, side, side), -4.0)
    if width >= height:
        logits[0, 0, first_kept] = 4.0
    else:
        logits[0, 0, :, first_kept] = 4.0
    masks = postprocess_mask_logits(logits, height, width)
    assert masks.shape == (1, height, width) and masks.dtype == torch.bool
    expected = torch.zeros(1, height, width, dtype=torch.bool)
    if width >= height:
        expected[0, 0] = True
    else:
        expected[0, :, 0] = True
    assert torch.equal(masks, expected)
    # and nothing outside the kept band leaks in: the padding rows/columns are dropped entirely
    band = torch.full((1, side, side), 4.0)
    if width > height:
        band[0, :first_kept] = -4.0
        band[0, first_kept + height :] = -4.0
    elif height > width:
        band[0, :, :first_kept] = -4.0
        band[0, :, first_kept + width :] = -4.0
    assert bool(postprocess_mask_logits(band, height, width).all())


def test_postprocess_upsamples_logits_before_thresholding() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 256, 256)
    width, height = 640, 427  # S = 640, padding 213 = 106 above + 107 below
    up = F.interpolate(logits, size=(640, 640), mode="bilinear", align_corners=False)[:, 0]
    expected = up[:, 106:533] > 0
    assert torch.equal(postprocess_mask_logits(logits, height, width), expected)
    assert torch.equal(postprocess_mask_logits(logits[:, 0], height, width), expected)


def test_postprocess_thresholds_sigmoid_in_the_logits_dtype() -> None:
    # sigmoid(1e-3) = 0.50025 is 0.5 in bfloat16 (spacing 2^-8 near 0.5), so the original's bf16 check fails it
    tiny = torch.full((1, 1, 3, 3), 1e-3)
    assert bool(postprocess_mask_logits(tiny, 3, 3).all())
    assert not bool(postprocess_mask_logits(tiny.to(torch.bfloat16), 3, 3).any())


def test_postprocess_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(N, 1, h, w\)"):
        postprocess_mask_logits(torch.zeros(2, 3, 8, 8), 4, 4)


# ---------------------------------------------------------------------------
# ILVC highlight crop
# ---------------------------------------------------------------------------


def test_pil_brightness_rounds_down() -> None:
    ramp = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    dimmed = np.asarray(ImageEnhance.Brightness(Image.fromarray(ramp)).enhance(0.3))
    assert np.array_equal(dimmed[0, :, 0].astype(int), (3 * np.arange(256)) // 10)


def _expected_highlight(pixels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rows, columns = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, columns.min(), columns.max() + 1
    crop = pixels[top:bottom, left:right].astype(int)
    inside = mask[top:bottom, left:right, None] != 0
    return np.where(inside, crop, (3 * crop) // 10).astype(np.uint8)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_highlight_crop_matches_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (40, 57, 3), dtype=np.uint8)
    mask = np.zeros((40, 57), dtype=np.uint8)
    top, left = rng.integers(0, 30), rng.integers(0, 45)
    mask[top : top + 9, left : left + 11] = rng.integers(0, 2, (9, 11)).astype(np.uint8)[: 40 - top, : 57 - left]
    mask[top, left] = 1
    result = highlight_crop(Image.fromarray(pixels), mask)
    assert result.mode == "RGB"
    assert np.array_equal(np.asarray(result), _expected_highlight(pixels, mask))
    assert np.array_equal(np.asarray(highlight_crop(Image.fromarray(pixels), mask.astype(bool))), np.asarray(result))


def test_highlight_crop_single_pixel_and_empty_mask() -> None:
    pixels = pattern(20, 10)
    mask = np.zeros((10, 20), dtype=np.uint8)
    mask[3, 17] = 1
    single = np.asarray(highlight_crop(Image.fromarray(pixels), mask))
    assert single.shape == (1, 1, 3) and np.array_equal(single[0, 0], pixels[3, 17])
    empty = np.asarray(highlight_crop(Image.fromarray(pixels), np.zeros((10, 20), dtype=np.uint8)))
    assert np.array_equal(empty, (3 * pixels.astype(int)) // 10)


def test_highlight_crop_equals_the_original() -> None:
    y, x = np.mgrid[0:23, 0:61]
    mask = (((x + y) % 3 == 0) & (x >= 10) & (x < 40) & (y >= 5) & (y < 20)).astype(np.uint8)
    result = np.asarray(highlight_crop(Image.fromarray(pattern(61, 23)), mask))
    assert result.shape == (15, 30, 3)
    assert digest(result) == "b5a1f1f56371613ff9e624523c897b05004b1cb2a07b0d7dd2c953f98809620d"


def test_highlight_crop_rejects_mismatched_mask() -> None:
    with pytest.raises(ValueError, match="does not match"):
        highlight_crop(Image.fromarray(pattern(20, 10)), np.ones((20, 10)))


# ---------------------------------------------------------------------------
# Both branches, batches
# ---------------------------------------------------------------------------


def test_process_and_collate() -> None:
    first = process_image(Image.fromarray(pattern(640, 480)), TileSetting(4, 8))
    second = process_image(Image.fromarray(pattern(61, 23)), ORIGINAL_TILES.local_crop)
    assert first.original_size == (640, 480) and first.internvl.num_tiles == 7
    batch = collate_images([first, second])
    assert batch.omg_pixel_values.shape == (2, 3, 1024, 1024)
    assert batch.internvl_pixel_values.shape == (8, 3, 448, 448)
    assert batch.tiles_per_image == (7, 1)
    assert batch.original_sizes == ((640, 480), (61, 23))
    first_back, second_back = torch.split(batch.internvl_pixel_values, list(batch.tiles_per_image))
    assert torch.equal(first_back, first.internvl.pixel_values)
    assert torch.equal(second_back, second.internvl.pixel_values)
    assert torch.equal(batch.omg_pixel_values[1], second.omg_pixel_values)
    with pytest.raises(ValueError, match="empty"):
        collate_images([])
