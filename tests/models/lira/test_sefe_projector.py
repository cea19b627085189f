"""SEFE projector and `projector_text2vision`: layout, cross-attention arithmetic, key names."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch
from torch import Tensor

from models.lira.config import SEFE_PROJECTOR_2B, SEFE_PROJECTOR_TINY, TEXT_TO_VISION_TINY
from models.lira.projector import (
    CrossAttentionLayerPre,
    SefeProjector,
    TextToVisionProjector,
    pretrain_query_reconstruction,
    valid_query_mask,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "lira_seg_tiny"


def _fixture_keys(prefix: str) -> set[str]:
    keys = set()
    for line in (FIXTURE / "keys.txt").read_text().splitlines():
        parts = line.split("\t")
        if parts[0] == "lira_projectors.safetensors" and parts[1].startswith(prefix):
            keys.add(parts[1][len(prefix) :])
    return keys


def _layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float = 1e-5) -> Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def _randomise(module: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.3)


def test_state_dict_keys_are_the_checkpoint_keys() -> None:
    assert set(SefeProjector(SEFE_PROJECTOR_TINY).state_dict()) == _fixture_keys("projector.")
    assert set(TextToVisionProjector(TEXT_TO_VISION_TINY).state_dict()) == _fixture_keys("projector_text2vision.")


def test_full_size_shapes() -> None:
    with torch.device("meta"):
        core = SefeProjector(SEFE_PROJECTOR_2B).model
    assert core.query_proj.weight.shape == (6144, 512)
    assert core.model[0].weight.shape == (2048, 6144) and core.model[2].weight.shape == (2048, 2048)
    assert core.model_feat[0].weight.shape == (2048, 6656)
    assert core.cross_beforellm.multihead_attn.in_proj_weight.shape == (3 * 2048, 2048)
    assert core.cross_beforellm.multihead_attn.num_heads == 32
    assert core.seperate_embed.weight.shape == core.seperate_embed_internvl.weight.shape == (1, 2048)


def test_cross_attention_matches_hand_computation() -> None:
    dim, heads = 8, 2
    layer = CrossAttentionLayerPre(dim, heads, eps=1e-5)
    _randomise(layer, 0)
    generator = torch.Generator().manual_seed(1)
    query = torch.randn(3, 1, dim, generator=generator)
    memory = torch.randn(5, 1, dim, generator=generator)

    attn = layer.multihead_attn
    q_in = _layer_norm(query[:, 0], layer.norm1.weight, layer.norm1.bias)
    m_in = _layer_norm(memory[:, 0], layer.norm2.weight, layer.norm2.bias)
    wq, wk, wv = attn.in_proj_weight.split(dim)
    bq, bk, bv = attn.in_proj_bias.split(dim)
    q, k, v = q_in @ wq.T + bq, m_in @ wk.T + bk, m_in @ wv.T + bv
    head_dim = dim // heads
    outputs = []
    for h in range(heads):
        cols = slice(h * head_dim, (h + 1) * head_dim)
        scores = q[:, cols] @ k[:, cols].T / math.sqrt(head_dim)
        outputs.append(scores.softmax(-1) @ v[:, cols])
    expected = query[:, 0] + torch.cat(outputs, -1) @ attn.out_proj.weight.T + attn.out_proj.bias

    with torch.no_grad():
        got = layer(query, memory)[:, 0]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def _omg_outputs() -> tuple[Tensor, Tensor, Tensor]:
    """4 queries over a 3×3 grid: q0 wins 2 pixels, q1 none, q2 wins 7, q3 none."""
    generator = torch.Generator().manual_seed(5)
    cfg = SEFE_PROJECTOR_TINY
    clip_feature = torch.randn(1, 9, cfg.feat_channels + 2 * cfg.query_channels, generator=generator)
    query_pos_feat = torch.randn(1, 4, 2 * cfg.query_channels, generator=generator)
    winner = torch.tensor([0, 2, 2, 2, 0, 2, 2, 2, 2])
    attn_mask = (winner[None, :] != torch.arange(4)[:, None])[None]
    return clip_feature, query_pos_feat, attn_mask


def test_valid_queries_are_the_pixel_winners() -> None:
    _, _, attn_mask = _omg_outputs()
    assert valid_query_mask(attn_mask)[0].tolist() == [True, False, True, False]


def test_finetune_sequence_layout() -> None:
    projector = SefeProjector(SEFE_PROJECTOR_TINY).eval()
    _randomise(projector, 2)
    clip_feature, query_pos_feat, attn_mask = _omg_outputs()
    internvl = torch.randn(12, 64, generator=torch.Generator().manual_seed(9))
    core = projector.model
    with torch.no_grad():
        sequence = projector(clip_feature, query_pos_feat, attn_mask, [internvl])[0]
        pixels = core.cross_attend(core.project_pixels(clip_feature[0]), internvl)
        queries = core.cross_attend(core.project_queries(query_pos_feat[0])[[0, 2]], internvl)
    assert sequence.shape == (12 + 1 + 9 + 1 + 2, 64)
    assert torch.equal(sequence[:12], internvl)
    assert torch.equal(sequence[12], core.seperate_embed_internvl.weight[0])
    torch.testing.assert_close(sequence[13:22], pixels)
    assert torch.equal(sequence[22], core.seperate_embed.weight[0])
    torch.testing.assert_close(sequence[23:], queries)


def test_pretrain_sequence_layout() -> None:
    config = replace(SEFE_PROJECTOR_TINY, cross_attention=False)
    projector = SefeProjector(config).eval()
    assert projector.model.cross_beforellm is None
    _randomise(projector, 4)
    clip_feature, query_pos_feat, attn_mask = _omg_outputs()
    internvl = torch.randn(12, 64)
    core = projector.model
    with torch.no_grad():
        sequence = projector(clip_feature, query_pos_feat, attn_mask, [internvl], pretrain_layout=True)[0]
        pixels = core.project_pixels(clip_feature[0])
        queries = core.project_queries(query_pos_feat[0])[[0, 2]]
    assert sequence.shape == (1 + 9 + 1 + 2, 64)
    assert torch.equal(sequence[0], core.seperate_embed_internvl.weight[0])
    torch.testing.assert_close(sequence[1:10], pixels)
    assert torch.equal(sequence[10], core.seperate_embed.weight[0])
    torch.testing.assert_close(sequence[11:], queries)


def test_pretrain_reconstruction_keeps_all_but_all_pixel_winners() -> None:
    """As coded, stage 1 keeps a query when `attn_mask.sum(-1) > 0`: only q1, which wins all 4 pixels,
    is dropped; q0 and q2 (never winning) stay."""
    projector = SefeProjector(SEFE_PROJECTOR_TINY)
    text_to_vision = TextToVisionProjector(TEXT_TO_VISION_TINY)
    query_pos_feat = torch.randn(2, 3, 128)
    attn_mask = torch.ones(2, 3, 4, dtype=torch.bool)
    attn_mask[0, 1] = False
    attn_mask[1, :, :2] = torch.tensor([[False, True], [True, False], [True, True]])
    reconstructed, target = pretrain_query_reconstruction(projector, text_to_vision, query_pos_feat, attn_mask)
    expected_rows = [
        query_pos_feat[0, 0],
        query_pos_feat[0, 2],
        query_pos_feat[1, 0],
        query_pos_feat[1, 1],
        query_pos_feat[1, 2],
    ]
    assert torch.equal(target, torch.stack(expected_rows))
    assert reconstructed.shape == (5, 128)


def test_text_to_vision_uses_exact_gelu() -> None:
    projector = TextToVisionProjector(TEXT_TO_VISION_TINY)
    _randomise(projector, 6)
    x = torch.randn(2, 64)
    hidden = x @ projector.model[0].weight.T + projector.model[0].bias
    gelu = hidden * 0.5 * (1 + torch.special.erf(hidden / math.sqrt(2)))
    expected = gelu @ projector.model[2].weight.T + projector.model[2].bias
    with torch.no_grad():
        torch.testing.assert_close(projector(x), expected)
