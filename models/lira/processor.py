"""LIRA image inputs, as the original evaluation scripts build them, without torchvision.

One image feeds two branches (lira-model.md §12):

- **InternVL branch**: ``dynamic_preprocess`` tiling into 448-px tiles (plus a thumbnail when there is more
  than one tile), each tile ToTensor + ImageNet normalisation → ``(T, 3, 448, 448)``.
- **OMG branch**: pad to a square with the CLIP mean colour, ``CLIPImageProcessor`` (bicubic 1024², rescale,
  CLIP normalisation) → ``(3, 1024, 1024)``.

Plus the inverse geometry for ``[SEG]`` masks (:func:`postprocess_mask_logits`, §6.4) and the ILVC
"highlight" crop fed back to the model after ``<image_id>`` (:func:`highlight_crop`, §7.2).

Resizing note: the original ran Pillow 10.2, whose bicubic ``Image.resize`` does the horizontal pass and then
the vertical pass, rounding to uint8 in between. Pillow 13 does the vertical pass first when the height
shrinks much more than the width, which changes up to ~30 % of the pixels of such resizes. Every resize
here is therefore done as two explicit one-axis resizes in the old order (:func:`resize_bicubic`), which is
bit-identical to Pillow 10.2 on every Pillow version whose one-axis resampling is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageEnhance

TILE_SIZE = 448
"""InternVL tile side in pixels."""

OMG_SIZE = 1024
"""Side of the square OMG-Seg input."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

OMG_IMAGE_MEAN = (0.4814, 0.4578, 0.4082)
"""``image_mean`` of the ``CLIPImageProcessor`` in LIRA's configs (four decimals, as written there)."""
OMG_IMAGE_STD = (0.2686, 0.2613, 0.2757)
OMG_PAD_COLOR: tuple[int, int, int] = tuple(int(255 * m) for m in OMG_IMAGE_MEAN)  # type: ignore[assignment]
"""Square-padding colour, ``int(255 * mean)`` per channel as the scripts compute it: (122, 116, 104)."""

HIGHLIGHT_BRIGHTNESS = 0.3
"""``ImageEnhance.Brightness`` factor of the background in the ILVC crop."""


# ---------------------------------------------------------------------------
# Tile settings per task (lira-model.md §12.3)
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TileSetting:
    """Bounds on the InternVL tile grid: ``min_tiles <= columns * rows <= max_tiles``.

    ``use_thumbnail`` appends the whole image as one more tile when the grid has more than one tile.
    """

    min_tiles: int
    max_tiles: int
    use_thumbnail: bool = True

    def __post_init__(self) -> None:
        if not 1 <= self.min_tiles <= self.max_tiles:
            raise ValueError(f"need 1 <= min_tiles <= max_tiles, got {self.min_tiles}-{self.max_tiles}")


@dataclass(frozen=True, slots=True)
class TaskTiles:
    """Tile settings per entry point, defaulting to the original scripts'; override with ``dataclasses.replace``.

    Attributes:
        referring_segmentation: ``refcoco_lira.py`` (4-12, although training used 1-6).
        grounded_caption: ``gcg_lira.py`` (``--max_patch`` default 6).
        pope: ``eval_lira.sh`` POPE line.
        chair: ``eval_lira.sh`` CHAIR line.
        attreval: ``eval_lira.sh`` ``refcoco_attri`` line.
        vqa: ``eval_lira.sh`` VizWiz, GQA, VQAv2, AI2D, OKVQA, SEED, MMBench-en lines.
        demo: ``app_lira.py``.
        training: every training dataset (``max_patch=6``).
        local_crop: the ILVC crop, always one stretched tile.
    """

    referring_segmentation: TileSetting = TileSetting(4, 12)
    grounded_caption: TileSetting = TileSetting(1, 6)
    pope: TileSetting = TileSetting(4, 8)
    chair: TileSetting = TileSetting(1, 6)
    attreval: TileSetting = TileSetting(4, 6)
    vqa: TileSetting = TileSetting(4, 6)
    demo: TileSetting = TileSetting(1, 6)
    training: TileSetting = TileSetting(1, 6)
    local_crop: TileSetting = TileSetting(1, 1)


