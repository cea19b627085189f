"""InternVL feature path and the vision-language module: pixel shuffle, splice, save → load round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.lira.checkpoint.common import (
    CheckpointKeyError,
    empty_weights,
    load_tensor_file,
    resolve_dtype,
    save_state_dict,
)
from models.lira.checkpoint.internvl import build_vision_language
from models.lira.config import LiraVisionLanguageConfig, preset
from models.lira.vision import pixel_shuffle, shuffle_vision_tokens
from models.lira.vision_language import LiraVisionLanguageModel, merge_image_features


def test_pixel_shuffle_order() -> None:
    """Output cell (R, C) concatenates the inputs at (2R, 2C), (2R, 2C+1), (2R+1, 2C), (2R+1, 2C+1)
    (fixture README). Input cell (r, c) holds the two channels [10r + c, -(10r + c)]."""
    rows, cols = 4, 6
    values = torch.tensor([[[10.0 * r + c, -(10.0 * r + c)] for c in range(cols)] for r in range(rows)])
    out = pixel_shuffle(values[None], 0.5)
    assert out.shape == (1, 2, 3, 8)
    for big_r in range(2):
        for big_c in range(3):
            expected = []
            for r, c in (
                (2 * big_r, 2 * big_c),
                (2 * big_r, 2 * big_c + 1),
                (2 * big_r + 1, 2 * big_c),
                (2 * big_r + 1, 2 * big_c + 1),
            ):
                expected += [10.0 * r + c, -(10.0 * r + c)]
            assert out[0, big_r, big_c].tolist() == expected


def test_pixel_shuffle_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="the 3x4 grid is not divisible by 2"):
        pixel_shuffle(torch.zeros(1, 3, 4, 2))
    with pytest.raises(ValueError, match="scale_factor must be 1/n"):
        pixel_shuffle(torch.zeros(1, 4, 4, 2), 0.4)
    with pytest.raises(ValueError, match="expects"):
        pixel_shuffle(torch.zeros(4, 4, 2))


def test_shuffle_vision_tokens_drops_cls() -> None:
    hidden = torch.arange(1, 18, dtype=torch.float32)[None, :, None].repeat(1, 1, 3)  # CLS = 1, patches 2..17
    hidden[:, 0] = 1e6
    out = shuffle_vision_tokens(hidden)
    assert out.shape == (1, 4, 12)
    assert out.max() < 1e6
    # Token 0 gathers grid cells (0,0), (0,1), (1,0), (1,1): patches 2, 3, 6, 7.
    assert out[0, 0].tolist() == [2.0] * 3 + [3.0] * 3 + [6.0] * 3 + [7.0] * 3
    with pytest.raises(ValueError, match="do not form a square grid"):
        shuffle_vision_tokens(torch.zeros(1, 6, 3))


def test_merge_image_features_in_order() -> None:
    ids = torch.tensor([[5, 9, 9, 6], [9, 7, 9, 8]])
    embeds = torch.zeros(2, 4, 2)
    features = torch.tensor([[[1.0, 1.0], [2.0, 2.0]], [[3.0, 3.0], [4.0, 4.0]]])
    merged = merge_image_features(ids, embeds, features, image_token_id=9)
    assert merged[:, :, 0].tolist() == [[0, 1, 2, 0], [3, 0, 4, 0]]
    assert embeds.abs().sum() == 0  # the input is not modified
    with pytest.raises(ValueError, match="4 image placeholder tokens \\(id 9\\) but 2 image feature vectors"):
        merge_image_features(ids, embeds, features[:1], image_token_id=9)


@pytest.fixture(scope="module")
def tiny_config() -> LiraVisionLanguageConfig:
    return preset("lira-tiny").vision_language


def test_extract_features_shapes_and_checks(tiny_config: LiraVisionLanguageConfig) -> None:
    torch.manual_seed(0)
    model = LiraVisionLanguageModel(tiny_config).eval()
    with torch.no_grad():
        features = model.extract_internvl_features(torch.randn(3, 3, 56, 56))
    assert features.shape == (3, tiny_config.tokens_per_tile, tiny_config.text.hidden_size)
    with pytest.raises(ValueError, match=r"pixel_values must have shape \(tiles, 3, 56, 56\), got \(3, 3, 448, 448\)"):
        model.extract_internvl_features(torch.randn(3, 3, 448, 448))


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_save_load_round_trip_is_bit_exact(tmp_path: Path, tiny_config: LiraVisionLanguageConfig, dtype: str) -> None:
    torch.manual_seed(1)
    # Built directly in the dtype: `.to(bfloat16)` would also round the float32 rotary buffer.
    with empty_weights(resolve_dtype(dtype), "cpu"):
        original = LiraVisionLanguageModel(tiny_config).eval()
    for parameter in original.parameters():
        torch.nn.init.normal_(parameter, std=0.5)
    save_state_dict(original.state_dict(), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(tiny_config.to_dict()))

    config = LiraVisionLanguageConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    reloaded = build_vision_language(config, load_tensor_file(tmp_path / "model.safetensors"), dtype=dtype)
    before, after = original.state_dict(), reloaded.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        assert after[key].dtype == before[key].dtype
        assert torch.equal(after[key].view(torch.uint8), before[key].view(torch.uint8)), key

    ids = torch.tensor([[1, 290, 291, 293, 293, 293, 293, 292, 40, 289]])
    pixels = torch.randn(1, 3, 56, 56)
    with torch.no_grad():
        assert torch.equal(reloaded(ids, pixels).logits, original(ids, pixels).logits)


def test_load_of_an_incomplete_state_dict_names_the_key(tiny_config: LiraVisionLanguageConfig) -> None:
    state = LiraVisionLanguageModel(tiny_config).state_dict()
    del state["mlp1.linear_2.bias"]
    state["mlp1.linear_3.bias"] = torch.zeros(64)
    with pytest.raises(CheckpointKeyError) as caught:
        build_vision_language(tiny_config, dict(state))
    assert caught.value.missing == ["mlp1.linear_2.bias"]
    assert caught.value.unexpected == ["mlp1.linear_3.bias"]


def test_training_forward_gives_a_loss_and_gradients(tiny_config: LiraVisionLanguageConfig) -> None:
    torch.manual_seed(2)
    model = LiraVisionLanguageModel(tiny_config).train()
    ids = torch.tensor([[1, 291, 293, 293, 293, 293, 292, 40, 41, 42, 289]])
    labels = ids.clone()
    labels[:, :7] = -100  # only the answer tokens are supervised
    loss = model(ids, torch.randn(1, 3, 56, 56), labels=labels).loss
    assert torch.isfinite(loss)
    loss.backward()
    assert model.mlp1.linear_1.weight.grad is not None and model.mlp1.linear_1.weight.grad.abs().sum() > 0
    assert model.vision_model.embeddings.cls_token.grad is not None
