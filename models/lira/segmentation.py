"""OMG-Seg as LIRA runs it, in plain PyTorch.

The modules mirror the original (`OMGSegVisualEncoder` with an open_clip ConvNeXt trunk and
`Mask2FormerVideoSemSamHead` with mmdet's `MSDeformAttnPixelDecoder` and Mask2Former decoder), and
their attribute names are the keys of `omg_seg_convl.pth`, so loading needs no renames. The
arithmetic follows the original operation by operation; the deformable attention is the
`F.grid_sample` formulation of mmcv's `multi_scale_deformable_attn_pytorch` (no compiled ops).

Unlike the original, the multi-scale memories and mask features that `[SEG]` decoding needs are
returned (`OmgSegMemory`) instead of being cached on the head (lira-model.md §15.16).

Shapes: B images, Q object queries, C = `hidden_size`, N `[SEG]` queries, h_l×w_l memory levels
(strides 32, 16, 8), H/4×W/4 mask features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.lira.config import ConvNextConfig, OmgSegConfig

# ---------------------------------------------------------------------------
# Output dataclasses
# ---------------------------------------------------------------------------


@dataclass
class OmgSegMemory:
    """Pixel-decoder outputs that the Mask2Former decoder attends to.

    Attributes:
        mask_features: `(B, C, H/4, W/4)` stride-4 mask features.
        multi_scale_memories: per decoder level, low to high resolution, `(B, C, h_l, w_l)`.
    """

    mask_features: Tensor
    multi_scale_memories: tuple[Tensor, ...]


@dataclass
class DecoderPrediction:
    """One Mask2Former prediction (before layer 0, then after each decoder layer).

    Attributes:
        mask_logits: `(B, Q, H/4, W/4)`.
        attn_mask: `(B·heads, Q, h_l·w_l)` bool, True = blocked, for the next layer's level; as
            computed, before fully blocked rows are reset.
        class_logits: `(B, Q, classes + 1)` (last column: background), or None where not computed.
        iou_logits: `(B, Q, 1)`, or None where not computed.
    """

    mask_logits: Tensor
    attn_mask: Tensor
    class_logits: Tensor | None = None
    iou_logits: Tensor | None = None


@dataclass
class MaskDecoderOutputs:
    """Result of running the Mask2Former decoder.

    Attributes:
        queries: `(B, Q, C)` output of the last layer, before `post_norm`.
        predictions: all `num_layers + 1` predictions, or only the last one when intermediates
            were not kept.
        layer_queries: per-layer outputs `(B, Q, C)` before `post_norm` (empty when not kept).
    """

    queries: Tensor
    predictions: list[DecoderPrediction]
    layer_queries: list[Tensor]


@dataclass
class OmgSegOutputs:
    """What LIRA takes from one OMG-Seg pass (lira-model.md §2.3).

    Attributes:
        clip_feature: `(B, hw, C4·r² + 2C)`: space-to-depth stage-4 feature ‖ pixel query, with
            hw = (H/32/r)·(W/32/r) in row-major order.
        query_pos_feat: `(B, Q, 2C)`: `[query_feat ‖ query_pos]`.
        attn_mask: `(B, Q, hw)` bool, True where query q is not the arg-max query at pixel p.
        memory: the features `[SEG]` decoding attends to.
        decoder: the panoptic decoder's last prediction (class, IoU and mask logits).
    """

    clip_feature: Tensor
    query_pos_feat: Tensor
    attn_mask: Tensor
    memory: OmgSegMemory
    decoder: MaskDecoderOutputs


# ---------------------------------------------------------------------------
# Free tensor functions
# ---------------------------------------------------------------------------


def space_to_depth(features: Tensor, ratio: int) -> Tensor:
    """OMG-Seg's `pixel_shuffle_feat`: fold `ratio`×`ratio` neighbourhoods into channels.

    Args:
        features: `(B, C, H, W)` with H and W divisible by `ratio`.
        ratio: neighbourhood size r.

    Returns:
        `(B, r·r·C, H/r, W/r)`; channel (r_h·r + r_w)·C + c holds `features[:, c, y·r + r_h, x·r + r_w]`.
    """
    b, c, h, w = features.shape
    if h % ratio or w % ratio:
        raise ValueError(f"space_to_depth: map {h}×{w} is not divisible by ratio {ratio}")
    folded = features.reshape(b, c, h // ratio, ratio, w // ratio, ratio)
    return folded.permute(0, 3, 5, 1, 2, 4).flatten(1, 3)


def sine_positional_encoding(
    height: int,
    width: int,
    num_feats: int,
    *,
    device: torch.device | None = None,
    temperature: float = 10000.0,
    scale: float = 2 * math.pi,
    eps: float = 1e-6,
) -> Tensor:
    """mmdet `SinePositionalEncoding(normalize=True)` of an unpadded map.

    Returns:
        `(1, 2·num_feats, height, width)`: y channels then x channels, each pair (sin, cos).
    """
    ones = torch.ones(1, height, width, device=device, dtype=torch.float32)
    y_embed = ones.cumsum(1)
    x_embed = ones.cumsum(2)
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = _sine_frequencies(num_feats, temperature, device)
    pos_x = _interleave_sin_cos(x_embed[..., None] / dim_t)
    pos_y = _interleave_sin_cos(y_embed[..., None] / dim_t)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


def sine_positional_encoding_3d(
    height: int,
    width: int,
    num_feats: int,
    *,
    device: torch.device | None = None,
    temperature: float = 10000.0,
    scale: float = 2 * math.pi,
    eps: float = 1e-6,
) -> Tensor:
    """mmdet `SinePositionalEncoding3D(normalize=True)` of one unpadded frame.

    The 2-D encoding plus a frame-axis term (frequencies over 2·num_feats channels) at frame 1 of 1.

    Returns:
        `(1, 1, 2·num_feats, height, width)`.
    """
    ones = torch.ones(1, 1, height, width, device=device, dtype=torch.float32)
    z_embed = ones.cumsum(1)
    y_embed = ones.cumsum(2)
    x_embed = ones.cumsum(3)
    z_embed = z_embed / (z_embed[:, -1:, :, :] + eps) * scale
    y_embed = y_embed / (y_embed[:, :, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, :, -1:] + eps) * scale
    dim_t = _sine_frequencies(num_feats, temperature, device)
    dim_t_z = _sine_frequencies(2 * num_feats, temperature, device)
    pos_x = _interleave_sin_cos(x_embed[..., None] / dim_t)
    pos_y = _interleave_sin_cos(y_embed[..., None] / dim_t)
    pos_z = _interleave_sin_cos(z_embed[..., None] / dim_t_z)
    return (torch.cat((pos_y, pos_x), dim=4) + pos_z).permute(0, 1, 4, 2, 3)


def _sine_frequencies(num_feats: int, temperature: float, device: torch.device | None) -> Tensor:
    dim_t = torch.arange(num_feats, dtype=torch.float32, device=device)
    return temperature ** (2 * (dim_t // 2) / num_feats)


def _interleave_sin_cos(angles: Tensor) -> Tensor:
    """`(..., F)` angles → `(..., F)` with sin of the even and cos of the odd channels interleaved."""
    stacked = torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1)
    return stacked.flatten(-2)


def multi_scale_deformable_attention(
    value: Tensor,
    spatial_shapes: Sequence[tuple[int, int]],
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Multi-scale deformable attention by bilinear `F.grid_sample` (mmcv's PyTorch path).

    Each head samples every level at its points (zero padding, `align_corners=False`, locations
    in [0, 1] with (0, 0) the top-left corner of the map) and sums them with the weights.

    Args:
        value: `(B, sum_l h_l·w_l, heads, d)`, levels concatenated row-major.
        spatial_shapes: (h_l, w_l) per level.
        sampling_locations: `(B, nq, heads, levels, points, 2)` as (x, y).
        attention_weights: `(B, nq, heads, levels, points)`.

    Returns:
        `(B, nq, heads·d)`.
    """
    bs, _, num_heads, head_dim = value.shape
    _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
    value_list = value.split([h * w for h, w in spatial_shapes], dim=1)
    sampling_grids = 2 * sampling_locations - 1
    sampled = []
    for level, (h, w) in enumerate(spatial_shapes):
        value_l = value_list[level].flatten(2).transpose(1, 2).reshape(bs * num_heads, head_dim, h, w)
        grid_l = sampling_grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        # Contiguous operands: torch's CPU grid_sample intermittently returns NaN for strided bf16 input.
        value_l, grid_l = value_l.contiguous(), grid_l.contiguous()
        sampled.append(F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False))
    weights = attention_weights.transpose(1, 2).reshape(bs * num_heads, 1, num_queries, num_levels * num_points)
    output = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)
    return output.view(bs, num_heads * head_dim, num_queries).transpose(1, 2).contiguous()


