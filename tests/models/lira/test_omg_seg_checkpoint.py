"""Key mapping of OMG-Seg checkpoints: synthetic files in the original layout, loaded for real.

The original key list and shapes come from the fixture's `keys.txt` (written from the original
model), not from our module, so a renamed or reshaped module fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor

from models.lira.checkpoint.common import CheckpointKeyError
from models.lira.checkpoint.omg_seg import (
    load_omg_seg,
    read_class_embeddings,
    read_omg_seg_state_dict,
)
from models.lira.config import OMG_SEG_TINY
from models.lira.segmentation import OmgSegEncoder

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "lira_seg_tiny"

IGNORED = {
    "backbone.head.0.norm.weight",
    "backbone.head.0.norm.bias",
    "backbone.head.1.mlp.fc1.weight",
    "backbone.head.1.mlp.fc1.bias",
    "backbone.head.1.mlp.fc2.weight",
    "panoptic_head.mask_tokens.weight",
    "panoptic_head.pb_embedding.weight",
    "panoptic_head.pos_linear.weight",
    "panoptic_head.pos_linear.bias",
}


def _original_layout() -> dict[str, tuple[int, ...]]:
    shapes = {}
    for line in (FIXTURE / "keys.txt").read_text().splitlines():
        if line.startswith("omg_seg.safetensors\t"):
            _, key, _, shape = line.split("\t")
            shapes[key] = tuple(int(x) for x in shape.strip("[]").split(", "))
    return shapes


@pytest.fixture
def synthetic() -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(7)
    return {k: torch.randn(shape, generator=generator) for k, shape in _original_layout().items()}


@pytest.fixture
def class_embeddings() -> Tensor:
    raw = torch.randn(5, 2, 16, generator=torch.Generator().manual_seed(3))
    return raw / raw.norm(dim=-1, keepdim=True)


def _write_pth(path: Path, content: object) -> Path:
    torch.save(content, path)
    return path


def test_original_layout_is_the_fixture_file() -> None:
    assert len(_original_layout()) == 204


def test_tensors_land_where_they_must(tmp_path: Path, synthetic: dict[str, Tensor], class_embeddings: Tensor) -> None:
    weights = _write_pth(tmp_path / "omg_seg_convl.pth", {"state_dict": synthetic, "meta": {"epoch": 12}})
    classes = _write_pth(tmp_path / "classes.pth", class_embeddings)
    model = OmgSegEncoder(OMG_SEG_TINY)
    report = load_omg_seg(model, weights, classes)

    assert set(report.ignored) == IGNORED
    assert len(report.loaded) == 204 - len(IGNORED) == len(model.state_dict())
    head = model.panoptic_head
    decoder = head.transformer_decoder
    pixel = head.pixel_decoder
    placements = {
        "backbone.stem.0.weight": model.backbone.stem[0].weight,
        "backbone.stem.1.bias": model.backbone.stem[1].bias,
        "backbone.layer1.blocks.0.gamma": model.backbone.layer1.blocks[0].gamma,
        "backbone.layer2.downsample.0.weight": model.backbone.layer2.downsample[0].weight,
        "backbone.layer4.downsample.1.weight": model.backbone.layer4.downsample[1].weight,
        "backbone.layer3.blocks.1.conv_dw.weight": model.backbone.layer3.blocks[1].conv_dw.weight,
        "backbone.layer3.blocks.1.mlp.fc2.weight": model.backbone.layer3.blocks[1].mlp.fc2.weight,
        "panoptic_head.pixel_decoder.input_convs.0.conv.weight": pixel.input_convs[0].conv.weight,
        "panoptic_head.pixel_decoder.input_convs.2.gn.bias": pixel.input_convs[2].gn.bias,
        "panoptic_head.pixel_decoder.encoder.layers.1.self_attn.sampling_offsets.bias": (
            pixel.encoder.layers[1].self_attn.sampling_offsets.bias
        ),
        "panoptic_head.pixel_decoder.encoder.layers.0.ffn.layers.0.0.weight": pixel.encoder.layers[0]
        .ffn.layers[0][0]
        .weight,
        "panoptic_head.pixel_decoder.encoder.layers.0.ffn.layers.1.bias": pixel.encoder.layers[0].ffn.layers[1].bias,
        "panoptic_head.pixel_decoder.encoder.layers.1.norms.1.weight": pixel.encoder.layers[1].norms[1].weight,
        "panoptic_head.pixel_decoder.level_encoding.weight": pixel.level_encoding.weight,
        "panoptic_head.pixel_decoder.lateral_convs.0.conv.weight": pixel.lateral_convs[0].conv.weight,
        "panoptic_head.pixel_decoder.output_convs.0.gn.weight": pixel.output_convs[0].gn.weight,
        "panoptic_head.pixel_decoder.mask_feature.bias": pixel.mask_feature.bias,
        "panoptic_head.transformer_decoder.layers.2.cross_attn.attn.in_proj_weight": (
            decoder.layers[2].cross_attn.attn.in_proj_weight
        ),
        "panoptic_head.transformer_decoder.layers.0.self_attn.attn.out_proj.bias": (
            decoder.layers[0].self_attn.attn.out_proj.bias
        ),
        "panoptic_head.transformer_decoder.layers.1.norms.2.weight": decoder.layers[1].norms[2].weight,
        "panoptic_head.transformer_decoder.post_norm.bias": decoder.post_norm.bias,
        "panoptic_head.query_feat.weight": head.query_feat.weight,
        "panoptic_head.query_embed.weight": head.query_embed.weight,
        "panoptic_head.level_embed.weight": head.level_embed.weight,
        "panoptic_head.mask_embed.4.weight": head.mask_embed[4].weight,
        "panoptic_head.cls_proj.4.weight": head.cls_proj[4].weight,
        "panoptic_head.mask_pooling_proj.0.weight": head.mask_pooling_proj[0].weight,
        "panoptic_head.mask_pooling_proj.1.bias": head.mask_pooling_proj[1].bias,
        "panoptic_head.iou_embed.4.bias": head.iou_embed[4].bias,
    }
    for key, parameter in placements.items():
        assert torch.equal(parameter, synthetic[key]), key

    # Stride-32 input conv first (64 backbone channels), stride-8 last (32 channels).
    assert pixel.input_convs[0].conv.in_channels == 64 and pixel.input_convs[2].conv.in_channels == 32
    # Class embeddings: (dim, classes + 1, prototypes), background all zero.
    assert head.cls_embed.shape == (16, 6, 2)
    for k in range(5):
        for p in range(2):
            assert torch.equal(head.cls_embed[:, k, p], class_embeddings[k, p])
    assert not head.cls_embed[:, 5].any()


def test_flat_pth_and_safetensors_give_the_same_model(
    tmp_path: Path, synthetic: dict[str, Tensor], class_embeddings: Tensor
) -> None:
    wrapped = _write_pth(tmp_path / "wrapped.pth", {"state_dict": synthetic})
    flat = _write_pth(tmp_path / "flat.pth", synthetic)
    safetensors = tmp_path / "weights.safetensors"
    save_file(synthetic, safetensors)
    classes_st = tmp_path / "classes.safetensors"
    save_file({"ov_classifier": class_embeddings}, classes_st)
    classes_pth = _write_pth(tmp_path / "classes.pth", class_embeddings)

    states = []
    for weights, classes in ((wrapped, classes_pth), (flat, classes_pth), (safetensors, classes_st)):
        model = OmgSegEncoder(OMG_SEG_TINY)
        load_omg_seg(model, weights, classes)
        states.append((model.state_dict(), model.panoptic_head.cls_embed.clone()))
    for state, cls_embed in states[1:]:
        assert state.keys() == states[0][0].keys()
        assert all(torch.equal(state[k], states[0][0][k]) for k in state)
        assert torch.equal(cls_embed, states[0][1])


def test_missing_key_is_named(tmp_path: Path, synthetic: dict[str, Tensor], class_embeddings: Tensor) -> None:
    del synthetic["panoptic_head.transformer_decoder.layers.1.norms.2.bias"]
    weights = _write_pth(tmp_path / "w.pth", {"state_dict": synthetic})
    with pytest.raises(
        CheckpointKeyError,
        match=r"1 missing keys:\n    panoptic_head\.transformer_decoder\.layers\.1\.norms\.2\.bias",
    ) as caught:
        load_omg_seg(OmgSegEncoder(OMG_SEG_TINY), weights, _write_pth(tmp_path / "c.pth", class_embeddings))
    assert caught.value.missing == ["panoptic_head.transformer_decoder.layers.1.norms.2.bias"]
    assert caught.value.unexpected == [] and caught.value.mismatched == []


def test_extra_key_is_named(tmp_path: Path, synthetic: dict[str, Tensor], class_embeddings: Tensor) -> None:
    synthetic["panoptic_head.cls_embed_extra.weight"] = torch.zeros(3)
    weights = _write_pth(tmp_path / "w.pth", {"state_dict": synthetic})
    with pytest.raises(
        CheckpointKeyError, match=r"1 unexpected keys:\n    panoptic_head\.cls_embed_extra\.weight"
    ) as caught:
        load_omg_seg(OmgSegEncoder(OMG_SEG_TINY), weights, _write_pth(tmp_path / "c.pth", class_embeddings))
    assert caught.value.unexpected == ["panoptic_head.cls_embed_extra.weight"] and caught.value.missing == []


def test_wrong_shape_is_named(tmp_path: Path, synthetic: dict[str, Tensor], class_embeddings: Tensor) -> None:
    synthetic["panoptic_head.query_feat.weight"] = torch.zeros(300, 64)
    weights = _write_pth(tmp_path / "w.pth", {"state_dict": synthetic})
    with pytest.raises(
        CheckpointKeyError, match=r"panoptic_head\.query_feat\.weight: file \(300, 64\), model \(8, 64\)"
    ):
        load_omg_seg(OmgSegEncoder(OMG_SEG_TINY), weights, _write_pth(tmp_path / "c.pth", class_embeddings))


class _NotATensor:
    pass


def test_pickled_objects_are_refused(tmp_path: Path, synthetic: dict[str, Tensor]) -> None:
    weights = _write_pth(tmp_path / "w.pth", {"state_dict": synthetic, "meta": _NotATensor()})
    with pytest.raises(ValueError, match=r"weights_only=True"):
        read_omg_seg_state_dict(weights)


def test_non_tensor_entries_are_refused(tmp_path: Path) -> None:
    weights = _write_pth(tmp_path / "w.pth", {"state_dict": {"backbone.stem.0.weight": [1, 2]}})
    with pytest.raises(ValueError, match=r"backbone\.stem\.0\.weight"):
        read_omg_seg_state_dict(weights)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nowhere\.pth"):
        read_omg_seg_state_dict(tmp_path / "nowhere.pth")


def test_class_embeddings_wrong_count_is_refused(tmp_path: Path, synthetic: dict[str, Tensor]) -> None:
    raw = torch.randn(6, 2, 16)
    classes = _write_pth(tmp_path / "c.pth", raw / raw.norm(dim=-1, keepdim=True))
    weights = _write_pth(tmp_path / "w.pth", {"state_dict": synthetic})
    with pytest.raises(ValueError, match=r"expected shape .* \(5, 2, 16\), got \(6, 2, 16\)"):
        load_omg_seg(OmgSegEncoder(OMG_SEG_TINY), weights, classes)


def test_class_embeddings_must_be_normalised(tmp_path: Path) -> None:
    classes = _write_pth(tmp_path / "c.pth", torch.full((5, 2, 16), 0.5))
    with pytest.raises(ValueError, match="unit L2 norm"):
        read_class_embeddings(classes)


def test_class_embeddings_must_be_3d(tmp_path: Path) -> None:
    classes = _write_pth(tmp_path / "c.pth", torch.eye(4))
    with pytest.raises(ValueError, match=r"\(classes, prototypes, dim\) tensor, got \(4, 4\)"):
        read_class_embeddings(classes)
