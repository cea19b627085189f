"""Parity of the segmentation half with the original LIRA code on the `lira_seg_tiny` fixture.

Every reference tensor of `expected.safetensors` (outputs of echo840/LIRA on mmdet/mmcv) is
recomputed here and compared with the fixture README's tolerance: |got − ref| ≤ 1e-4 + 1e-4·|ref|
for floats, exact for the uint8 masks. The OMG-Seg weights and class embeddings go through the
same loader as the official `omg_seg_convl.pth` / class-embedding files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import Tensor

from models.lira.checkpoint.omg_seg import load_omg_seg
from models.lira.config import (
    OMG_SEG_CONVNEXT_LARGE,
    OMG_SEG_TINY,
    SEFE_PROJECTOR_2B,
    SEFE_PROJECTOR_8B,
    SEFE_PROJECTOR_TINY,
    TEXT_TO_VISION_2B,
    TEXT_TO_VISION_TINY,
    ConvNextConfig,
    MaskDecoderConfig,
    OmgSegConfig,
    PixelDecoderConfig,
    SefeProjectorConfig,
    TextToVisionConfig,
)
from models.lira.projector import SefeProjector, TextToVisionProjector, valid_query_mask
from models.lira.segmentation import OmgSegEncoder, sine_positional_encoding_3d

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "lira_seg_tiny"
INPUT_KEYS = frozenset({"in.image", "in.seg_hidden_states", "in.batch_idxs", "in.internvl_embeds"})
with safe_open(FIXTURE / "expected.safetensors", framework="pt") as _handle:
    REFERENCE_KEYS = sorted(set(_handle.keys()) - INPUT_KEYS)


def _strip(state_dict: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)}


@pytest.fixture(scope="module")
def expected() -> dict[str, Tensor]:
    return load_file(FIXTURE / "expected.safetensors")


@pytest.fixture(scope="module")
def encoder() -> OmgSegEncoder:
    model = OmgSegEncoder(OMG_SEG_TINY).eval()
    load_omg_seg(model, FIXTURE / "omg_seg.safetensors", FIXTURE / "ov_classifier.safetensors")
    return model


@pytest.fixture(scope="module")
def computed(encoder: OmgSegEncoder, expected: dict[str, Tensor]) -> dict[str, Tensor]:
    """Every reference quantity recomputed, keyed as in `expected.safetensors`."""
    projector_weights = load_file(FIXTURE / "lira_projectors.safetensors")
    projector = SefeProjector(SEFE_PROJECTOR_TINY).eval()
    projector.load_state_dict(_strip(projector_weights, "projector."), strict=True)
    text_to_vision = TextToVisionProjector(TEXT_TO_VISION_TINY).eval()
    text_to_vision.load_state_dict(_strip(projector_weights, "projector_text2vision."), strict=True)

    got: dict[str, Tensor] = {}
    image = expected["in.image"]
    internvl = expected["in.internvl_embeds"]
    head = encoder.panoptic_head
    with torch.no_grad():
        features = encoder.backbone(image)
        got.update({f"backbone.feat{i}": f for i, f in enumerate(features)})

        captured: list[Tensor] = []
        hook = head.pixel_decoder.encoder.layers[0].register_forward_hook(lambda m, i, o: captured.append(o))
        memory, decoded = head(features, keep_intermediate=True)
        hook.remove()
        got["pixdec.encoder_layer0"] = captured[0]
        got["pixdec.mask_features"] = memory.mask_features
        got.update({f"pixdec.multi_scale_memory{i}": m for i, m in enumerate(memory.multi_scale_memories)})
        for level in (0, 1):
            h, w = memory.multi_scale_memories[level].shape[-2:]
            got[f"decoder.pos_embed{level}"] = sine_positional_encoding_3d(h, w, OMG_SEG_TINY.hidden_size // 2)
        got.update({f"decoder.layer{i}.query": q for i, q in enumerate(decoded.layer_queries)})
        for k, pred in enumerate(decoded.predictions):
            got[f"decoder.pred{k}.cls_iou"] = torch.cat([pred.class_logits, pred.iou_logits], dim=-1)
            got[f"decoder.pred{k}.mask"] = pred.mask_logits
            got[f"decoder.pred{k}.attn_mask"] = pred.attn_mask

        outputs = encoder.encode(image)
        final = outputs.decoder.predictions[-1]
        got["omg.mask_cls_results"] = final.class_logits
        got["omg.iou_results"] = final.iou_logits
        c = OMG_SEG_TINY.hidden_size
        got["omg.query_feat"] = outputs.query_pos_feat[..., :c]
        got["omg.query_pos"] = outputs.query_pos_feat[..., c:]
        got["omg.query_pos_feat"] = outputs.query_pos_feat
        got["omg.clip_feature"] = outputs.clip_feature
        got["omg.attn_mask"] = outputs.attn_mask

        seg_queries = text_to_vision(expected["in.seg_hidden_states"])
        got["t2v.out"] = seg_queries
        seg = encoder.decode_seg_queries(seg_queries, outputs.memory, expected["in.batch_idxs"])
        got.update({f"llmseg.layer{i}.query": q for i, q in enumerate(seg.layer_queries)})
        for k, pred in enumerate(seg.predictions):
            got[f"llmseg.pred{k}.attn_mask"] = pred.attn_mask
            got[f"llmseg.mask{k}"] = pred.mask_logits

        core = projector.model
        pixels = core.project_pixels(outputs.clip_feature)[0]
        queries = core.project_queries(outputs.query_pos_feat)[0]
        keep = valid_query_mask(outputs.attn_mask)[0]
        got["proj.pix_pre_cross"] = pixels
        got["proj.query_pre_cross_all"] = queries
        got["proj.valid_query_mask"] = keep
        got["proj.pix_post_cross"] = core.cross_attend(pixels, internvl)
        got["proj.query_post_cross"] = core.cross_attend(queries[keep], internvl)
        got["proj.out_sequence"] = projector(
            outputs.clip_feature, outputs.query_pos_feat, outputs.attn_mask, [internvl]
        )[0]
    return got


def test_every_reference_tensor_is_recomputed(computed: dict[str, Tensor]) -> None:
    assert len(REFERENCE_KEYS) == 51
    assert sorted(computed) == REFERENCE_KEYS


@pytest.mark.parametrize("key", REFERENCE_KEYS)
def test_matches_original(key: str, computed: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    reference, got = expected[key], computed[key]
    assert tuple(got.shape) == tuple(reference.shape), key
    if reference.dtype == torch.uint8:
        assert got.dtype == torch.bool, key
        mismatches = int((got.to(torch.uint8) != reference).sum())
        assert mismatches == 0, f"{key}: {mismatches} mask entries differ"
    else:
        excess = (got - reference).abs() - (1e-4 + 1e-4 * reference.abs())
        assert bool((excess <= 0).all()), f"{key}: exceeds tolerance by up to {excess.max():.3g}"


def test_tiny_presets_match_fixture_configs() -> None:
    configs = json.loads((FIXTURE / "configs.json").read_text())
    visual = configs["omg_seg_visual_encoder"]
    head = visual["panoptic_head"]
    pixel = head["pixel_decoder"]
    pixel_attn = pixel["encoder"]["layer_cfg"]["self_attn_cfg"]
    decoder = head["transformer_decoder"]
    timm = configs["timm_convnext"]
    ov_shape = configs["ov_classifier"]["shape"]
    built = OmgSegConfig(
        backbone=ConvNextConfig(dims=tuple(timm["dims"]), depths=tuple(timm["depths"])),
        pixel_decoder=PixelDecoderConfig(
            num_layers=pixel["encoder"]["num_layers"],
            num_heads=pixel_attn["num_heads"],
            num_levels=pixel_attn["num_levels"],
            num_points=pixel_attn["num_points"],
            ffn_channels=pixel["encoder"]["layer_cfg"]["ffn_cfg"]["feedforward_channels"],
            num_groups=pixel["norm_cfg"]["num_groups"],
        ),
        decoder=MaskDecoderConfig(
            num_layers=decoder["num_layers"],
            num_heads=decoder["layer_cfg"]["cross_attn_cfg"]["num_heads"],
            ffn_channels=decoder["layer_cfg"]["ffn_cfg"]["feedforward_channels"],
            num_queries=head["num_queries"],
        ),
        hidden_size=head["feat_channels"],
        strides=tuple(head["strides"]),
        num_things_classes=head["num_things_classes"],
        num_stuff_classes=head["num_stuff_classes"],
        class_embed_dim=ov_shape[2],
        class_embed_prototypes=ov_shape[1],
        pixel_shuffle_ratio=visual["pixel_shuffle_down_ratio"],
    )
    assert built == OMG_SEG_TINY
    assert head["in_channels"] == list(OMG_SEG_TINY.backbone.dims)
    assert head["out_channels"] == head["feat_channels"]
    assert 2 * pixel["positional_encoding"]["num_feats"] == head["feat_channels"]
    assert 2 * head["positional_encoding"]["num_feats"] == head["feat_channels"]
    assert decoder["layer_cfg"]["self_attn_cfg"]["num_heads"] == OMG_SEG_TINY.decoder.num_heads

    projector = configs["projector"]
    kwargs = projector["config_kwargs"]
    assert (
        SefeProjectorConfig(
            llm_hidden_size=kwargs["llm_hidden_size"],
            query_channels=kwargs["query_channels"],
            clip_channels=kwargs["feat_channels"],
            pixel_shuffle_ratio=kwargs["pixel_shuffle_ratio"],
            depth=kwargs["depth"],
            cross_attention=projector["ctor_args"]["add_cross"],
            cross_attention_heads=projector["ctor_args"]["cross_head_num"],
        )
        == SEFE_PROJECTOR_TINY
    )
    assert SEFE_PROJECTOR_TINY.feat_channels == projector["resolved"]["feat_channels"]
    t2v = configs["projector_text2vision"]["config_kwargs"]
    assert TextToVisionConfig(t2v["visual_hidden_size"], t2v["llm_hidden_size"], t2v["depth"]) == TEXT_TO_VISION_TINY


def test_full_size_presets_match_reference_note() -> None:
    """Numbers from lira-model.md §2.3, §3.1 and §6."""
    cfg = OMG_SEG_CONVNEXT_LARGE
    assert cfg.backbone.dims == (192, 384, 768, 1536) and cfg.backbone.depths == (3, 3, 27, 3)
    assert (cfg.pixel_decoder.num_layers, cfg.pixel_decoder.num_heads, cfg.pixel_decoder.num_levels) == (
        6,
        8,
        3,
    )
    assert (cfg.pixel_decoder.num_points, cfg.pixel_decoder.ffn_channels, cfg.pixel_decoder.num_groups) == (
        4,
        1024,
        32,
    )
    assert (cfg.decoder.num_layers, cfg.decoder.num_heads, cfg.decoder.ffn_channels) == (9, 8, 2048)
    assert (cfg.decoder.num_queries, cfg.hidden_size, cfg.num_classes) == (300, 256, 133)
    assert cfg.clip_feature_channels == 6656
    assert SEFE_PROJECTOR_2B.feat_channels == 6144 and SEFE_PROJECTOR_2B.llm_hidden_size == 2048
    assert SEFE_PROJECTOR_8B.llm_hidden_size == 4096 and SEFE_PROJECTOR_2B.cross_attention_heads == 32
    assert (TEXT_TO_VISION_2B.llm_hidden_size, TEXT_TO_VISION_2B.out_channels) == (2048, 512)
