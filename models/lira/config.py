"""Configuration of the LIRA model: InternVL2 parts, OMG-Seg parts, projectors, and named presets."""

from __future__ import annotations

from dataclasses import dataclass, field

# ---------------------------------------------------------------------------
# Vision-language part (InternViT, pixel shuffle, mlp1, InternLM2 as Llama)
# ---------------------------------------------------------------------------


# ---------------------------------------------------------------------------
# Segmentation part (OMG-Seg encoder and decoder, SEFE projector, [SEG] projector)
# ---------------------------------------------------------------------------


def _check_seg(condition: bool, config: str, message: str) -> None:
    """Raise a `ValueError` naming the config class when `condition` is false."""
    if not condition:
        raise ValueError(f"{config}: {message}")


@dataclass(frozen=True)
class ConvNextConfig:
    """OMG-Seg's ConvNeXt CLIP trunk (open_clip `convnext_large_d_320`, timm layout).

    Stem: `patch_size` conv + LayerNorm2d; stages 2-4 start with LayerNorm2d + 2×2 stride-2 conv.
    Blocks: 7×7 depthwise conv, channels-last LayerNorm, Linear MLP (× `mlp_ratio`, exact GELU),
    layer scale `gamma`, residual. Output strides 4, 8, 16, 32.
    """

    in_channels: int = 3
    dims: tuple[int, ...] = (192, 384, 768, 1536)
    depths: tuple[int, ...] = (3, 3, 27, 3)
    patch_size: int = 4
    kernel_size: int = 7
    mlp_ratio: int = 4
    norm_eps: float = 1e-6

    def __post_init__(self) -> None:
        name = type(self).__name__
        _check_seg(len(self.dims) == 4, name, f"dims must have 4 stages, got {self.dims}")
        _check_seg(len(self.depths) == 4, name, f"depths must have 4 stages, got {self.depths}")
        _check_seg(all(d > 0 for d in self.dims + self.depths), name, "dims and depths must be positive")
        _check_seg(self.kernel_size % 2 == 1, name, f"kernel_size must be odd, got {self.kernel_size}")


@dataclass(frozen=True)
class PixelDecoderConfig:
    """mmdet `MSDeformAttnPixelDecoder` as OMG-Seg configures it.

    The deformable encoder runs on the `num_levels` coarsest backbone maps (strides 32, 16, 8);
    one FPN step adds the stride-4 map, which becomes the mask features.
    """

    num_layers: int = 6
    num_heads: int = 8
    num_levels: int = 3
    num_points: int = 4
    ffn_channels: int = 1024
    num_groups: int = 32

    def __post_init__(self) -> None:
        name = type(self).__name__
        _check_seg(self.num_levels == 3, name, f"num_levels must be 3 (one FPN level), got {self.num_levels}")
        _check_seg(self.num_layers > 0 and self.num_points > 0, name, "num_layers and num_points must be > 0")


@dataclass(frozen=True)
class MaskDecoderConfig:
    """Mask2Former transformer decoder: masked cross-attn → self-attn → FFN, each post-norm."""

    num_layers: int = 9
    num_heads: int = 8
    ffn_channels: int = 2048
    num_queries: int = 300

    def __post_init__(self) -> None:
        name = type(self).__name__
        _check_seg(
            self.num_layers > 0 and self.num_queries > 0, name, "num_layers and num_queries must be > 0"
        )


@dataclass(frozen=True)
class OmgSegConfig:
    """OMG-Seg as LIRA runs it (`OMGSegVisualEncoder` + `Mask2FormerVideoSemSamHead`).

    `hidden_size` is mmdet's `feat_channels` = `out_channels` = the decoder width. The open-vocabulary
    classifier is a (classes, prototypes, `class_embed_dim`) tensor loaded from its own file; the
    full-size prototype count (17) is inferred from OMG-Seg's `tools/gen_cls.py` and the
    `CocoPanopticOVDataset` class list (the longest synonym list, "person,...", has 17 names).
    """

    backbone: ConvNextConfig = field(default_factory=ConvNextConfig)
    pixel_decoder: PixelDecoderConfig = field(default_factory=PixelDecoderConfig)
    decoder: MaskDecoderConfig = field(default_factory=MaskDecoderConfig)
    hidden_size: int = 256
    strides: tuple[int, ...] = (4, 8, 16, 32)
    num_things_classes: int = 80
    num_stuff_classes: int = 53
    class_embed_dim: int = 768
    class_embed_prototypes: int = 17
    logit_scale: float = 4.6052
    pixel_shuffle_ratio: int = 2
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        name = type(self).__name__
        c = self.hidden_size
        _check_seg(len(self.strides) == 4, name, f"strides must have 4 entries, got {self.strides}")
        _check_seg(c % 2 == 0, name, f"hidden_size must be even (sine encoding), got {c}")
        _check_seg(
            c % self.pixel_decoder.num_heads == 0, name, "hidden_size must divide by pixel_decoder.num_heads"
        )
        _check_seg(c % self.decoder.num_heads == 0, name, "hidden_size must divide by decoder.num_heads")
        _check_seg(c % self.pixel_decoder.num_groups == 0, name, "hidden_size must divide by num_groups")
        _check_seg(self.pixel_shuffle_ratio >= 1, name, "pixel_shuffle_ratio must be >= 1")
        _check_seg(self.num_things_classes + self.num_stuff_classes > 0, name, "need at least one class")

    @property
    def num_classes(self) -> int:
        """Things + stuff; the classifier adds one all-zero background column."""
        return self.num_things_classes + self.num_stuff_classes

    @property
    def clip_feature_channels(self) -> int:
        """Width of `clip_feature`: shuffled stage-4 channels plus the 2·hidden pixel query."""
        return self.backbone.dims[-1] * self.pixel_shuffle_ratio**2 + 2 * self.hidden_size