ORIGINAL_TILES = TaskTiles()
"""The original scripts' settings."""


# ---------------------------------------------------------------------------
# Resizing
# ---------------------------------------------------------------------------


def resize_bicubic(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image.resize(size, BICUBIC)`` exactly as Pillow 10.2 computes it (horizontal pass, then vertical).

    This is also what ``Image.resize(size)`` without a filter gives for RGB/L images (bicubic is Pillow's
    default there), what torchvision's ``Resize(..., BICUBIC)`` does to PIL images, and what
    ``CLIPImageProcessor`` does with ``resample=3``. ``size`` is ``(width, height)``.
    """
    width, height = size
    if image.size == (width, height):
        return image.copy()
    if image.width != width:
        image = image.resize((width, image.height), Image.Resampling.BICUBIC)
    if image.height != height:
        image = image.resize((width, height), Image.Resampling.BICUBIC)
    return image


# ---------------------------------------------------------------------------
# InternVL branch (omg_llava/dataset/utils/internvl_data.py)
# ---------------------------------------------------------------------------


def select_tile_grid(width: int, height: int, setting: TileSetting, tile_size: int = TILE_SIZE) -> tuple[int, int]:
    """The ``(columns, rows)`` grid ``dynamic_preprocess`` picks for a ``width`` x ``height`` image.

    Candidates are all grids with ``min_tiles <= columns * rows <= max_tiles``, scanned by tile count. The
    grid whose ``columns / rows`` is nearest to ``width / height`` wins; a later grid at exactly the same
    distance replaces it only when ``width * height > 0.5 * tile_size**2 * columns * rows``.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    lo, hi = setting.min_tiles, setting.max_tiles
    # Built and sorted as the original does (a set, then a stable sort by tile count), so that grids with
    # the same tile count are visited in the same order.
    candidates = sorted(
        {(i, j) for n in range(lo, hi + 1) for i in range(1, n + 1) for j in range(1, n + 1) if lo <= i * j <= hi},
        key=lambda grid: grid[0] * grid[1],
    )
    aspect_ratio = width / height
    area = width * height
    best_diff = float("inf")
    best = (1, 1)
    for columns, rows in candidates:
        diff = abs(aspect_ratio - columns / rows)
        if diff < best_diff:
            best_diff = diff
            best = (columns, rows)
        elif diff == best_diff and area > 0.5 * tile_size * tile_size * columns * rows:
            best = (columns, rows)
    return best


def dynamic_tiles(image: Image.Image, setting: TileSetting, tile_size: int = TILE_SIZE) -> list[Image.Image]:
    """``dynamic_preprocess``: the tiles of ``image`` in row-major order, then the thumbnail if any.

    The image is stretched to ``(tile_size * columns, tile_size * rows)`` and cut; with more than one tile and
    ``setting.use_thumbnail`` the whole image stretched to ``tile_size``² is appended.
    """
    columns, rows = select_tile_grid(image.width, image.height, setting, tile_size)
    resized = resize_bicubic(image, (tile_size * columns, tile_size * rows))
    tiles = []
    for index in range(columns * rows):
        left, top = (index % columns) * tile_size, (index // columns) * tile_size
        tiles.append(resized.crop((left, top, left + tile_size, top + tile_size)))
    if setting.use_thumbnail and len(tiles) != 1:
        tiles.append(resize_bicubic(image, (tile_size, tile_size)))
    return tiles


def _to_tensor_normalized(tile: Image.Image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """torchvision ``ToTensor`` then ``Normalize`` in float32: ``(x / 255 - mean) / std``, shape (3, H, W)."""
    pixels = torch.from_numpy(np.array(tile, dtype=np.uint8)).permute(2, 0, 1).contiguous()
    values = pixels.to(torch.float32).div(255)
    mean_t = torch.as_tensor(mean, dtype=torch.float32)[:, None, None]
    std_t = torch.as_tensor(std, dtype=torch.float32)[:, None, None]
    return values.sub_(mean_t).div_(std_t)


@dataclass(frozen=True, slots=True)
class InternVLTiles:
    """InternVL-branch input of one image.

    Attributes:
        pixel_values: ``(T, 3, tile, tile)`` float32, tiles in row-major order then the thumbnail.
        grid: ``(columns, rows)`` of the tile grid (``T = columns * rows + has_thumbnail``).
        has_thumbnail: whether the last tile is the thumbnail.
    """

    pixel_values: torch.Tensor
    grid: tuple[int, int]
    has_thumbnail: bool

    @property
    def num_tiles(self) -> int:
        return int(self.pixel_values.shape[0])


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")


def preprocess_internvl(image: Image.Image, setting: TileSetting, tile_size: int = TILE_SIZE) -> InternVLTiles:
    """``dynamic_preprocess`` + ``build_transform(is_train=False, pad2square=False, 'imagenet')`` of one image.

    The per-tile ``Resize((448, 448), BICUBIC)`` of the original transform is a no-op on tiles that already
    have that size, so it is not repeated here.
    """
    image = _rgb(image)
    grid = select_tile_grid(image.width, image.height, setting, tile_size)
    tiles = dynamic_tiles(image, setting, tile_size)
    pixel_values = torch.stack([_to_tensor_normalized(tile, IMAGENET_MEAN, IMAGENET_STD) for tile in tiles])
    return InternVLTiles(pixel_values=pixel_values, grid=grid, has_thumbnail=len(tiles) > grid[0] * grid[1])


# ---------------------------------------------------------------------------
# OMG branch (expand2square + CLIPImageProcessor)
# ---------------------------------------------------------------------------


def expand_to_square(image: Image.Image, fill: tuple[int, int, int] = OMG_PAD_COLOR) -> Image.Image:
    """``expand2square``: paste ``image`` on a ``max(w, h)`` square of ``fill``, centred with floor offsets."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    square = Image.new(image.mode, (side, side), fill)
    square.paste(image, ((side - width) // 2, (side - height) // 2))
    return square


def preprocess_omg(image: Image.Image, size: int = OMG_SIZE) -> torch.Tensor:
    """OMG-Seg input ``(3, size, size)`` float32: RGB, pad to square, bicubic resize, rescale, CLIP normalise.

    Arithmetic as transformers 4.37's ``CLIPImageProcessor``: ``uint8 * (1/255)`` in float64 cast to float32,
    then ``(x - mean) / std`` in float32. Its shortest-side resize and centre crop reduce to one resize on a
    square image.
    """
    square = expand_to_square(_rgb(image))
    resized = np.asarray(resize_bicubic(square, (size, size)), dtype=np.uint8)
    scaled = (resized * (1 / 255)).astype(np.float32)
    normalized = (scaled - np.array(OMG_IMAGE_MEAN, dtype=np.float32)) / np.array(OMG_IMAGE_STD, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(normalized.transpose(2, 0, 1)))


def postprocess_mask_logits(logits: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``[SEG]`` mask logits on the padded square → boolean masks on the original image, ``(N, height, width)``.

    As every original script does (lira-model.md §6.4): bilinearly upsample the logits
    (``align_corners=False``) to ``S x S`` with ``S = max(width, height)``; remove the centred padding, i.e.
    keep rows (landscape) or columns (portrait) ``[d // 2, d // 2 + min(width, height))`` with
    ``d = |width - height|``; then ``sigmoid > 0.5``. Everything runs in the dtype of ``logits``; the original
    evaluation ran in bfloat16, where ``sigmoid > 0.5`` and ``logit > 0`` differ for tiny logits.

    Args:
        logits: ``(N, 1, h, w)`` as the mask decoder returns them, or ``(N, h, w)``.
        height, width: size of the original (unpadded) image.
    """
    if logits.ndim == 3:
        logits = logits[:, None]
    if logits.ndim != 4 or logits.shape[1] != 1:
        raise ValueError(f"expected mask logits of shape (N, 1, h, w) or (N, h, w), got {tuple(logits.shape)}")
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    side = max(width, height)
    masks = F.interpolate(logits, size=(side, side), mode="bilinear", align_corners=False)[:, 0]
    offset = abs(width - height) // 2
    if width > height:
        masks = masks[:, offset : offset + height]
    elif height > width:
        masks = masks[:, :, offset : offset + width]
    return masks.sigmoid() > 0.5


# ---------------------------------------------------------------------------
# ILVC local crop (extract_object_with_black_background(image, mask, "highlight"))
# ---------------------------------------------------------------------------


def highlight_crop(image: Image.Image, mask: np.ndarray) -> Image.Image:
    """The region the model looks at after ``<image_id>``: the mask's bounding box, background darkened.

    The image is cropped to the bounding box of the mask (PIL ``getbbox``: left, top, right + 1, bottom + 1);
    the whole crop is dimmed with ``ImageEnhance.Brightness(0.3)`` (each channel ``floor(0.3 * v)``); the
    pixels under the mask are pasted back at full brightness. An empty mask has no bounding box, so the
    whole image is returned, all of it dimmed (lira-model.md §7.2).

    Args:
        image: the original image (converted to RGB if needed).
        mask: ``(height, width)`` array; non-zero marks the object.
    """
    image = _rgb(image)
    mask = np.asarray(mask)
    if mask.shape != (image.height, image.width):
        raise ValueError(
            f"mask shape {mask.shape} does not match the image (height, width) {image.height, image.width}"
        )
    mask_image = Image.fromarray(np.where(mask != 0, 255, 0).astype(np.uint8))
    box = mask_image.getbbox()
    cropped = image.crop(box)
    result = ImageEnhance.Brightness(cropped).enhance(HIGHLIGHT_BRIGHTNESS)
    result.paste(cropped, (0, 0), mask_image.crop(box))
    return result


# ---------------------------------------------------------------------------
# Both branches and batches
# ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiraImageInputs:
    """Everything the model needs from one image.

    Attributes:
        omg_pixel_values: ``(3, 1024, 1024)`` OMG-Seg input.
        internvl: the InternVL tiles ``(T, 3, 448, 448)`` and their grid.
        original_size: ``(width, height)`` of the image, for :func:`postprocess_mask_logits`.
    """

    omg_pixel_values: torch.Tensor
    internvl: InternVLTiles
    original_size: tuple[int, int]


def process_image(image: Image.Image, tiles: TileSetting) -> LiraImageInputs:
    """Both branches of one image with the task's tile setting."""
    image = _rgb(image)
    return LiraImageInputs(
        omg_pixel_values=preprocess_omg(image),
        internvl=preprocess_internvl(image, tiles),
        original_size=image.size,
    )


@dataclass(frozen=True, slots=True)
class LiraImageBatch:
    """Several images, stacked for one encoder pass per branch.

    Attributes:
        omg_pixel_values: ``(B, 3, 1024, 1024)``.
        internvl_pixel_values: ``(sum(tiles_per_image), 3, 448, 448)``, image after image.
        tiles_per_image: ``T`` of each image, to split the InternVL features back (``torch.split``).
        original_sizes: ``(width, height)`` of each image.
    """

    omg_pixel_values: torch.Tensor
    internvl_pixel_values: torch.Tensor
    tiles_per_image: tuple[int, ...]
    original_sizes: tuple[tuple[int, int], ...]


def collate_images(items: Sequence[LiraImageInputs]) -> LiraImageBatch:
    """Stack the OMG inputs and concatenate the InternVL tiles of ``items`` (in order)."""
    if not items:
        raise ValueError("cannot collate an empty list of images")
    return LiraImageBatch(
        omg_pixel_values=torch.stack([item.omg_pixel_values for item in items]),
        internvl_pixel_values=torch.cat([item.internvl.pixel_values for item in items]),
        tiles_per_image=tuple(item.internvl.num_tiles for item in items),
        original_sizes=tuple(item.original_size for item in items),
    )


__all__ = [
    "HIGHLIGHT_BRIGHTNESS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OMG_IMAGE_MEAN",
    "OMG_IMAGE_STD",
    "OMG_PAD_COLOR",
    "OMG_SIZE",
    "ORIGINAL_TILES",
    "TILE_SIZE",
    "InternVLTiles",
    "LiraImageBatch",
    "LiraImageInputs",
    "TaskTiles",
    "TileSetting",
    "collate_images",
    "dynamic_tiles",
    "expand_to_square",
    "highlight_crop",
    "postprocess_mask_logits",
    "preprocess_internvl",
    "preprocess_omg",
    "process_image",
    "resize_bicubic",
    "select_tile_grid",
]
