"""Vision-language configs: parsing an original InternVL2 config.json, presets, native mapping, validation."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from models.lira.config import (
    LiraAddedTokenIds,
    LiraChatTokenIds,
    LiraConfig,
    LiraLoraConfig,
    LiraTextConfig,
    LiraVisionConfig,
    LiraVisionLanguageConfig,
    preset,
    vision_language_config_from_internvl,
)

FIXTURE_CONFIG = Path(__file__).parents[2] / "fixtures" / "internvl2_tiny" / "single" / "config.json"
TINY_CHAT = LiraChatTokenIds(im_end=289, im_start=290, img_start=291, img_end=292, img_context=293)


@pytest.fixture
def fixture_json() -> dict:
    return json.loads(FIXTURE_CONFIG.read_text())


def test_parse_fixture_config(fixture_json: dict) -> None:
    """Values from the fixture README's configuration tables."""
    config = vision_language_config_from_internvl(fixture_json, chat_tokens=TINY_CHAT)
    assert config.vision == LiraVisionConfig(
        image_size=56,
        patch_size=14,
        num_channels=3,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        qkv_bias=True,
        norm_type="layer_norm",
        layer_norm_eps=1e-6,
        hidden_act="gelu",
        layer_scale_init_value=1.0,
    )
    assert config.text == LiraTextConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        hidden_act="silu",
        rms_norm_eps=1e-5,
        rope_theta=1e6,
        rope_type="dynamic",
        rope_factor=2.0,
        max_position_embeddings=32768,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    assert config.downsample_ratio == 0.5
    assert config.tokens_per_tile == 4  # (56 / 14 / 2)^2
    assert config.mlp1_input_size == 256
    assert config.attn_implementation == "eager"


def test_force_image_size_wins(fixture_json: dict) -> None:
    fixture_json["vision_config"]["image_size"] = 224
    config = vision_language_config_from_internvl(fixture_json, chat_tokens=TINY_CHAT)
    assert config.vision.image_size == 56


def test_native_configs_avoid_the_documented_hazards() -> None:
    """native-internvl.md, "Discrepancies and hazards": each default that would be wrong is overridden."""
    config = preset("lira-2b").vision_language
    vision = config.vision.to_hf("eager")
    assert vision.attention_bias is True
    assert vision.use_mean_pooling is True
    assert vision.layer_norm_eps == 1e-6
    assert vision.use_qk_norm is False
    text = config.text.to_hf("eager")
    assert text.rms_norm_eps == 1e-5
    assert text.rope_parameters == {"rope_type": "dynamic", "rope_theta": 1e6, "factor": 2.0}
    assert text.tie_word_embeddings is False
    assert text.head_dim == 128
    assert text._attn_implementation == "eager"
    top = config.to_hf()
    assert top.tie_word_embeddings is False
    assert top.projector_hidden_act == "gelu"
    assert top.image_token_id == 92546
    assert top.vision_feature_select_strategy == "default"


def test_presets() -> None:
    lira_2b = preset("lira-2b")
    vl = lira_2b.vision_language
    assert (vl.vision.image_size, vl.vision.patch_size, vl.vision.hidden_size) == (448, 14, 1024)
    assert (vl.vision.intermediate_size, vl.vision.num_hidden_layers, vl.vision.num_attention_heads) == (
        4096,
        24,
        16,
    )
    assert (vl.text.vocab_size, vl.text.hidden_size, vl.text.intermediate_size) == (92559, 2048, 8192)
    assert (vl.text.num_hidden_layers, vl.text.num_attention_heads, vl.text.num_key_value_heads) == (
        24,
        16,
        8,
    )
    assert vl.tokens_per_tile == 256
    assert vl.mlp1_input_size == 4096
    assert lira_2b.added_tokens.seg == 92553
    assert lira_2b.added_tokens.image_id == 92558
    assert vl.chat_tokens.im_end == 92542
    assert (lira_2b.lora.rank, lira_2b.lora.alpha, lira_2b.lora.scaling) == (128, 256.0, 2.0)

    lira_8b = preset("lira-8b")
    text = lira_8b.vision_language.text
    assert (text.hidden_size, text.intermediate_size, text.num_hidden_layers) == (4096, 14336, 32)
    assert (text.num_attention_heads, text.num_key_value_heads, text.vocab_size) == (32, 8, 92559)
    assert lira_8b.vision_language.vision == vl.vision
    assert (lira_8b.lora.rank, lira_8b.lora.scaling) == (256, 2.0)

    tiny = preset("lira-tiny")
    assert tiny.vision_language.text.vocab_size == 306
    assert tiny.added_tokens == LiraAddedTokenIds(seg=300, p_start=301, p_end=302, region=303, mark=304, image_id=305)
    assert tiny.vision_language.chat_tokens == TINY_CHAT
    with pytest.raises(KeyError, match="unknown LIRA preset 'lira-3b'"):
        preset("lira-3b")


