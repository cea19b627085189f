"""LIRA's projectors: the SEFE projector and `projector_text2vision`, exactly as coded.

`SefeProjector` is `ProjectorModel_OMG_LLaVA` and its `model` is `Naive_Proj`; attribute names are
the checkpoint keys under `projector.` (including the original spelling `seperate_embed`).
`TextToVisionProjector` is xtuner's `ProjectorModel` used as `projector_text2vision`.

Shapes: B images, hw pixel tokens, Q object queries, C the OMG width, H the LLM width,
T·256 InternVL tokens of an image.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from models.lira.config import SefeProjectorConfig, TextToVisionConfig


def _gelu_mlp(in_features: int, hidden: int, depth: int) -> nn.Sequential:
    """Linear(in → hidden), then `depth - 1` × (exact GELU, Linear(hidden → hidden))."""
    modules: list[nn.Module] = [nn.Linear(in_features, hidden)]
    for _ in range(1, depth):
        modules += [nn.GELU(), nn.Linear(hidden, hidden)]
    return nn.Sequential(*modules)


def valid_query_mask(attn_mask: Tensor) -> Tensor:
    """Queries that win the arg-max at one or more pixels: `attn_mask.sum(-1) < hw`.

    Args:
        attn_mask: `(..., Q, hw)` bool, True where the query is not the pixel's arg-max.

    Returns:
        `(..., Q)` bool.
    """
    return attn_mask.sum(dim=-1) < attn_mask.shape[-1]


class CrossAttentionLayerPre(nn.Module):
    """`CrossAttentionLayer_Pre`: `query + Attn(norm1(query), norm2(memory), norm2(memory))`.

    Sequence-first `nn.MultiheadAttention`, no positional embeddings, no FFN.
    """

    def __init__(self, dim: int, num_heads: int, eps: float) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)

    def forward(self, query: Tensor, memory: Tensor) -> Tensor:
        """`query` `(L, B, H)` attends to `memory` `(S, B, H)` → `(L, B, H)`."""
        normed_query = self.norm1(query)
        normed_memory = self.norm2(memory)
        attended = self.multihead_attn(normed_query, normed_memory, normed_memory, need_weights=False)[0]
        return query + attended


class SefeProjectorCore(nn.Module):
    """`Naive_Proj`: maps OMG pixel tokens and valid object queries to the LLM width.

    - `query_proj`: Linear(2C → C4·r²), then `model`: Linear(C4·r² → H), GELU, Linear(H → H).
    - `model_feat`: Linear(C4·r² + 2C → H), GELU, Linear(H → H) on the pixel tokens.
    - `cross_beforellm` (when `cross_attention`): shared pre-norm cross-attention of both to the
      image's InternVL tokens.
    - `seperate_embed_internvl` / `seperate_embed`: the two separator tokens.
    """

    def __init__(self, config: SefeProjectorConfig) -> None:
        super().__init__()
        self.config = config
        hidden, query_in = config.llm_hidden_size, 2 * config.query_channels
        self.query_proj = nn.Linear(query_in, config.feat_channels)
        self.model = _gelu_mlp(config.feat_channels, hidden, config.depth)
        self.cross_beforellm = (
            CrossAttentionLayerPre(hidden, config.cross_attention_heads, config.norm_eps)
            if config.cross_attention
            else None
        )
        self.model_feat = _gelu_mlp(config.feat_channels + query_in, hidden, config.depth)
        self.seperate_embed = nn.Embedding(1, hidden)
        self.seperate_embed_internvl = nn.Embedding(1, hidden)

    def project_queries(self, query_pos_feat: Tensor) -> Tensor:
        """`(..., Q, 2C)` → `(..., Q, H)`: `model(query_proj(q))` for every query."""
        return self.model(self.query_proj(query_pos_feat))

    def project_pixels(self, clip_feature: Tensor) -> Tensor:
        """`(..., hw, C4·r² + 2C)` → `(..., hw, H)`."""
        return self.model_feat(clip_feature)

    def cross_attend(self, tokens: Tensor, internvl_embeds: Tensor) -> Tensor:
        """`(L, H)` OMG tokens attend to one image's `(S, H)` InternVL tokens → `(L, H)`."""
        if self.cross_beforellm is None:
            raise RuntimeError("SefeProjectorCore.cross_attend: built with cross_attention=False")
        return self.cross_beforellm(tokens.unsqueeze(1), internvl_embeds.unsqueeze(1))[:, 0]

    def forward(
        self,
        clip_feature: Tensor,
        query_pos_feat: Tensor,
        attn_mask: Tensor,
        internvl_embeds: Sequence[Tensor] | None = None,
        *,
        pretrain_layout: bool = False,
    ) -> list[Tensor]:
        """Build each image's visual token sequence (lira-model.md §3.2).

        Args:
            clip_feature: `(B, hw, C4·r² + 2C)` from `OmgSegEncoder.encode`.
            query_pos_feat: `(B, Q, 2C)`.
            attn_mask: `(B, Q, hw)` bool.
            internvl_embeds: per image `(256·T, H)` InternVL tokens, or None.
            pretrain_layout: the original's `onlyomg_pretrain`: leave the InternVL tokens out.

        Returns:
            Per image, `(L_b, H)`:
            `[InternVL tokens][seperate_embed_internvl][pixel tokens][seperate_embed][valid queries]`,
            or without the leading InternVL tokens when `pretrain_layout` or `internvl_embeds` is
            None. The shared cross-attention runs when built and InternVL tokens are given.
        """
        batch = clip_feature.shape[0]
        if query_pos_feat.shape[0] != batch or attn_mask.shape[0] != batch:
            raise ValueError(
                "SefeProjector: batch sizes differ: clip_feature "
                f"{tuple(clip_feature.shape)}, query_pos_feat {tuple(query_pos_feat.shape)}, "
                f"attn_mask {tuple(attn_mask.shape)}"
            )
        if internvl_embeds is not None and len(internvl_embeds) != batch:
            raise ValueError(f"SefeProjector: {batch} images but {len(internvl_embeds)} InternVL token sets")
        queries = self.project_queries(query_pos_feat)
        pixels = self.project_pixels(clip_feature)
        keep = valid_query_mask(attn_mask)
        sequences = []
        for b in range(batch):
            pix, query = pixels[b], queries[b][keep[b]]
            internvl = None if internvl_embeds is None else internvl_embeds[b]
            if internvl is not None and self.cross_beforellm is not None:
                query = self.cross_attend(query, internvl)
                pix = self.cross_attend(pix, internvl)
            parts = [self.seperate_embed_internvl.weight, pix, self.seperate_embed.weight, query]
            if internvl is not None and not pretrain_layout:
                parts.insert(0, internvl)
            sequences.append(torch.cat(parts, dim=0))
        return sequences


