"""Configuration of the LIRA model: InternVL2 parts, OMG-Seg parts, projectors, and named presets."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from transformers import InternVLConfig, InternVLVisionConfig, LlamaConfig

# ---------------------------------------------------------------------------
# Vision-language part (InternViT, pixel shuffle, mlp1, InternLM2 as Llama)
# ---------------------------------------------------------------------------

AttnImplementation = Literal["eager", "sdpa"]
"""Attention kernel of the native classes. `eager` reproduces the original InternVL2 code bit-exactly in
fp32 (native-internvl.md); `sdpa` is faster and differs at rounding level (<= 2.4e-7 on logits)."""

_ConfigT = TypeVar("_ConfigT")


def _require(condition: bool, where: str, message: str) -> None:
    if not condition:
        raise ValueError(f"{where}: {message}")


def config_from_dict(cls: type[_ConfigT], data: Mapping[str, Any], where: str | None = None) -> _ConfigT:
    """Build a (possibly nested) config dataclass from a mapping written by `dataclasses.asdict`.

    Raises:
        ValueError: on an unknown or missing field; the message names the field path.
    """
    where = where or cls.__name__
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {field.name: field for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; expected a subset of {sorted(fields)}")
    hints = {
        name: hint
        for name, hint in typing.get_type_hints(cls).items()
        if isinstance(hint, type) and dataclasses.is_dataclass(hint)
    }
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        nested = hints.get(name)
        kwargs[name] = config_from_dict(nested, value, f"{where}.{name}") if nested else value
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required field is missing
        raise ValueError(f"{where}: {error}") from None


@dataclasses.dataclass(frozen=True)
class LiraVisionConfig:
    """InternViT (InternVL2's vision encoder); defaults are InternViT-300M-448px.

    Field names follow the original `InternVisionConfig` so that `config.json` values map one to one.
    """

    image_size: int = 448
    patch_size: int = 14
    num_channels: int = 3
    hidden_size: int = 1024
    intermediate_size: int = 4096
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    qkv_bias: bool = True
    norm_type: Literal["layer_norm", "rms_norm"] = "layer_norm"
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu"
    layer_scale_init_value: float = 1.0
    """Initial value of the layer scales `ls1`/`ls2` (original `initializer_factor`); loaded weights win."""

    def __post_init__(self) -> None:
        where = type(self).__name__
        for name in ("image_size", "patch_size", "num_channels", "hidden_size", "intermediate_size"):
            _require(getattr(self, name) > 0, where, f"{name} must be positive, got {getattr(self, name)}")
        _require(self.num_hidden_layers > 0, where, "num_hidden_layers must be positive")
        _require(self.num_attention_heads > 0, where, "num_attention_heads must be positive")
        _require(
            self.hidden_size % self.num_attention_heads == 0,
            where,
            f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}",
        )
        _require(
            self.image_size % self.patch_size == 0,
            where,
            f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}",
        )
        _require(self.norm_type in ("layer_norm", "rms_norm"), where, f"unknown norm_type {self.norm_type!r}")
        _require(self.layer_norm_eps > 0, where, "layer_norm_eps must be positive")

    @property
    def grid_size(self) -> int:
        """Patches per side of one tile (32 for 448 px, patch 14)."""
        return self.image_size // self.patch_size

    def to_hf(self, attn_implementation: AttnImplementation) -> InternVLVisionConfig:
        """The native `InternVLVisionConfig` (mapping of native-internvl.md, "vision_config")."""
        return InternVLVisionConfig(
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            hidden_act=self.hidden_act,
            layer_norm_eps=self.layer_norm_eps,
            norm_type=self.norm_type,
            image_size=self.image_size,
            patch_size=self.patch_size,
            num_channels=self.num_channels,
            attention_bias=self.qkv_bias,  # native default False: InternViT has q/k/v biases
            use_qk_norm=False,
            layer_scale_init_value=self.layer_scale_init_value,
            use_mean_pooling=True,  # True means "no final LayerNorm", as in InternViT
            use_absolute_position_embeddings=True,
            use_mask_token=False,
            attention_dropout=0.0,
            projection_dropout=0.0,
            hidden_dropout_prob=0.0,
            attn_implementation=attn_implementation,
        )


@dataclasses.dataclass(frozen=True)
class LiraTextConfig:
    """InternLM2 / InternLM2.5 expressed as a Llama decoder; defaults are InternLM2-chat-1.8B (InternVL2-2B).

    `vocab_size` is the size of the model's embedding and LM-head matrices; for LIRA it includes the six
    added tokens (92553 + 6 = 92559).
    """

    vocab_size: int = 92553
    hidden_size: int = 2048
    intermediate_size: int = 8192
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    num_key_value_heads: int = 8
    hidden_act: str = "silu"
    rms_norm_eps: float = 1e-5
    rope_theta: float = 1_000_000.0
    rope_type: Literal["default", "dynamic", "linear"] = "dynamic"
    rope_factor: float = 2.0
    """Scaling factor of `rope_type` `dynamic` (NTK) or `linear`; unused for `default`."""
    max_position_embeddings: int = 32768
    bos_token_id: int = 1
    eos_token_id: int = 2
    pad_token_id: int = 2

    def __post_init__(self) -> None:
        where = type(self).__name__
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers"):
            _require(getattr(self, name) > 0, where, f"{name} must be positive, got {getattr(self, name)}")
        _require(
            self.num_attention_heads > 0 and self.num_key_value_heads > 0,
            where,
            "head counts must be positive",
        )
        _require(
            self.hidden_size % self.num_attention_heads == 0,
            where,
            f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}",
        )
        _require(
            self.num_attention_heads % self.num_key_value_heads == 0,
            where,
            f"num_attention_heads {self.num_attention_heads} is not a multiple of "
            f"num_key_value_heads {self.num_key_value_heads}",
        )
        _require(self.rope_type in ("default", "dynamic", "linear"), where, f"unknown rope_type {self.rope_type!r}")
        _require(self.rope_factor >= 1.0, where, f"rope_factor must be >= 1, got {self.rope_factor}")
        _require(
            self.rms_norm_eps > 0 and self.rope_theta > 0,
            where,
            "rms_norm_eps and rope_theta must be positive",
        )
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self, name)
            _require(0 <= value < self.vocab_size, where, f"{name} {value} is outside [0, {self.vocab_size})")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def queries_per_kv_head(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads

    def rope_parameters(self) -> dict[str, Any]:
        parameters: dict[str, Any] = {"rope_type": self.rope_type, "rope_theta": float(self.rope_theta)}
        if self.rope_type != "default":
            parameters["factor"] = float(self.rope_factor)
        return parameters

    def to_hf(self, attn_implementation: AttnImplementation) -> LlamaConfig:
        """The native `LlamaConfig` (mapping of native-internvl.md, "llm_config")."""
        return LlamaConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            hidden_act=self.hidden_act,
            rms_norm_eps=self.rms_norm_eps,  # Llama default 1e-6 would be wrong
            rope_parameters=self.rope_parameters(),
            max_position_embeddings=self.max_position_embeddings,
            bos_token_id=self.bos_token_id,
            eos_token_id=self.eos_token_id,
            pad_token_id=self.pad_token_id,
            tie_word_embeddings=False,  # InternLM2 has a separate `output` head
            attention_bias=False,
            mlp_bias=False,
            attn_implementation=attn_implementation,
        )


@dataclasses.dataclass(frozen=True)
class LiraChatTokenIds:
    """Ids of the InternVL2 chat tokens. They come from the tokenizer, not from `config.json`.

    Defaults are InternVL2-2B's, as listed in fixtures/internvl2_tiny/README.md. Only `<|im_end|>` 92542 is
    read from LIRA's code; lira-model.md §5 marks the others as inferred from the InternLM2 vocabulary
    (92544 base tokens, then InternVL's nine added tokens from `<img>` 92544).
    """

    im_end: int = 92542
    im_start: int = 92543
    img_start: int = 92544
    img_end: int = 92545
    img_context: int = 92546
    """`<IMG_CONTEXT>`: placeholder that InternVL2-style prompts fill with image features."""

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class LiraVisionLanguageConfig:
    """InternVL2 as LIRA uses it: InternViT, pixel shuffle, `mlp1`, and the language model.

    LIRA's `extract_feature` always takes the vision tower's last hidden state and always shuffles with
    scale 0.5 (echo840/LIRA `omg_llava/model/lira.py`), so there is no layer or shuffle-version option.
    """

    vision: LiraVisionConfig = dataclasses.field(default_factory=LiraVisionConfig)
    text: LiraTextConfig = dataclasses.field(default_factory=LiraTextConfig)
    chat_tokens: LiraChatTokenIds = dataclasses.field(default_factory=LiraChatTokenIds)
    downsample_ratio: float = 0.5
    projector_hidden_act: str = "gelu"
    """Activation inside `mlp1` (exact erf GELU; `gelu_pytorch_tanh` would differ by ~5e-5)."""
    attn_implementation: AttnImplementation = "eager"

    def __post_init__(self) -> None:
        where = type(self).__name__
        _require(
            self.downsample_ratio == 0.5,
            where,
            f"downsample_ratio must be 0.5 (LIRA), got {self.downsample_ratio}",
        )
        _require(
            self.vision.grid_size % 2 == 0,
            where,
            f"the {self.vision.grid_size}x{self.vision.grid_size} patch grid must be even for pixel shuffle",
        )
        _require(
            self.attn_implementation in ("eager", "sdpa"),
            where,
            f"attn_implementation must be 'eager' or 'sdpa', got {self.attn_implementation!r}",
        )
        for name, value in self.chat_tokens.as_dict().items():
            _require(
                0 <= value < self.text.vocab_size,
                where,
                f"chat_tokens.{name} = {value} is outside the vocabulary [0, {self.text.vocab_size})",
            )

    @property
    def tokens_per_tile(self) -> int:
        """Image tokens per tile after pixel shuffle (256 for 448 px)."""
        return (self.vision.grid_size // 2) ** 2

    @property
    def mlp1_input_size(self) -> int:
        """Channels after pixel shuffle: 4 x the vision width (4096 for InternViT-300M)."""
        return self.vision.hidden_size * 4

    def to_hf(self) -> InternVLConfig:
        """The native `InternVLConfig`; needed to build the native `mlp1` (`InternVLMultiModalProjector`)."""
        return InternVLConfig(
            vision_config=self.vision.to_hf(self.attn_implementation),
            text_config=self.text.to_hf(self.attn_implementation),
            downsample_ratio=self.downsample_ratio,
            projector_hidden_act=self.projector_hidden_act,
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
            image_token_id=self.chat_tokens.img_context,
            image_seq_length=self.tokens_per_tile,
            tie_word_embeddings=False,  # InternVLConfig defaults to True, which would tie the LM head
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LiraVisionLanguageConfig:
        return config_from_dict(cls, data)


def _json_field(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise ValueError(f"{where}: missing field {key!r}")
    return data[key]


def vision_language_config_from_internvl(
    config_json: Mapping[str, Any],
    *,
    chat_tokens: LiraChatTokenIds,
    attn_implementation: AttnImplementation = "eager",
    source: str = "config.json",
) -> LiraVisionLanguageConfig:
    """Parse an original InternVL2 `config.json` (`model_type: internvl_chat`) into a config.

    Ignored on purpose: `select_layer` and `ps_version` (LIRA always uses the last layer and shuffle v2),
    tiling/template settings, `auto_map`, flash-attention switches, dropout settings (0 in every
    InternVL2 release; inert in eval mode).

    Args:
        config_json: the parsed JSON object.
        chat_tokens: ids of the chat tokens; they live in the tokenizer, not in `config.json`.
        attn_implementation: kernel for the native classes (`eager` for exact parity).
        source: file name used in error messages.

    Raises:
        ValueError: on a missing field, or on a feature the native classes cannot represent
            (InternViT-6B q/k norm, InternLM2 attention biases, a model type other than InternLM2).
    """
    model_type = config_json.get("model_type")
    if model_type != "internvl_chat":
        raise ValueError(f"{source}: expected model_type 'internvl_chat', got {model_type!r}")
    vision = _json_field(config_json, "vision_config", source)
    llm = _json_field(config_json, "llm_config", source)
    vwhere, lwhere = f"{source}: vision_config", f"{source}: llm_config"

    if vision.get("qk_normalization", False):
        raise ValueError(f"{vwhere}: qk_normalization=true (InternViT-6B) is not supported; LIRA uses InternViT-300M")
    llm_type = llm.get("model_type")
    if llm_type != "internlm2":
        raise ValueError(f"{lwhere}: model_type {llm_type!r} is not supported; expected 'internlm2'")
    if llm.get("bias", False):
        raise ValueError(f"{lwhere}: bias=true is not supported (InternVL2's InternLM2 has no biases)")

    image_size = config_json.get("force_image_size") or _json_field(vision, "image_size", vwhere)
    vision_config = LiraVisionConfig(
        image_size=int(image_size),
        patch_size=int(_json_field(vision, "patch_size", vwhere)),
        num_channels=int(vision.get("num_channels", 3)),
        hidden_size=int(_json_field(vision, "hidden_size", vwhere)),
        intermediate_size=int(_json_field(vision, "intermediate_size", vwhere)),
        num_hidden_layers=int(_json_field(vision, "num_hidden_layers", vwhere)),
        num_attention_heads=int(_json_field(vision, "num_attention_heads", vwhere)),
        qkv_bias=bool(_json_field(vision, "qkv_bias", vwhere)),
        norm_type=vision.get("norm_type", "layer_norm"),
        layer_norm_eps=float(_json_field(vision, "layer_norm_eps", vwhere)),
        hidden_act=vision.get("hidden_act", "gelu"),
        layer_scale_init_value=float(vision.get("initializer_factor", 1.0)),
    )

    rope_scaling = llm.get("rope_scaling")
    if rope_scaling is None:
        rope_type, rope_factor = "default", 1.0
    else:
        rope_type = rope_scaling.get("type", rope_scaling.get("rope_type"))
        if rope_type not in ("dynamic", "linear"):
            raise ValueError(f"{lwhere}: rope_scaling type {rope_type!r} is not supported (dynamic, linear)")
        rope_factor = float(_json_field(rope_scaling, "factor", f"{lwhere}.rope_scaling"))
    num_heads = int(_json_field(llm, "num_attention_heads", lwhere))
    text_config = LiraTextConfig(
        vocab_size=int(_json_field(llm, "vocab_size", lwhere)),
        hidden_size=int(_json_field(llm, "hidden_size", lwhere)),
        intermediate_size=int(_json_field(llm, "intermediate_size", lwhere)),
        num_hidden_layers=int(_json_field(llm, "num_hidden_layers", lwhere)),
        num_attention_heads=num_heads,
        num_key_value_heads=int(llm.get("num_key_value_heads") or num_heads),
        hidden_act=llm.get("hidden_act", "silu"),
        rms_norm_eps=float(_json_field(llm, "rms_norm_eps", lwhere)),
        rope_theta=float(_json_field(llm, "rope_theta", lwhere)),
        rope_type=rope_type,
        rope_factor=rope_factor,
        max_position_embeddings=int(_json_field(llm, "max_position_embeddings", lwhere)),
        bos_token_id=int(llm.get("bos_token_id", 1)),
        eos_token_id=int(llm.get("eos_token_id", 2)),
        pad_token_id=int(llm.get("pad_token_id", 2)),
    )
    if config_json.get("tie_word_embeddings", False) or llm.get("tie_word_embeddings", False):
        raise ValueError(f"{source}: tie_word_embeddings=true is not supported (InternLM2 has an untied `output`)")
    return LiraVisionLanguageConfig(
        vision=vision_config,
        text=text_config,
        chat_tokens=chat_tokens,
        downsample_ratio=float(_json_field(config_json, "downsample_ratio", source)),
        projector_hidden_act="gelu",
        attn_implementation=attn_implementation,
    )


@dataclasses.dataclass(frozen=True)
class LiraLoraConfig:
    """LoRA of LIRA's fine-tuning stage on every Linear of the LLM (lira-model.md §9).

    The scale applied to `B @ A` is `alpha / rank` (2.0 for both released sizes).
    """

    rank: int = 128
    alpha: float = 256.0
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("wqkv", "wo", "w1", "w2", "w3", "output")
    """Original InternLM2 module names that carry LoRA in the released `.pth` files."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))  # JSON gives a list
        where = type(self).__name__
        _require(self.rank > 0, where, f"rank must be positive, got {self.rank}")
        _require(self.alpha > 0, where, f"alpha must be positive, got {self.alpha}")
        _require(0.0 <= self.dropout < 1.0, where, f"dropout must be in [0, 1), got {self.dropout}")
        unknown = sorted(set(self.target_modules) - {"wqkv", "wo", "w1", "w2", "w3", "output"})
        _require(not unknown, where, f"unknown target_modules {unknown}")

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank


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
        object.__setattr__(self, "dims", tuple(self.dims))  # JSON gives lists
        object.__setattr__(self, "depths", tuple(self.depths))
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
        _check_seg(self.num_layers > 0 and self.num_queries > 0, name, "num_layers and num_queries must be > 0")


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
        object.__setattr__(self, "strides", tuple(self.strides))  # JSON gives a list
        name = type(self).__name__
        c = self.hidden_size
        _check_seg(len(self.strides) == 4, name, f"strides must have 4 entries, got {self.strides}")
        _check_seg(c % 2 == 0, name, f"hidden_size must be even (sine encoding), got {c}")
        _check_seg(c % self.pixel_decoder.num_heads == 0, name, "hidden_size must divide by pixel_decoder.num_heads")
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


@dataclasses.dataclass(frozen=True)
class LiraAddedTokenIds:
    """The six tokens LIRA adds to the InternVL2 tokenizer, in the order of `LIRA._add_special_tokens`.

    Defaults are the InternVL2-2B/8B ids (`[SEG]` 92553 and `<image_id>` 92558 are hard-coded in the
    original inference loops; the others follow from the order of addition, lira-model.md §5).
    """

    seg: int = 92553
    p_start: int = 92554
    p_end: int = 92555
    region: int = 92556
    mark: int = 92557
    image_id: int = 92558

    @classmethod
    def after(cls, base_vocab_size: int) -> LiraAddedTokenIds:
        """The ids the six tokens get when added to a vocabulary of `base_vocab_size` tokens."""
        return cls(*range(base_vocab_size, base_vocab_size + 6))

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


LiraStage = Literal["finetune", "pretrain"]
"""Training stage a model is built for (lira-model.md §9, §10): `finetune` is the released model (SEFE
projector with cross-attention, InternVL tokens in the LLM input, `[SEG]` mask losses); `pretrain` is stage 1
(`onlyomg_pretrain` + `add_seg_pretrain`: no cross-attention, no InternVL tokens, projection loss)."""


@dataclasses.dataclass(frozen=True)
class LiraConfig:
    """The whole LIRA model. Each part's config is validated on its own; this checks how they fit.

    `seg_image_size` is the side of the square OMG-Seg input (the padded image resized to 1024 in LIRA)
    and of the ground-truth masks of the training losses.
    """

    vision_language: LiraVisionLanguageConfig = dataclasses.field(default_factory=LiraVisionLanguageConfig)
    added_tokens: LiraAddedTokenIds = dataclasses.field(default_factory=LiraAddedTokenIds)
    lora: LiraLoraConfig = dataclasses.field(default_factory=LiraLoraConfig)
    omg_seg: OmgSegConfig = dataclasses.field(default_factory=OmgSegConfig)
    projector: SefeProjectorConfig = dataclasses.field(default_factory=SefeProjectorConfig)
    text_to_vision: TextToVisionConfig = dataclasses.field(default_factory=TextToVisionConfig)
    mask_loss: MaskLossConfig = dataclasses.field(default_factory=MaskLossConfig)
    seg_image_size: int = 1024
    stage: LiraStage = "finetune"

    def __post_init__(self) -> None:
        where = type(self).__name__
        vocab_size = self.vision_language.text.vocab_size
        for name, value in self.added_tokens.as_dict().items():
            _require(
                0 <= value < vocab_size,
                where,
                f"added_tokens.{name} = {value} is outside the vocabulary [0, {vocab_size})",
            )
        hidden = self.vision_language.text.hidden_size
        omg = self.omg_seg
        for name, value, expected in (
            ("projector.llm_hidden_size", self.projector.llm_hidden_size, hidden),
            ("text_to_vision.llm_hidden_size", self.text_to_vision.llm_hidden_size, hidden),
            ("projector.query_channels", self.projector.query_channels, omg.hidden_size),
            ("projector.clip_channels", self.projector.clip_channels, omg.backbone.dims[-1]),
            ("projector.pixel_shuffle_ratio", self.projector.pixel_shuffle_ratio, omg.pixel_shuffle_ratio),
            ("text_to_vision.out_channels", self.text_to_vision.out_channels, 2 * omg.hidden_size),
        ):
            _require(value == expected, where, f"{name} = {value} does not fit the model (expected {expected})")
        step = omg.strides[-1] * omg.pixel_shuffle_ratio
        _require(
            self.seg_image_size > 0 and self.seg_image_size % step == 0,
            where,
            f"seg_image_size {self.seg_image_size} must be a positive multiple of {step}",
        )
        _require(self.stage in ("finetune", "pretrain"), where, f"unknown stage {self.stage!r}")
        _require(
            self.stage == "finetune" or not self.projector.cross_attention,
            where,
            "stage 'pretrain' needs projector.cross_attention=False (the original's add_seg_pretrain with "
            "add_cross refers to a module that does not exist, lira-model.md §15.7)",
        )

    def for_stage(self, stage: LiraStage) -> LiraConfig:
        """This config for a training stage: `pretrain` drops the projector's cross-attention (stage-1 configs
        set `add_cross=False`); `finetune` restores it."""
        projector = dataclasses.replace(self.projector, cross_attention=stage == "finetune")
        return dataclasses.replace(self, stage=stage, projector=projector)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LiraConfig:
        return config_from_dict(cls, data)


def _lira_2b() -> LiraConfig:
    """InternVL2-2B (InternViT-300M + InternLM2-chat-1.8B) plus LIRA's six tokens, LoRA r=128, alpha=256,
    OMG-Seg ConvNeXt-L and the SEFE / `[SEG]` projectors at H = 2048."""
    return LiraConfig(
        vision_language=LiraVisionLanguageConfig(text=LiraTextConfig(vocab_size=92553 + 6)),
        added_tokens=LiraAddedTokenIds.after(92553),
        lora=LiraLoraConfig(rank=128, alpha=256.0),
        omg_seg=OMG_SEG_CONVNEXT_LARGE,
        projector=SEFE_PROJECTOR_2B,
        text_to_vision=TEXT_TO_VISION_2B,
    )


def _lira_8b() -> LiraConfig:
    """InternVL2-8B (InternViT-300M + InternLM2.5-7B-chat) plus LIRA's tokens, LoRA r=256, alpha=512,
    OMG-Seg ConvNeXt-L and the projectors at H = 4096.

    The InternLM2.5-7B dimensions are the public model card values, not checked against a checkpoint here
    (lira-model.md §16); loading a real InternVL2-8B folder compares them with its `config.json`.
    """
    text = LiraTextConfig(
        vocab_size=92553 + 6,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
    )
    return LiraConfig(
        vision_language=LiraVisionLanguageConfig(text=text),
        added_tokens=LiraAddedTokenIds.after(92553),
        lora=LiraLoraConfig(rank=256, alpha=512.0),
        omg_seg=OMG_SEG_CONVNEXT_LARGE,
        projector=SEFE_PROJECTOR_8B,
        text_to_vision=TEXT_TO_VISION_8B,
    )


def _lira_tiny() -> LiraConfig:
    """Same architecture at tiny widths, for tests and demos.

    Vision-language part: the fixtures/internvl2_tiny sizes (56 px tiles of 4 tokens, LLM width 64, vocab 300
    with the chat tokens at 289..299, plus LIRA's six tokens at 300..305). Segmentation part: the
    fixtures/lira_seg_tiny sizes (`OMG_SEG_TINY`: 8 queries, width 64; projectors at H = 64), on a 192 px
    OMG input (3x3 = 9 pixel tokens, as the fixture). Point sampling uses 256 points instead of 12544.
    """
    vision = LiraVisionConfig(
        image_size=56, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4
    )
    text = LiraTextConfig(
        vocab_size=300 + 6,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    chat_tokens = LiraChatTokenIds(im_end=289, im_start=290, img_start=291, img_end=292, img_context=293)
    return LiraConfig(
        vision_language=LiraVisionLanguageConfig(vision=vision, text=text, chat_tokens=chat_tokens),
        added_tokens=LiraAddedTokenIds.after(300),
        lora=LiraLoraConfig(rank=8, alpha=16.0),
        omg_seg=OMG_SEG_TINY,
        projector=SEFE_PROJECTOR_TINY,
        text_to_vision=TEXT_TO_VISION_TINY,
        mask_loss=MaskLossConfig(num_points=256),
        seg_image_size=192,
    )


PRESETS: dict[str, Callable[[], LiraConfig]] = {
    "lira-2b": _lira_2b,
    "lira-8b": _lira_8b,
    "lira-tiny": _lira_tiny,
}


def preset(name: str) -> LiraConfig:
    """The named preset (`lira-2b`, `lira-8b`, `lira-tiny`)."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise KeyError(f"unknown LIRA preset {name!r}; known presets: {sorted(PRESETS)}") from None
