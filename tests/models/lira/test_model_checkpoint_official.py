"""`load_lira` on a synthetic full set of official files (original layouts, tiny sizes, random values).

Expected placements are computed here from the original layouts (lira-model.md §2.1, §3.1, §11.2 and
native-internvl.md's wqkv row rule via `vl_synthetic.independent_wqkv_split`), not by the converters under test.
"""

from __future__ import annotations

from pathlib import Path

import lira_synthetic as lsyn
import pytest
import torch
import vl_synthetic as syn

from models.lira.checkpoint.common import CheckpointKeyError
from models.lira.checkpoint.lira import CLASS_EMBEDDINGS_KEY, lira_pth_state_dict, load_lira, save_lira_pth

SCALE = lsyn.ALPHA / lsyn.RANK  # 2.0
PEFT = "llm.base_model.model."
HEADS, KV = syn.TEXT["heads"], syn.TEXT["kv_heads"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return lsyn.write_official_files(tmp_path_factory.mktemp("official"))


def _load(files: dict[str, Path], **kwargs: object) -> tuple:
    config = kwargs.pop("config", None) or lsyn.config()
    return load_lira(
        config, files["internvl"], files["omg"], files["classes"], kwargs.pop("lira", files["lira"]), **kwargs
    )


def test_tensors_land_where_they_must_with_lora_merged(files: dict[str, Path]) -> None:
    model, report = _load(files)
    state = model.state_dict()
    base = syn.internvl_tensors()
    pth = lsyn.lira_pth_stage2()
    omg = lsyn.omg_seg_state_dict()

    def merged(module: str, layer: int) -> torch.Tensor:
        prefix = f"{PEFT}model.layers.{layer}.{module}."
        weight = base[f"language_model.model.layers.{layer}.{module}.weight"]
        return weight + SCALE * pth[prefix + "lora_B.default.weight"] @ pth[prefix + "lora_A.default.weight"]

    for layer in range(2):
        q, k, v = syn.independent_wqkv_split(merged("attention.wqkv", layer), HEADS, KV)
        attention = f"language_model.model.layers.{layer}.self_attn."
        for name, expected in (("q_proj", q), ("k_proj", k), ("v_proj", v)):
            torch.testing.assert_close(state[attention + name + ".weight"], expected, rtol=0, atol=1e-5)
        torch.testing.assert_close(state[attention + "o_proj.weight"], merged("attention.wo", layer), rtol=0, atol=1e-5)
        mlp = f"language_model.model.layers.{layer}.mlp."
        for ours, theirs in (("gate_proj", "w1"), ("up_proj", "w3"), ("down_proj", "w2")):
            expected = merged(f"feed_forward.{theirs}", layer)
            torch.testing.assert_close(state[mlp + ours + ".weight"], expected, rtol=0, atol=1e-5)
    head = pth[PEFT + "output.base_layer.weight"] + SCALE * (
        pth[PEFT + "output.lora_B.default.weight"] @ pth[PEFT + "output.lora_A.default.weight"]
    )
    torch.testing.assert_close(state["language_model.lm_head.weight"], head, rtol=0, atol=1e-5)
    # Embeddings come from the .pth, not the folder; the folder's norms and vision weights are kept.
    assert torch.equal(state["language_model.model.embed_tokens.weight"], pth[PEFT + "model.tok_embeddings.weight"])
    assert torch.equal(state["language_model.model.norm.weight"], base["language_model.model.norm.weight"])
    assert torch.equal(state["mlp1.linear_1.weight"], base["mlp1.1.weight"])
    # OMG-Seg keys under visual_encoder., projectors unchanged, class embeddings with a zero background class.
    for key in ("panoptic_head.query_feat.weight", "backbone.stem.0.weight", "panoptic_head.mask_embed.4.bias"):
        assert torch.equal(state[f"visual_encoder.{key}"], omg[key]), key
    for key in ("projector.model.cross_beforellm.multihead_attn.in_proj_weight", "projector_text2vision.model.2.bias"):
        assert torch.equal(state[key], pth[key]), key
    cls_embed = model.visual_encoder.panoptic_head.cls_embed  # (dim, classes + 1, prototypes)
    classes = lsyn.class_embeddings()
    assert torch.equal(cls_embed[:, :5].permute(1, 2, 0), classes) and not cls_embed[:, 5].any()
    assert model.visual_encoder.backbone.stem[0].weight.dtype == torch.float32

    # Every tensor assigned exactly once, the unused OMG-Seg keys listed.
    assert set(report.sources) == set(state) | {CLASS_EMBEDDINGS_KEY}
    assert report.fresh == []
    assert report.sources["language_model.model.embed_tokens.weight"] == str(files["lira"])
    assert report.sources["visual_encoder.backbone.stem.0.weight"] == str(files["omg"])
    assert len(report.ignored) == 9 and any("panoptic_head.pos_linear.weight" in key for key in report.ignored)


def test_official_pth_round_trips_through_attached_lora(files: dict[str, Path], tmp_path: Path) -> None:
    """official .pth → model (LoRA attached) → official .pth is lossless, key for key and bit for bit."""
    model, report = _load(files, lora="attach")
    assert model.lora_attached and report.fresh == []
    original = lsyn.lira_pth_stage2()
    exported = lira_pth_state_dict(model)
    assert exported.keys() == original.keys()
    for key, value in original.items():
        assert exported[key].dtype == value.dtype and torch.equal(exported[key], value), key
    # The packed wqkv base weight is the folder's wqkv unchanged (same grouped row order).
    wqkv = model.state_dict()["language_model.model.layers.1.self_attn.wqkv.base_layer.weight"]
    assert torch.equal(wqkv, syn.internvl_tensors()["language_model.model.layers.1.attention.wqkv.weight"])
    save_lira_pth(model, tmp_path / "again.pth")
    again = torch.load(tmp_path / "again.pth", weights_only=True)
    assert again.keys() == original.keys() and all(torch.equal(again[k], original[k]) for k in original)


def test_attached_then_merged_equals_merged_on_load(files: dict[str, Path]) -> None:
    merged, _ = _load(files)
    attached, _ = _load(files, lora="attach")
    ids = torch.tensor([[1, 5, 6, 7, 30, 31, 40, 41]])
    with torch.no_grad():
        logits_attached = attached.language_model(input_ids=ids).logits
        attached.merge_lora()
        logits_merged = merged.language_model(input_ids=ids).logits
    assert not attached.lora_attached
    expected, got = merged.state_dict(), attached.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(got[key], expected[key]), key  # same float32 merge rule, same split
    torch.testing.assert_close(logits_attached, logits_merged, rtol=0, atol=1e-4)


def test_stage1_file_round_trips_and_starts_stage2(files: dict[str, Path], tmp_path: Path) -> None:
    stage1 = lsyn.lira_pth_stage1()
    paths = lsyn.write_official_files(tmp_path, pth=stage1)
    model, _ = _load(paths, config=lsyn.config("pretrain"))
    exported = lira_pth_state_dict(model)
    assert exported.keys() == stage1.keys() and all(torch.equal(exported[k], stage1[k]) for k in stage1)

    # Stage 2 from the stage-1 file: cross-attention and LoRA are new; only the allowed prefix may be missing.
    with pytest.raises(CheckpointKeyError) as caught:
        _load(paths)
    assert "projector.model.cross_beforellm.multihead_attn.in_proj_weight" in caught.value.missing
    torch.manual_seed(0)
    model, report = _load(paths, lora="attach", allow_fresh=("projector.model.cross_beforellm.",))
    cross = [key for key in model.state_dict() if key.startswith("projector.model.cross_beforellm.")]
    lora = [key for key in model.state_dict() if ".lora_" in key]
    assert sorted(report.fresh) == sorted(cross + lora) and len(cross) == 8 and len(lora) == 22
    weights = model.projector.model.cross_beforellm
    assert torch.equal(weights.norm1.weight, torch.ones(lsyn.H)) and torch.equal(
        weights.norm2.bias, torch.zeros(lsyn.H)
    )
    assert torch.equal(weights.multihead_attn.in_proj_bias, torch.zeros(3 * lsyn.H))
    bound = (6 / (lsyn.H + lsyn.H)) ** 0.5  # Xavier-uniform bound of out_proj (fan_in = fan_out = H)
    assert weights.multihead_attn.out_proj.weight.abs().max() <= bound
    b_weights = [p for name, p in model.named_parameters() if "lora_B" in name]
    assert all(not p.any() for p in b_weights)  # peft starts B at zero: the model is unchanged
    assert torch.equal(model.projector.model.query_proj.weight, stage1["projector.model.query_proj.weight"])


@pytest.mark.parametrize(
    ("where", "key"),
    [
        ("omg", "panoptic_head.transformer_decoder.layers.1.norms.2.bias"),
        ("lira", "projector.model.seperate_embed.weight"),
        ("internvl", "language_model.model.layers.1.ffn_norm.weight"),
    ],
)
def test_missing_key_is_named(tmp_path: Path, where: str, key: str) -> None:
    tensors = {
        "omg": lsyn.omg_seg_state_dict(),
        "lira": lsyn.lira_pth_stage2(),
        "internvl": syn.internvl_tensors(),
    }
    del tensors[where][key]
    paths = lsyn.write_official_files(tmp_path, pth=tensors["lira"], omg=tensors["omg"], internvl=tensors["internvl"])
    with pytest.raises(CheckpointKeyError) as caught:
        _load(paths)
    named = {"omg": key, "lira": key, "internvl": "language_model.model.layers.1.post_attention_layernorm.weight"}
    assert caught.value.missing == [named[where]]
    assert named[where] in str(caught.value)


@pytest.mark.parametrize(
    ("where", "key"),
    [
        ("omg", "panoptic_head.extra_head.weight"),
        ("lira", "projector.model.extra_proj.weight"),
        ("internvl", "language_model.model.layers.0.attention.extra.weight"),
    ],
)
def test_extra_key_is_named(tmp_path: Path, where: str, key: str) -> None:
    tensors = {
        "omg": lsyn.omg_seg_state_dict(),
        "lira": lsyn.lira_pth_stage2(),
        "internvl": syn.internvl_tensors(),
    }
    tensors[where][key] = torch.zeros(3)
    paths = lsyn.write_official_files(tmp_path, pth=tensors["lira"], omg=tensors["omg"], internvl=tensors["internvl"])
    with pytest.raises(CheckpointKeyError) as caught:
        _load(paths)
    assert caught.value.unexpected == [key]
    assert key in str(caught.value)


def test_unknown_lira_key_is_named(tmp_path: Path) -> None:
    pth = lsyn.lira_pth_stage2()
    pth["llm.base_model.model.model.layers.0.attention.wqkv.lora_C.default.weight"] = torch.zeros(1)
    paths = lsyn.write_official_files(tmp_path, pth=pth)
    with pytest.raises(CheckpointKeyError, match=r"attention\.wqkv\.lora_C\.default\.weight"):
        _load(paths)


@pytest.mark.parametrize("layout", ["sharded", "bin"])
def test_other_folder_layouts_give_the_same_model(files: dict[str, Path], tmp_path: Path, layout: str) -> None:
    reference, _ = _load(files)
    paths = lsyn.write_official_files(tmp_path, layout=layout)
    model, report = _load(paths)
    expected = reference.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())
    assert any("model-00003-of-00003" in source or "pytorch_model.bin" in source for source in report.sources.values())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_keeps_omg_seg_in_float32(files: dict[str, Path], dtype: torch.dtype) -> None:
    model, report = _load(files, dtype=dtype)
    assert model.language_model.model.embed_tokens.weight.dtype == dtype
    assert model.vision_model.embeddings.cls_token.dtype == dtype
    assert model.projector.model.query_proj.weight.dtype == dtype
    assert {p.dtype for p in model.visual_encoder.parameters()} == {torch.float32}
    assert model.visual_encoder.panoptic_head.cls_embed.dtype == torch.float32
    omg = lsyn.omg_seg_state_dict()
    assert torch.equal(model.visual_encoder.panoptic_head.query_feat.weight, omg["panoptic_head.query_feat.weight"])
    assert "loaded as" in report.summary()
    # One referring-segmentation pass runs in the low precision.
    with torch.no_grad():
        encoding = model.encode_images(torch.randn(1, 3, 192, 192), [torch.randn(2, 3, 28, 28)])
        masks = model.seg_hidden_states_to_masks(
            torch.randn(1, lsyn.H, dtype=dtype), encoding.omg, torch.tensor([0]), [(40, 30)]
        )
    assert encoding.sequences[0].dtype == dtype and masks[0].shape == (30, 40)


def test_lora_mode_is_checked(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="lora must be 'merge' or 'attach'"):
        _load(files, lora="unmerged")
