"""Hand-worked checks of the input plumbing: placeholder splice (§3.3, ILVC §7.1) and ground-truth masks (§8)."""

from __future__ import annotations

import pytest
import torch

from models.lira.model import IGNORE_INDEX, IMAGE_TOKEN_INDEX, prepare_gt_masks, splice_visual_sequences

P = IMAGE_TOKEN_INDEX


def embed(ids: torch.Tensor) -> torch.Tensor:
    """Token id t → the 2-vector (t, -t): every output row names the token it came from."""
    return torch.stack([ids.float(), -ids.float()], dim=-1)


def visual(start: float, length: int) -> torch.Tensor:
    """A visual sequence whose rows are (start, 1000), (start + 1, 1000), ...: distinct from any token."""
    return torch.stack([torch.arange(length) + start, torch.full((length,), 1000.0)], dim=-1)


def test_splice_places_sequences_in_order_and_ignores_their_labels() -> None:
    # Row 0: the image, then two ILVC crops later in the answer. Row 1: one image, then right padding (id 0).
    ids = torch.tensor([[5, P, 6, 7, P, 8, P, 9], [5, P, 6, 0, 0, 0, 0, 0]])
    labels = torch.tensor([[-100, -100, -100, 7, -100, 8, -100, 9], [-100, -100, 6, -100, -100, -100, -100, -100]])
    mask = torch.tensor([[1] * 8, [1, 1, 1, 0, 0, 0, 0, 0]])
    sequences = [[visual(100, 3), visual(200, 2), visual(300, 1)], [visual(400, 4)]]
    out = splice_visual_sequences(embed, ids, sequences, labels=labels, attention_mask=mask)

    # Row 0: 5 | 100 101 102 | 6 7 | 200 201 | 8 | 300 | 9  → 11 positions.
    first = [5, 100, 101, 102, 6, 7, 200, 201, 8, 300, 9]
    assert out.lengths == [11, 6]
    assert out.inputs_embeds.shape == (2, 11, 2)
    assert out.inputs_embeds[0, :, 0].tolist() == first
    assert out.inputs_embeds[0, 1:4, 1].tolist() == [1000.0] * 3  # visual rows, not token embeddings
    assert out.labels[0].tolist() == [-100, -100, -100, -100, -100, 7, -100, -100, 8, -100, 9]
    # Row 1: 5 | 400..403 | 6, then 5 padding positions (zeros, IGNORE, mask 0, position 0).
    assert out.inputs_embeds[1, :6, 0].tolist() == [5, 400, 401, 402, 403, 6]
    assert not out.inputs_embeds[1, 6:].any()
    assert out.labels[1].tolist() == [-100] * 5 + [6] + [IGNORE_INDEX] * 5
    assert out.attention_mask.tolist() == [[1] * 11, [1] * 6 + [0] * 5]
    assert out.position_ids.tolist() == [list(range(11)), [0, 1, 2, 3, 4, 5, 0, 0, 0, 0, 0]]


def test_left_padding_for_generation() -> None:
    ids = torch.tensor([[5, P, 6], [7, P, 0]])
    out = splice_visual_sequences(
        embed,
        ids,
        [[visual(100, 1)], [visual(200, 2)]],
        attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]),
        padding_side="left",
    )
    assert out.labels is None
    assert out.inputs_embeds[:, :, 0].tolist() == [[5, 100, 6], [7, 200, 201]]
    out = splice_visual_sequences(
        embed,
        torch.tensor([[5, P, 6], [P, 0, 0]]),
        [[visual(100, 2)], [visual(200, 1)]],
        attention_mask=torch.tensor([[1, 1, 1], [1, 0, 0]]),
        padding_side="left",
    )
    assert out.inputs_embeds[:, :, 0].tolist() == [[5, 100, 101, 6], [0, 0, 0, 200]]
    assert out.attention_mask.tolist() == [[1, 1, 1, 1], [0, 0, 0, 1]]
    assert out.position_ids.tolist() == [[0, 1, 2, 3], [0, 0, 0, 0]]


def test_placeholder_count_must_match() -> None:
    with pytest.raises(ValueError, match=r"row 1 has 2 image placeholders \(-200\) but 1 visual sequences"):
        splice_visual_sequences(embed, torch.tensor([[P, 1], [P, P]]), [[visual(0, 1)], [visual(0, 1)]])
    with pytest.raises(ValueError, match="2 rows but visual sequences for 1 rows"):
        splice_visual_sequences(embed, torch.tensor([[P, 1], [P, 2]]), [[visual(0, 1)]])


def test_gt_masks_padded_centred_then_nearest_resized() -> None:
    # A 2x4 landscape mask: pad 2 rows, one above and one below, to 4x4; then nearest to 8x8 (each pixel 2x2).
    mask = torch.tensor([[[1, 0, 0, 1], [0, 1, 1, 0]]], dtype=torch.bool)
    out = prepare_gt_masks(mask, 8)
    square = torch.tensor([[0, 0, 0, 0], [1, 0, 0, 1], [0, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.uint8)
    assert out.dtype == torch.uint8 and out.shape == (1, 8, 8)
    assert torch.equal(out[0], square.repeat_interleave(2, 0).repeat_interleave(2, 1))

    # A 3x1 portrait mask: pad 2 columns, ⌊2/2⌋ = 1 left, 1 right; odd padding 3 → 1 left, 2 right.
    tall = torch.tensor([[[1], [0], [1]]])
    assert prepare_gt_masks(tall, 3)[0].tolist() == [[0, 1, 0], [0, 0, 0], [0, 1, 0]]
    wide = torch.ones(1, 1, 4, dtype=torch.uint8)
    assert prepare_gt_masks(wide, 4)[0].tolist() == [[0] * 4, [1] * 4, [0] * 4, [0] * 4]
    # Nearest downsampling 4 → 2 reads source pixels 0 and 2 (floor(i · 4/2)).
    grid = torch.tensor([[[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0]]])
    assert prepare_gt_masks(grid, 2)[0].tolist() == [[1, 0], [0, 1]]
    # Already at the size: unchanged.
    same = torch.randint(0, 2, (3, 6, 6), generator=torch.Generator().manual_seed(0))
    assert torch.equal(prepare_gt_masks(same, 6), same.to(torch.uint8))
    with pytest.raises(ValueError, match=r"expected \(n, height, width\)"):
        prepare_gt_masks(torch.zeros(4, 4), 4)
