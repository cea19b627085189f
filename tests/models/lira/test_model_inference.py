"""Inference stages of `lira-tiny`: visual sequence layout (§3.2), `[SEG]` → mask (§6), ILVC crops (§7.2)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.lira.checkpoint.lira import build_lira_tiny, build_random_lira
from models.lira.config import preset
from models.lira.model import LiraModel


@pytest.fixture(scope="module")
def model() -> LiraModel:
    return build_lira_tiny(seed=11)


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(12)
    return torch.randn(2, 3, 192, 192, generator=g), [
        torch.randn(3, 3, 56, 56, generator=g),
        torch.randn(1, 3, 56, 56, generator=g),
    ]


@torch.no_grad()
def test_finetune_sequence_layout(model: LiraModel, images: tuple) -> None:
    """`[InternVL tokens (4 per tile)][sep_internvl][9 pixel tokens][sep][valid queries]` per image."""
    seg, tiles = images
    encoding = model.encode_images(seg, tiles)
    core = model.projector.model
    for b in range(2):
        internvl = model.internvl_features(tiles[b]).reshape(-1, 64)
        n_tokens = 4 * tiles[b].shape[0]
        # A query is kept when it is the arg-max query of at least one of the 9 pixels.
        valid = (~encoding.omg.attn_mask[b]).any(-1)
        sequence = encoding.sequences[b]
        assert sequence.shape == (n_tokens + 1 + 9 + 1 + int(valid.sum()), 64)
        assert torch.equal(encoding.internvl_tokens[b], internvl)
        assert torch.equal(sequence[:n_tokens], internvl)
        assert torch.equal(sequence[n_tokens], core.seperate_embed_internvl.weight[0])
        assert torch.equal(sequence[n_tokens + 10], core.seperate_embed.weight[0])
        # Pixel and query tokens attended to this image's InternVL tokens (shared cross-attention).
        pixels = core.cross_attend(core.project_pixels(encoding.omg.clip_feature[b]), internvl)
        queries = core.cross_attend(core.project_queries(encoding.omg.query_pos_feat[b][valid]), internvl)
        torch.testing.assert_close(sequence[n_tokens + 1 : n_tokens + 10], pixels)
        torch.testing.assert_close(sequence[n_tokens + 11 :], queries)


@torch.no_grad()
def test_pretrain_sequence_layout(images: tuple) -> None:
    model = build_random_lira(preset("lira-tiny").for_stage("pretrain"), seed=13)
    seg, _ = images
    encoding = model.encode_images(seg)  # no InternVL tiles in stage 1
    assert encoding.internvl_tokens is None
    core = model.projector.model
    valid = (~encoding.omg.attn_mask[0]).any(-1)
    sequence = encoding.sequences[0]
    assert sequence.shape[0] == 1 + 9 + 1 + int(valid.sum())
    assert torch.equal(sequence[0], core.seperate_embed_internvl.weight[0])
    torch.testing.assert_close(sequence[1:10], core.project_pixels(encoding.omg.clip_feature[0]))
    torch.testing.assert_close(sequence[11:], core.project_queries(encoding.omg.query_pos_feat[0][valid]))


@torch.no_grad()
def test_seg_hidden_states_become_masks_of_each_image_size(model: LiraModel, images: tuple) -> None:
    seg, tiles = images
    encoding = model.encode_images(seg, tiles)
    hidden = torch.randn(3, 64, generator=torch.Generator().manual_seed(14))
    sizes = [(300, 200), (150, 250)]  # (width, height): a landscape and a portrait image
    masks = model.seg_hidden_states_to_masks(hidden, encoding.omg, torch.tensor([0, 1, 1]), sizes)
    assert [tuple(m.shape) for m in masks] == [(200, 300), (250, 150), (250, 150)]
    assert all(m.dtype == torch.bool for m in masks)
    # §6.4 by hand: last decoder map, logits bilinearly upsampled to the padded square, padding cropped, > 0.
    decoded = model.decode_seg_hidden_states(hidden, encoding.omg, torch.tensor([0, 1, 1]))
    logits = decoded.predictions[-1].mask_logits
    assert logits.shape == (3, 1, 48, 48)  # stride 4 of the 192 px OMG input
    square = F.interpolate(logits[0:1], size=(300, 300), mode="bilinear", align_corners=False)[0, 0]
    assert torch.equal(masks[0], square[50:250] > 0)
    square = F.interpolate(logits[2:3], size=(250, 250), mode="bilinear", align_corners=False)[0, 0]
    assert torch.equal(masks[2], square[:, 50:200] > 0)
    # Each state reads its own image's memory.
    alone = model.seg_hidden_states_to_masks(hidden[2:], encoding.omg, torch.tensor([1]), sizes)
    assert torch.equal(alone[0], masks[2])


@torch.no_grad()
def test_local_crops_are_one_tile_each(model: LiraModel) -> None:
    crops = torch.randn(2, 3, 56, 56, generator=torch.Generator().manual_seed(15))
    tokens = model.encode_local_crops(crops)
    assert len(tokens) == 2 and tokens[0].shape == (4, 64)
    assert torch.equal(tokens[1], model.internvl_features(crops[1:])[0])
    assert model.encode_local_crops(torch.zeros(0, 3, 56, 56)) == []


def test_input_checks(model: LiraModel, images: tuple) -> None:
    seg, tiles = images
    with pytest.raises(ValueError, match=r"seg_pixel_values must be \(B, 3, 192, 192\)"):
        model.encode_images(torch.zeros(1, 3, 1024, 1024), tiles[:1])
    with pytest.raises(ValueError, match="2 images need 2 InternVL tile stacks, got None"):
        model.encode_images(seg)