def test_config_json_round_trip() -> None:
    for name in ("lira-2b", "lira-8b", "lira-tiny"):
        config = preset(name)
        assert LiraConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    vl = preset("lira-tiny").vision_language
    assert LiraVisionLanguageConfig.from_dict(json.loads(json.dumps(vl.to_dict()))) == vl


def test_from_dict_names_bad_fields() -> None:
    data = preset("lira-tiny").to_dict()
    data["vision_language"]["text"]["hidden_sise"] = 64
    with pytest.raises(ValueError, match=r"LiraConfig\.vision_language\.text: unknown field\(s\) \['hidden_sise'\]"):
        LiraConfig.from_dict(data)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: LiraVisionConfig(hidden_size=100, num_attention_heads=16),
            "hidden_size 100 is not a multiple",
        ),
        (lambda: LiraVisionConfig(image_size=450), "image_size 450 is not a multiple of patch_size 14"),
        (
            lambda: LiraTextConfig(num_attention_heads=16, num_key_value_heads=6),
            "not a multiple of num_key_value_heads",
        ),
        (lambda: LiraTextConfig(rope_factor=0.5), "rope_factor must be >= 1"),
        (lambda: LiraTextConfig(vocab_size=2), r"eos_token_id 2 is outside \[0, 2\)"),
        (lambda: LiraVisionLanguageConfig(downsample_ratio=0.25), "downsample_ratio must be 0.5"),
        (
            lambda: LiraVisionLanguageConfig(vision=LiraVisionConfig(image_size=42)),
            "3x3 patch grid must be even",
        ),
        (
            lambda: LiraVisionLanguageConfig(text=LiraTextConfig(vocab_size=92000)),
            r"chat_tokens.im_end = 92542 is outside the vocabulary \[0, 92000\)",
        ),
        (
            lambda: LiraConfig(added_tokens=LiraAddedTokenIds()),  # default VL vocabulary 92553 has no LIRA tokens
            r"added_tokens.seg = 92553 is outside the vocabulary \[0, 92553\)",
        ),
        (lambda: LiraLoraConfig(target_modules=("wqkv", "lm_head")), r"unknown target_modules \['lm_head'\]"),
        (lambda: LiraLoraConfig(rank=0), "rank must be positive"),
    ],
)
def test_validation_errors(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def _edited(data: dict, path: tuple[str, ...], value: object) -> dict:
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is None:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("model_type",), "llava", "expected model_type 'internvl_chat'"),
        (("vision_config", "qk_normalization"), True, "qk_normalization=true .* not supported"),
        (("llm_config", "model_type"), "qwen2", "model_type 'qwen2' is not supported"),
        (("llm_config", "bias"), True, "bias=true is not supported"),
        (
            ("llm_config", "rope_scaling"),
            {"type": "yarn", "factor": 4.0},
            "rope_scaling type 'yarn' is not supported",
        ),
        (("llm_config", "rms_norm_eps"), None, "llm_config: missing field 'rms_norm_eps'"),
        (("vision_config", "qkv_bias"), None, "vision_config: missing field 'qkv_bias'"),
        (("tie_word_embeddings",), True, "tie_word_embeddings=true is not supported"),
    ],
)
def test_parse_errors_name_the_field(fixture_json: dict, path: tuple[str, ...], value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        vision_language_config_from_internvl(_edited(fixture_json, path, value), chat_tokens=TINY_CHAT)


def test_rope_without_scaling(fixture_json: dict) -> None:
    fixture_json["llm_config"]["rope_scaling"] = None
    config = vision_language_config_from_internvl(fixture_json, chat_tokens=TINY_CHAT)
    assert config.text.rope_parameters() == {"rope_type": "default", "rope_theta": 1e6}


def test_configs_are_frozen() -> None:
    config = preset("lira-tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lora = LiraLoraConfig()  # type: ignore[misc]