def mask_pool(features: Tensor, mask_logits: Tensor) -> Tensor:
    """Average of `features` over each mask's positive-logit pixels (OMG-Seg `mask_pool`).

    Args:
        features: `(B, C, H, W)`.
        mask_logits: `(B, Q, H, W)` (resized bilinearly to H×W first if needed).

    Returns:
        `(B, Q, C)`; an empty mask gives zeros.
    """
    if features.shape[-2:] != mask_logits.shape[-2:]:
        mask_logits = F.interpolate(mask_logits, size=features.shape[-2:], mode="bilinear", align_corners=False)
    with torch.no_grad():
        mask = (mask_logits.detach() > 0).to(mask_logits.dtype)
        denorm = mask.sum(dim=(-1, -2), keepdim=True) + 1e-8
    return torch.einsum("bchw,bqhw->bqc", features, mask / denorm)


def panoptic_pixel_queries(
    class_logits: Tensor,
    mask_logits: Tensor,
    query_pos_feat: Tensor,
    image_size: tuple[int, int],
    grid_size: tuple[int, int],
    *,
    chunk_elements: int = 1 << 25,
) -> tuple[Tensor, Tensor]:
    """OMG-Seg `panoptic_postprocess` for one image: LIRA's pixel queries and query mask.

    The stride-4 logits are upsampled to the image size, turned into probabilities smoothed by the
    query's foreground score, `(0.5·score + 0.5)·sigmoid(mask)`, and resized to the token grid
    (bilinear, `align_corners=False`, as the original). Each grid pixel takes the softmax over
    queries as weights for `query_pos_feat`. The image-size maps are built a few queries at a
    time (`chunk_elements` bounds one chunk), which changes no value.

    Args:
        class_logits: `(Q, classes + 1)`; the last column is background.
        mask_logits: `(Q, H/4, W/4)`.
        query_pos_feat: `(Q, 2C)`.
        image_size: (H, W) of the encoder input.
        grid_size: (h, w) of the token grid.

    Returns:
        pixel_query `(h, w, 2C)` and attn_mask `(Q, h·w)` bool, True where q is not the arg-max.
    """
    num_queries = mask_logits.shape[0]
    scores = F.softmax(class_logits, dim=-1)[..., :-1].max(-1).values
    smoothing = scores.view(-1, 1, 1) * (1 - 0.5) + 0.5
    per_chunk = max(1, chunk_elements // (image_size[0] * image_size[1]))
    grid_probs = []
    for start in range(0, num_queries, per_chunk):
        logits = mask_logits[None, start : start + per_chunk]
        full = F.interpolate(logits, size=image_size, mode="bilinear", align_corners=False)[0]
        probs = smoothing[start : start + per_chunk] * full.sigmoid()
        grid_probs.append(F.interpolate(probs[None], size=grid_size, mode="bilinear", align_corners=False)[0])
    prob_grid = torch.cat(grid_probs, dim=0)
    mask_ids = prob_grid.argmax(0)
    pixel_query = prob_grid.softmax(dim=0).permute(1, 2, 0) @ query_pos_feat
    query_ids = torch.arange(num_queries, device=mask_ids.device).view(-1, 1, 1)
    attn_mask = (mask_ids[None] != query_ids).flatten(1)
    return pixel_query, attn_mask


# ---------------------------------------------------------------------------
# ConvNeXt trunk (open_clip / timm layout)
# ---------------------------------------------------------------------------


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a `(B, C, H, W)` map (timm `LayerNorm2d`)."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class ConvNextMlp(nn.Module):
    """Channels-last MLP of a ConvNeXt block: fc1, exact GELU, fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class ConvNextBlock(nn.Module):
    """Depthwise conv → LayerNorm → MLP → layer scale, plus the residual. `(B, C, H, W)` in and out."""

    def __init__(self, dim: int, config: ConvNextConfig) -> None:
        super().__init__()
        k = config.kernel_size
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size=k, padding=k // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = ConvNextMlp(dim, config.mlp_ratio * dim)
        self.gamma = nn.Parameter(torch.full((dim,), 1e-6))

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.conv_dw(x).permute(0, 2, 3, 1)
        x = self.mlp(self.norm(x)).permute(0, 3, 1, 2)
        return x.mul(self.gamma.reshape(1, -1, 1, 1)) + shortcut


class ConvNextStage(nn.Module):
    """Optional downsample (LayerNorm2d + 2×2 stride-2 conv), then the blocks."""

    def __init__(self, in_dim: int, dim: int, depth: int, config: ConvNextConfig, *, downsample: bool) -> None:
        super().__init__()
        if downsample:
            self.downsample = nn.Sequential(
                LayerNorm2d(in_dim, eps=config.norm_eps), nn.Conv2d(in_dim, dim, kernel_size=2, stride=2)
            )
        else:
            self.downsample = nn.Identity()
        self.blocks = nn.Sequential(*(ConvNextBlock(dim, config) for _ in range(depth)))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(self.downsample(x))


class ConvNextBackbone(nn.Module):
    """OMG-Seg's frozen ConvNeXt CLIP trunk (`OpenCLIPBackbone_omgseg`): stem and `layer1`-`layer4`.

    The CLIP pooling/projection head of the trunk is unused by LIRA and not built (its checkpoint
    keys are on the loader's ignore list).
    """

    def __init__(self, config: ConvNextConfig) -> None:
        super().__init__()
        dims, depths = config.dims, config.depths
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, dims[0], kernel_size=config.patch_size, stride=config.patch_size),
            LayerNorm2d(dims[0], eps=config.norm_eps),
        )
        self.layer1 = ConvNextStage(dims[0], dims[0], depths[0], config, downsample=False)
        self.layer2 = ConvNextStage(dims[0], dims[1], depths[1], config, downsample=True)
        self.layer3 = ConvNextStage(dims[1], dims[2], depths[2], config, downsample=True)
        self.layer4 = ConvNextStage(dims[2], dims[3], depths[3], config, downsample=True)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """`(B, 3, H, W)` → stage outputs at strides 4, 8, 16, 32, `(B, dims[i], H/s, W/s)`."""
        x1 = self.layer1(self.stem(images))
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        x4 = self.layer4(x3)
        return x1, x2, x3, x4


# ---------------------------------------------------------------------------
# Pixel decoder (mmdet MSDeformAttnPixelDecoder)
# ---------------------------------------------------------------------------


class ConvNorm(nn.Module):
    """mmcv `ConvModule`: conv, GroupNorm, optional ReLU (keys `conv`, `gn`)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        num_groups: int,
        eps: float,
        *,
        bias: bool,
        relu: bool,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size=kernel_size, padding=kernel_size // 2, bias=bias)
        self.gn = nn.GroupNorm(num_groups, out_ch, eps=eps)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.gn(self.conv(x))
        return F.relu(x) if self.relu else x


class FeedForward(nn.Module):
    """mmcv `FFN` with two layers: `x + fc2(relu(fc1(x)))` (keys `layers.0.0`, `layers.1`)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Sequential(nn.Linear(dim, hidden), nn.ReLU()), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layers(x)


class MultiScaleDeformableAttention(nn.Module):
    """mmcv `MultiScaleDeformableAttention` (batch-first, 2-D reference points), with residual."""

    def __init__(self, dim: int, num_heads: int, num_levels: int, num_points: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.sampling_offsets = nn.Linear(dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)

    def forward(
        self,
        query: Tensor,
        query_pos: Tensor,
        reference_points: Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
    ) -> Tensor:
        """Self-attention of the encoder tokens.

        Args:
            query: `(B, n, C)` tokens (also the values and the residual).
            query_pos: `(B, n, C)` added to the query for offsets and weights only.
            reference_points: `(B, n, levels, 2)` normalised (x, y).
            spatial_shapes: (h_l, w_l) per level; sum of h_l·w_l = n.

        Returns:
            `(B, n, C)`.
        """
        bs, num_query, _ = query.shape
        value = self.value_proj(query).view(bs, num_query, self.num_heads, -1)
        q = query + query_pos
        offsets = self.sampling_offsets(q).view(bs, num_query, self.num_heads, self.num_levels, self.num_points, 2)
        weights = self.attention_weights(q).view(bs, num_query, self.num_heads, self.num_levels * self.num_points)
        weights = weights.softmax(-1).view(bs, num_query, self.num_heads, self.num_levels, self.num_points)
        normalizer = torch.tensor([[w, h] for h, w in spatial_shapes], device=query.device)
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        output = multi_scale_deformable_attention(value, spatial_shapes, locations, weights)
        return self.output_proj(output) + query


class DeformableEncoderLayer(nn.Module):
    """Deformable-DETR encoder layer: deformable self-attention, norm, FFN, norm (post-norm)."""

    def __init__(self, dim: int, num_heads: int, num_levels: int, num_points: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.self_attn = MultiScaleDeformableAttention(dim, num_heads, num_levels, num_points)
        self.ffn = FeedForward(dim, ffn)
        self.norms = nn.ModuleList(nn.LayerNorm(dim, eps=eps) for _ in range(2))

    def forward(
        self,
        query: Tensor,
        query_pos: Tensor,
        reference_points: Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
    ) -> Tensor:
        query = self.norms[0](self.self_attn(query, query_pos, reference_points, spatial_shapes))
        return self.norms[1](self.ffn(query))


class DeformableEncoder(nn.Module):
    """Stack of `DeformableEncoderLayer` (mmdet `Mask2FormerTransformerEncoder`)."""

    def __init__(self, config: OmgSegConfig) -> None:
        super().__init__()
        pd = config.pixel_decoder
        self.layers = nn.ModuleList(
            DeformableEncoderLayer(
                config.hidden_size,
                pd.num_heads,
                pd.num_levels,
                pd.num_points,
                pd.ffn_channels,
                config.norm_eps,
            )
            for _ in range(pd.num_layers)
        )

    def forward(
        self,
        query: Tensor,
        query_pos: Tensor,
        reference_points: Tensor,
        spatial_shapes: Sequence[tuple[int, int]],
    ) -> Tensor:
        for layer in self.layers:
            query = layer(query, query_pos, reference_points, spatial_shapes)
        return query


class PixelDecoder(nn.Module):
    """mmdet `MSDeformAttnPixelDecoder`: deformable encoder on strides 32/16/8, one FPN step to stride 4."""

    def __init__(self, config: OmgSegConfig) -> None:
        super().__init__()
        c, pd, eps = config.hidden_size, config.pixel_decoder, config.norm_eps
        in_channels = config.backbone.dims
        self.num_levels = pd.num_levels
        self.strides = config.strides
        self.num_feats = c // 2
        top = len(in_channels) - 1
        self.input_convs = nn.ModuleList(
            ConvNorm(in_channels[top - i], c, 1, pd.num_groups, eps, bias=True, relu=False)
            for i in range(pd.num_levels)
        )
        self.encoder = DeformableEncoder(config)
        self.level_encoding = nn.Embedding(pd.num_levels, c)
        self.lateral_convs = nn.ModuleList([ConvNorm(in_channels[0], c, 1, pd.num_groups, eps, bias=False, relu=False)])
        self.output_convs = nn.ModuleList([ConvNorm(c, c, 3, pd.num_groups, eps, bias=False, relu=True)])
        self.mask_feature = nn.Conv2d(c, c, kernel_size=1)

    def forward(self, features: Sequence[Tensor]) -> OmgSegMemory:
        """Backbone maps at strides 4, 8, 16, 32 → mask features and the 3 memories (low to high res)."""
        batch = features[0].shape[0]
        tokens, positions, references, shapes = [], [], [], []
        for i in range(self.num_levels):
            level = len(features) - 1 - i
            feat = features[level]
            h, w = feat.shape[-2:]
            pos = sine_positional_encoding(h, w, self.num_feats, device=feat.device).to(feat.dtype)
            level_pos = self.level_encoding.weight[i].view(1, -1, 1, 1) + pos
            tokens.append(self.input_convs[i](feat).flatten(2).permute(0, 2, 1))
            positions.append(level_pos.flatten(2).permute(0, 2, 1).expand(batch, -1, -1))
            references.append(self._reference_points(h, w, self.strides[level], feat.device))
            shapes.append((h, w))
        reference_points = torch.cat(references, dim=0).to(features[0].dtype)
        reference_points = reference_points[None, :, None].repeat(batch, 1, self.num_levels, 1)
        memory = self.encoder(torch.cat(tokens, dim=1), torch.cat(positions, dim=1), reference_points, shapes)
        memory = memory.permute(0, 2, 1)
        outs = [
            x.reshape(batch, -1, h, w)
            for x, (h, w) in zip(memory.split([h * w for h, w in shapes], dim=-1), shapes, strict=True)
        ]
        lateral = self.lateral_convs[0](features[0])
        top_down = F.interpolate(outs[-1], size=lateral.shape[-2:], mode="bilinear", align_corners=False)
        finest = self.output_convs[0](lateral + top_down)
        return OmgSegMemory(mask_features=self.mask_feature(finest), multi_scale_memories=tuple(outs))

    @staticmethod
    def _reference_points(height: int, width: int, stride: int, device: torch.device) -> Tensor:
        """Pixel centres of one level normalised to [0, 1] as (x, y), row-major `(h·w, 2)`.

        Same arithmetic as mmdet: `MlvlPointGenerator` centres `(i + 0.5)·stride` divided by
        `size·stride`.
        """
        shift_x = (torch.arange(0, width, device=device) + 0.5) * stride
        shift_y = (torch.arange(0, height, device=device) + 0.5) * stride
        xx = shift_x.repeat(height)
        yy = shift_y.view(-1, 1).repeat(1, width).view(-1)
        factor = torch.tensor([[width, height]], device=device) * stride
        return torch.stack([xx, yy], dim=-1) / factor


# ---------------------------------------------------------------------------
# Mask2Former transformer decoder and the OMG-Seg head
# ---------------------------------------------------------------------------


class ResidualAttention(nn.Module):
    """mmcv `MultiheadAttention`: positions added to query and key, `nn.MultiheadAttention`, residual."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        query_pos: Tensor,
        key_pos: Tensor,
        attn_mask: Tensor | None = None,
    ) -> Tensor:
        """Batch-first `(B, n, C)` tensors; `attn_mask` `(B·heads, n_q, n_k)` bool, True = blocked."""
        q = (query + query_pos).transpose(0, 1)
        k = (key + key_pos).transpose(0, 1)
        out = self.attn(q, k, value.transpose(0, 1), attn_mask=attn_mask, need_weights=False)[0]
        return query + out.transpose(0, 1)


class MaskDecoderLayer(nn.Module):
    """Mask2Former decoder layer: masked cross-attn, norm, self-attn, norm, FFN, norm."""

    def __init__(self, dim: int, num_heads: int, ffn: int, eps: float) -> None:
        super().__init__()
        self.cross_attn = ResidualAttention(dim, num_heads)
        self.self_attn = ResidualAttention(dim, num_heads)
        self.ffn = FeedForward(dim, ffn)
        self.norms = nn.ModuleList(nn.LayerNorm(dim, eps=eps) for _ in range(3))

    def forward(
        self, query: Tensor, query_pos: Tensor, memory: Tensor, memory_pos: Tensor, cross_attn_mask: Tensor
    ) -> Tensor:
        """`query`/`query_pos` `(B, Q, C)`, `memory`/`memory_pos` `(B, n, C)` → `(B, Q, C)`."""
        query = self.norms[0](self.cross_attn(query, memory, memory, query_pos, memory_pos, cross_attn_mask))
        query = self.norms[1](self.self_attn(query, query, query, query_pos, query_pos))
        return self.norms[2](self.ffn(query))


class MaskDecoder(nn.Module):
    """The decoder layers and the shared `post_norm` (mmdet `Mask2FormerTransformerDecoder`)."""

    def __init__(self, config: OmgSegConfig) -> None:
        super().__init__()
        c, dec = config.hidden_size, config.decoder
        self.layers = nn.ModuleList(
            MaskDecoderLayer(c, dec.num_heads, dec.ffn_channels, config.norm_eps) for _ in range(dec.num_layers)
        )
        self.post_norm = nn.LayerNorm(c, eps=config.norm_eps)


def _mlp3(dim: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out))