class SefeProjector(nn.Module):
    """`ProjectorModel_OMG_LLaVA`: a wrapper whose `model` holds the layers (keys `projector.model.*`)."""

    def __init__(self, config: SefeProjectorConfig) -> None:
        super().__init__()
        self.model = SefeProjectorCore(config)

    def forward(
        self,
        clip_feature: Tensor,
        query_pos_feat: Tensor,
        attn_mask: Tensor,
        internvl_embeds: Sequence[Tensor] | None = None,
        *,
        pretrain_layout: bool = False,
    ) -> list[Tensor]:
        """See `SefeProjectorCore.forward`."""
        return self.model(clip_feature, query_pos_feat, attn_mask, internvl_embeds, pretrain_layout=pretrain_layout)


class TextToVisionProjector(nn.Module):
    """`projector_text2vision`: `[SEG]` hidden state `(N, H)` → OMG query `(N, 2C)` (keys `model.0/2`)."""

    def __init__(self, config: TextToVisionConfig) -> None:
        super().__init__()
        self.model = _gelu_mlp(config.llm_hidden_size, config.out_channels, config.depth)

    def forward(self, hidden_states: Tensor) -> Tensor:
        return self.model(hidden_states)


def pretrain_query_reconstruction(
    projector: SefeProjector, text_to_vision: TextToVisionProjector, query_pos_feat: Tensor, attn_mask: Tensor
) -> tuple[Tensor, Tensor]:
    """Stage-1 targets of `loss_proj` (`prepare_seg_pretrain_data`, without cross-attention).

    Each kept OMG query q (`2C`) goes LLM-wards and back: `text_to_vision(model(query_proj(q)))`.
    As coded, a query is kept when `attn_mask.sum(-1) > 0`, i.e. unless it wins every pixel —
    a different rule from the projector's `valid_query_mask`.

    Args:
        query_pos_feat: `(B, Q, 2C)`.
        attn_mask: `(B, Q, hw)` bool.

    Returns:
        (reconstructed, target), both `(n, 2C)` over the kept queries of all images in order.
    """
    keep = attn_mask.sum(dim=-1) > 0
    target = query_pos_feat[keep]
    return text_to_vision(projector.model.project_queries(target)), target


__all__ = [
    "CrossAttentionLayerPre",
    "SefeProjector",
    "SefeProjectorCore",
    "TextToVisionProjector",
    "pretrain_query_reconstruction",
    "valid_query_mask",
]