@dataclass(frozen=True)
class SefeProjectorConfig:
    """LIRA's projector (`ProjectorModel_OMG_LLaVA` → `Naive_Proj`), see lira-model.md §3.

    `query_channels` is the OMG query width (the projector takes `[query_feat ‖ query_pos]`, twice
    that); `clip_channels` is the ConvNeXt stage-4 width before the space-to-depth shuffle.
    `cross_attention` is the original `add_cross` (finetune configs: True; pretrain: False).
    """

    llm_hidden_size: int = 2048
    query_channels: int = 256
    clip_channels: int = 1536
    pixel_shuffle_ratio: int = 2
    depth: int = 2
    cross_attention: bool = True
    cross_attention_heads: int = 32
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        name = type(self).__name__
        _check_seg(self.depth >= 1, name, f"depth must be >= 1, got {self.depth}")
        _check_seg(
            not self.cross_attention or self.llm_hidden_size % self.cross_attention_heads == 0,
            name,
            "llm_hidden_size must divide by cross_attention_heads",
        )

    @property
    def feat_channels(self) -> int:
        """Shuffled stage-4 width (`ProjectorConfig_OMG_LLaVA.feat_channels`)."""
        return self.clip_channels * self.pixel_shuffle_ratio**2


@dataclass(frozen=True)
class TextToVisionConfig:
    """`projector_text2vision`: Linear(H → out), GELU, Linear(out → out); out = 2 × OMG width."""

    llm_hidden_size: int = 2048
    out_channels: int = 512
    depth: int = 2


@dataclass(frozen=True)
class MaskLossConfig:
    """LIRA's `[SEG]` mask losses (lira-model.md §8), per decoder output then summed.

    Each output: `dice_weight` × naive Dice and `mask_weight` × sigmoid BCE on `num_points`
    uncertainty-sampled points; the sums are scaled by `dice_scale` and `mask_scale`.
    """

    num_points: int = 12544
    oversample_ratio: float = 3.0
    importance_sample_ratio: float = 0.75
    mask_weight: float = 5.0
    dice_weight: float = 5.0
    mask_scale: float = 0.4
    dice_scale: float = 0.1
    dice_eps: float = 1.0
    projection_weight: float = 10.0

    def __post_init__(self) -> None:
        name = type(self).__name__
        _check_seg(self.oversample_ratio >= 1, name, "oversample_ratio must be >= 1")
        _check_seg(0 <= self.importance_sample_ratio <= 1, name, "importance_sample_ratio must be in [0, 1]")


OMG_SEG_CONVNEXT_LARGE = OmgSegConfig()
"""OMG-Seg ConvNeXt-L as in LIRA-2B and LIRA-8B (`omgseg_model` in `configs/finetune/LIRA-*.py`)."""

OMG_SEG_TINY = OmgSegConfig(
    backbone=ConvNextConfig(dims=(16, 32, 48, 64), depths=(1, 1, 2, 1)),
    pixel_decoder=PixelDecoderConfig(num_layers=2, ffn_channels=128),
    decoder=MaskDecoderConfig(num_layers=3, ffn_channels=128, num_queries=8),
    hidden_size=64,
    num_things_classes=3,
    num_stuff_classes=2,
    class_embed_dim=16,
    class_embed_prototypes=2,
)
"""Tiny OMG-Seg of the `lira_seg_tiny` fixture (same architecture, tiny widths and depths)."""

SEFE_PROJECTOR_2B = SefeProjectorConfig(llm_hidden_size=2048)
SEFE_PROJECTOR_8B = SefeProjectorConfig(llm_hidden_size=4096)
SEFE_PROJECTOR_TINY = SefeProjectorConfig(llm_hidden_size=64, query_channels=64, clip_channels=64)

TEXT_TO_VISION_2B = TextToVisionConfig(llm_hidden_size=2048, out_channels=512)
TEXT_TO_VISION_8B = TextToVisionConfig(llm_hidden_size=4096, out_channels=512)
TEXT_TO_VISION_TINY = TextToVisionConfig(llm_hidden_size=64, out_channels=128)


# ---------------------------------------------------------------------------
# Whole model and presets (lira-2b, lira-8b, lira-tiny)
# ---------------------------------------------------------------------------