class OmgSegHead(nn.Module):
    """`Mask2FormerVideoSemSamHead` on LIRA's path: pixel decoder, decoder, OV classifier, IoU head.

    `cls_embed` `(D, classes + 1, prototypes)` and `logit_scale` are non-persistent buffers as in
    the original; `cls_embed` is filled by `set_class_embeddings` from the class-embedding file
    (all zeros until then). The unused box-query parameters (`mask_tokens`, `pb_embedding`,
    `pos_linear`) are not built.
    """

    def __init__(self, config: OmgSegConfig) -> None:
        super().__init__()
        c = config.hidden_size
        self.config = config
        self.num_heads = config.decoder.num_heads
        self.num_levels = config.pixel_decoder.num_levels
        self.pixel_decoder = PixelDecoder(config)
        self.transformer_decoder = MaskDecoder(config)
        self.query_embed = nn.Embedding(config.decoder.num_queries, c)
        self.query_feat = nn.Embedding(config.decoder.num_queries, c)
        self.level_embed = nn.Embedding(self.num_levels, c)
        self.mask_embed = _mlp3(c, c)
        self.iou_embed = _mlp3(c, 1)
        self.cls_proj = _mlp3(c, config.class_embed_dim)
        self.mask_pooling_proj = nn.Sequential(nn.LayerNorm(c, eps=config.norm_eps), nn.Linear(c, c))
        cls_embed = torch.zeros(config.class_embed_dim, config.num_classes + 1, config.class_embed_prototypes)
        self.register_buffer("cls_embed", cls_embed, persistent=False)
        self.register_buffer("logit_scale", torch.tensor(config.logit_scale, dtype=torch.float32), persistent=False)

    def set_class_embeddings(self, embeddings: Tensor) -> None:
        """Install the open-vocabulary classifier.

        Args:
            embeddings: `(classes, prototypes, D)` L2-normalised rows, the layout of
                `convnext_large_d_320_CocoPanopticOVDataset.pth`. An all-zero background class is
                appended and the buffer is stored as `(D, classes + 1, prototypes)`.
        """
        expected = (self.config.num_classes, self.config.class_embed_prototypes, self.config.class_embed_dim)
        if tuple(embeddings.shape) != expected:
            raise ValueError(
                f"class embeddings: expected shape (classes, prototypes, dim) = {expected}, got "
                f"{tuple(embeddings.shape)}; set OmgSegConfig.num_things_classes/num_stuff_classes/"
                "class_embed_prototypes/class_embed_dim to match the file"
            )
        background = torch.zeros(1, expected[1], expected[2], dtype=embeddings.dtype, device=embeddings.device)
        full = torch.cat([embeddings, background], dim=0).permute(2, 0, 1).contiguous()
        self.cls_embed.copy_(full.to(self.cls_embed))

    def class_logits(self, class_embeddings: Tensor) -> Tensor:
        """`(B, Q, D)` → `(B, Q, classes + 1)`: exp(logit_scale) · max over prototypes of the cosine."""
        similarity = torch.einsum("bnc,ckp->bnkp", F.normalize(class_embeddings, dim=-1), self.cls_embed)
        return self.logit_scale.exp() * similarity.max(-1).values

    def decoder_inputs(
        self, memory: OmgSegMemory, batch_idxs: Tensor | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Per level: keys/values `(n, h_l·w_l, C)` (memory + `level_embed`) and their sine positions.

        `batch_idxs` `(N,)` selects (and repeats) images; None keeps the batch.
        """
        inputs, positions = [], []
        for i, level_memory in enumerate(memory.multi_scale_memories):
            tokens = level_memory.flatten(2).permute(0, 2, 1) + self.level_embed.weight[i].view(1, 1, -1)
            if batch_idxs is not None:
                tokens = tokens[batch_idxs]
            h, w = level_memory.shape[-2:]
            pos = sine_positional_encoding_3d(h, w, self.config.hidden_size // 2, device=tokens.device)
            pos = pos.to(tokens.dtype).transpose(1, 2).flatten(2).permute(0, 2, 1)
            inputs.append(tokens)
            positions.append(pos.expand(tokens.shape[0], -1, -1))
        return inputs, positions

    def predict_masks(
        self, queries: Tensor, mask_features: Tensor, target_size: tuple[int, int], *, with_classes: bool
    ) -> DecoderPrediction:
        """OMG-Seg `_forward_head` (`with_classes`) or `_forward_head_llm` on decoder queries `(B, Q, C)`."""
        normed = self.transformer_decoder.post_norm(queries)
        mask_logits = torch.einsum("bqc,bchw->bqhw", self.mask_embed(normed), mask_features)
        class_logits = iou_logits = None
        if with_classes:
            pooled = self.mask_pooling_proj(mask_pool(mask_features, mask_logits.detach()))
            class_logits = self.class_logits(self.cls_proj(pooled + normed))
            iou_logits = self.iou_embed(normed)
        attn = F.interpolate(mask_logits.detach(), target_size, mode="bilinear", align_corners=False)
        # Thresholded before the per-head repeat (the original repeats first; same values).
        attn_mask = (attn.sigmoid() < 0.5).flatten(2).unsqueeze(1).repeat(1, self.num_heads, 1, 1).flatten(0, 1)
        return DecoderPrediction(mask_logits, attn_mask, class_logits, iou_logits)

    def decode(
        self,
        query_feat: Tensor,
        query_pos: Tensor,
        memory: OmgSegMemory,
        *,
        batch_idxs: Tensor | None = None,
        with_classes: bool = True,
        keep_intermediate: bool = False,
    ) -> MaskDecoderOutputs:
        """Run the masked-attention decoder from initial queries.

        Args:
            query_feat: `(n, Q, C)` initial content queries.
            query_pos: `(n, Q, C)` query positional embeddings.
            memory: pixel-decoder outputs of the images.
            batch_idxs: `(n,)` image of each query row; None when rows are the images.
            with_classes: compute class and IoU logits (for the last prediction; for all when
                `keep_intermediate`).
            keep_intermediate: keep every prediction and layer output.
        """
        mask_features = memory.mask_features if batch_idxs is None else memory.mask_features[batch_idxs]
        inputs, positions = self.decoder_inputs(memory, batch_idxs)
        sizes = [m.shape[-2:] for m in memory.multi_scale_memories]
        num_layers = len(self.transformer_decoder.layers)

        def predict(q: Tensor, size: tuple[int, int], last: bool) -> DecoderPrediction:
            classes = with_classes and (last or keep_intermediate)
            return self.predict_masks(q, mask_features, size, with_classes=classes)

        prediction = predict(query_feat, sizes[0], num_layers == 0)
        predictions = [prediction]
        layer_queries = []
        query = query_feat
        for i, layer in enumerate(self.transformer_decoder.layers):
            level = i % self.num_levels
            # A fully blocked row attends everywhere instead (kept predictions stay as computed).
            attn_mask = prediction.attn_mask.clone() if keep_intermediate else prediction.attn_mask
            attn_mask[attn_mask.sum(-1) == attn_mask.shape[-1]] = False
            query = layer(query, query_pos, inputs[level], positions[level], attn_mask)
            prediction = predict(query, sizes[(i + 1) % self.num_levels], i == num_layers - 1)
            if keep_intermediate:
                predictions.append(prediction)
                layer_queries.append(query)
        if not keep_intermediate:
            predictions = [prediction]
        return MaskDecoderOutputs(queries=query, predictions=predictions, layer_queries=layer_queries)

    def forward(
        self, features: Sequence[Tensor], *, keep_intermediate: bool = False
    ) -> tuple[OmgSegMemory, MaskDecoderOutputs]:
        """Backbone maps → pixel-decoder memory and the panoptic decoder outputs (learned queries)."""
        memory = self.pixel_decoder(features)
        batch = features[0].shape[0]
        query_feat = self.query_feat.weight.unsqueeze(0).repeat(batch, 1, 1)
        query_pos = self.query_embed.weight.unsqueeze(0).repeat(batch, 1, 1)
        decoded = self.decode(query_feat, query_pos, memory, keep_intermediate=keep_intermediate)
        return memory, decoded


# ---------------------------------------------------------------------------
# The OMG-Seg visual encoder
# ---------------------------------------------------------------------------


class OmgSegEncoder(nn.Module):
    """OMG-Seg visual encoder of LIRA (`OMGSegVisualEncoder`), frozen as in the original.

    Attributes `backbone` and `panoptic_head` are the key prefixes of `omg_seg_convl.pth` (inside
    LIRA they sit under `visual_encoder.`). All parameters are created with `requires_grad=False`;
    gradients still flow through `decode_seg_queries` to its input queries.

    Precision: the original re-casts this encoder to its `dtype` argument (fp32 by default, and in
    every LIRA config) on its first forward, even after LIRA is cast to bf16 for evaluation, and
    casts the encoder outputs back to the earlier parameter dtype. Keep it in fp32 for parity.
    """

    def __init__(self, config: OmgSegConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = ConvNextBackbone(config.backbone)
        self.panoptic_head = OmgSegHead(config)
        self.requires_grad_(False)

    def token_grid(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """(H, W) of the input → (h, w) of the pixel-token grid (stride 32 · shuffle ratio)."""
        step = self.config.strides[-1] * self.config.pixel_shuffle_ratio
        height, width = image_size
        if height % step or width % step:
            raise ValueError(f"OmgSegEncoder: image size {height}×{width} must be a multiple of {step}")
        return height // step, width // step

    @torch.no_grad()
    def encode(self, images: Tensor) -> OmgSegOutputs:
        """One OMG-Seg pass (`OMGSegVisualEncoder.forward`), under `torch.no_grad` (frozen).

        Args:
            images: `(B, 3, H, W)` CLIP-normalised, H and W multiples of 64 (1024×1024 in LIRA).

        Returns:
            The pixel tokens, object queries and query mask LIRA feeds to its projector, plus the
            memory `decode_seg_queries` needs.
        """
        if images.dim() != 4 or images.shape[1] != self.config.backbone.in_channels:
            raise ValueError(f"OmgSegEncoder.encode: expected (B, 3, H, W) images, got {tuple(images.shape)}")
        image_size = (images.shape[-2], images.shape[-1])
        grid = self.token_grid(image_size)
        dtype = self.panoptic_head.query_feat.weight.dtype
        features = self.backbone(images.to(dtype))
        memory, decoded = self.panoptic_head(features)
        final = decoded.predictions[-1]
        query_pos_feat = torch.cat(
            [decoded.queries, self.panoptic_head.query_embed.weight.expand_as(decoded.queries)], -1
        )
        shuffled = space_to_depth(features[-1], self.config.pixel_shuffle_ratio).flatten(2).permute(0, 2, 1)
        pixel_queries, attn_masks = [], []
        for b in range(images.shape[0]):
            pixel_query, attn_mask = panoptic_pixel_queries(
                final.class_logits[b], final.mask_logits[b], query_pos_feat[b], image_size, grid
            )
            pixel_queries.append(pixel_query.flatten(0, 1))
            attn_masks.append(attn_mask)
        clip_feature = torch.cat([shuffled, torch.stack(pixel_queries)], dim=-1)
        return OmgSegOutputs(
            clip_feature=clip_feature,
            query_pos_feat=query_pos_feat,
            attn_mask=torch.stack(attn_masks),
            memory=memory,
            decoder=decoded,
        )

    def decode_seg_queries(
        self, seg_queries: Tensor, memory: OmgSegMemory, batch_idxs: Tensor, *, keep_intermediate: bool = True
    ) -> MaskDecoderOutputs:
        """`forward_llm_seg`: decode `[SEG]` queries into mask logits through the frozen decoder.

        Args:
            seg_queries: `(N, 2C)` outputs of `projector_text2vision`; the first C dims are the
                content query, the last C its positional embedding.
            memory: the `OmgSegOutputs.memory` of the images the queries refer to.
            batch_idxs: `(N,)` int64 image index of each query in that memory.
            keep_intermediate: keep all `num_layers + 1` predictions (LIRA uses all in training
                and the last at inference).

        Returns:
            Decoder outputs with one query per row; `predictions[k].mask_logits` is `(N, 1, H/4, W/4)`.
        """
        c = self.config.hidden_size
        if seg_queries.dim() != 2 or seg_queries.shape[1] != 2 * c:
            raise ValueError(f"decode_seg_queries: expected (N, {2 * c}) queries, got {tuple(seg_queries.shape)}")
        if batch_idxs.shape != (seg_queries.shape[0],):
            raise ValueError(
                f"decode_seg_queries: batch_idxs must have shape ({seg_queries.shape[0]},), "
                f"got {tuple(batch_idxs.shape)}"
            )
        num_images = memory.mask_features.shape[0]
        if seg_queries.shape[0] and (int(batch_idxs.min()) < 0 or int(batch_idxs.max()) >= num_images):
            raise ValueError(f"decode_seg_queries: batch_idxs must lie in [0, {num_images}), got {batch_idxs.tolist()}")
        queries = seg_queries.to(self.panoptic_head.query_feat.weight.dtype).unsqueeze(1)
        return self.panoptic_head.decode(
            queries[:, :, :c],
            queries[:, :, c:],
            memory,
            batch_idxs=batch_idxs,
            with_classes=False,
            keep_intermediate=keep_intermediate,
        )


__all__ = [
    "ConvNextBackbone",
    "DecoderPrediction",
    "MaskDecoderOutputs",
    "OmgSegEncoder",
    "OmgSegHead",
    "OmgSegMemory",
    "OmgSegOutputs",
    "PixelDecoder",
    "mask_pool",
    "multi_scale_deformable_attention",
    "panoptic_pixel_queries",
    "sine_positional_encoding",
    "sine_positional_encoding_3d",
    "space_to_depth",
]
