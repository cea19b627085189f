"""Our own saved format (`save_lira` / `load_saved_lira`) and the seeded random builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from models.lira.checkpoint.common import CheckpointError, CheckpointKeyError
from models.lira.checkpoint.lira import (
    CLASS_EMBEDDINGS_KEY,
    build_lira_tiny,
    build_random_lira,
    load_saved_lira,
    save_lira,
)
from models.lira.config import preset
from models.lira.model import LiraModel


def everything(model: LiraModel) -> dict[str, torch.Tensor]:
    """Every persistent tensor plus the non-persistent class embeddings."""
    return {**model.state_dict(), CLASS_EMBEDDINGS_KEY: model.visual_encoder.panoptic_head.cls_embed}


def assert_bit_identical(a: LiraModel, b: LiraModel) -> None:
    left, right = everything(a), everything(b)
    assert left.keys() == right.keys()
    for key, value in left.items():
        assert right[key].dtype == value.dtype, key
        assert torch.equal(right[key].view(torch.uint8), value.view(torch.uint8)), key


@torch.no_grad()
def outputs(model: LiraModel) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    encoding = model.encode_images(torch.randn(1, 3, 192, 192, generator=g), [torch.randn(2, 3, 56, 56, generator=g)])
    ids = torch.tensor([[1, 290, -200, 40, 300, 289]])
    embeds = model.build_inputs_embeds(ids, [[encoding.sequences[0]]])
    logits = model.language_model(inputs_embeds=embeds.inputs_embeds).logits
    hidden = torch.randn(1, 64, generator=g).to(model.projector_dtype)
    mask = model.seg_hidden_states_to_masks(hidden, encoding.omg, torch.tensor([0]), [(64, 48)])[0]
    return logits, mask


def test_random_build_is_deterministic() -> None:
    assert_bit_identical(build_lira_tiny(seed=3), build_lira_tiny(seed=3))
    other = everything(build_lira_tiny(seed=4))
    same = everything(build_lira_tiny(seed=3))
    assert not torch.equal(other["language_model.lm_head.weight"], same["language_model.lm_head.weight"])
    norms = same[CLASS_EMBEDDINGS_KEY][:, :5].norm(dim=0)  # (dim, classes + 1, prototypes): unit rows
    torch.testing.assert_close(norms, torch.ones_like(norms))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_save_load_round_trips_bit_exactly(tmp_path: Path, dtype: torch.dtype) -> None:
    model = build_random_lira(preset("lira-tiny"), seed=5, dtype=dtype)
    assert model.visual_encoder.backbone.stem[0].weight.dtype == torch.float32  # OMG-Seg stays fp32
    files = save_lira(model, tmp_path)
    assert [f.name for f in files] == ["config.json", "model.safetensors"]
    loaded, report = load_saved_lira(tmp_path)
    assert_bit_identical(model, loaded)
    assert set(report.sources) == set(everything(model))
    assert loaded.config == model.config
    for got, expected in zip(outputs(loaded), outputs(model), strict=True):
        assert torch.equal(got, expected)


def test_sharded_save_and_attached_lora(tmp_path: Path) -> None:
    model = build_lira_tiny(seed=6)
    model.prepare_for_training()
    with torch.no_grad():  # as after training: adapters that change the model
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(generator=torch.Generator().manual_seed(len(name)))
    files = save_lira(model, tmp_path, max_shard_bytes=200_000)
    shards = [f for f in files if f.name.startswith("model-")]
    assert len(shards) > 2 and (tmp_path / "model.safetensors.index.json").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["lora_attached"] is True
    loaded, _ = load_saved_lira(tmp_path)
    assert loaded.lora_attached
    assert_bit_identical(model, loaded)
    model.eval()
    for got, expected in zip(outputs(loaded), outputs(model), strict=True):
        assert torch.equal(got, expected)


def test_load_in_another_dtype(tmp_path: Path) -> None:
    save_lira(build_lira_tiny(seed=7), tmp_path)
    loaded, _ = load_saved_lira(tmp_path, dtype="bf16")
    assert loaded.language_model.lm_head.weight.dtype == torch.bfloat16
    assert loaded.visual_encoder.panoptic_head.cls_embed.dtype == torch.float32


def test_saved_file_with_a_missing_or_extra_key_is_named(tmp_path: Path) -> None:
    save_lira(build_lira_tiny(seed=8), tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["projector.model.seperate_embed.weight"]
    tensors["projector.model.extra.weight"] = torch.zeros(2)
    save_file(tensors, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointKeyError) as caught:
        load_saved_lira(tmp_path)
    assert caught.value.missing == ["projector.model.seperate_embed.weight"]
    assert caught.value.unexpected == ["projector.model.extra.weight"]


def test_not_a_saved_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "internvl_chat"}))
    with pytest.raises(CheckpointError, match="not an attreval-lira v1 folder"):
        load_saved_lira(tmp_path)
