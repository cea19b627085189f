"""Key mapping of original InternVL2 folders: rename rules, fused splits, strict key checks, file formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import vl_synthetic as syn
from safetensors.torch import load_file, save_file

from models.lira.checkpoint.common import CheckpointError, CheckpointKeyError, match_rule
from models.lira.checkpoint.internvl import (
    INTERNVL_RULES,
    load_internvl_folder,
    split_internlm2_wqkv,
    split_vision_qkv,
)
from models.lira.config import LiraChatTokenIds

CHAT = LiraChatTokenIds(**syn.CHAT_TOKENS)

# Source key → target key(s), written from the rename table of native-internvl.md.
RENAMES = [
    ("vision_model.embeddings.class_embedding", ("vision_model.embeddings.cls_token",)),
    ("vision_model.embeddings.position_embedding", ("vision_model.embeddings.position_embeddings",)),
    (
        "vision_model.embeddings.patch_embedding.bias",
        ("vision_model.embeddings.patch_embeddings.projection.bias",),
    ),
    (
        "vision_model.encoder.layers.23.attn.qkv.weight",
        (
            "vision_model.encoder.layer.23.attention.q_proj.weight",
            "vision_model.encoder.layer.23.attention.k_proj.weight",
            "vision_model.encoder.layer.23.attention.v_proj.weight",
        ),
    ),
    (
        "vision_model.encoder.layers.3.attn.proj.bias",
        ("vision_model.encoder.layer.3.attention.projection_layer.bias",),
    ),
    ("vision_model.encoder.layers.0.mlp.fc2.weight", ("vision_model.encoder.layer.0.mlp.fc2.weight",)),
    ("vision_model.encoder.layers.0.norm1.weight", ("vision_model.encoder.layer.0.layernorm_before.weight",)),
    ("vision_model.encoder.layers.0.norm2.bias", ("vision_model.encoder.layer.0.layernorm_after.bias",)),
    ("vision_model.encoder.layers.11.ls2", ("vision_model.encoder.layer.11.lambda_2",)),
    ("mlp1.0.bias", ("mlp1.layer_norm.bias",)),
    ("mlp1.1.weight", ("mlp1.linear_1.weight",)),
    ("mlp1.3.weight", ("mlp1.linear_2.weight",)),
    ("language_model.model.tok_embeddings.weight", ("language_model.model.embed_tokens.weight",)),
    (
        "language_model.model.layers.7.attention.wqkv.weight",
        (
            "language_model.model.layers.7.self_attn.q_proj.weight",
            "language_model.model.layers.7.self_attn.k_proj.weight",
            "language_model.model.layers.7.self_attn.v_proj.weight",
        ),
    ),
    (
        "language_model.model.layers.7.attention.wo.weight",
        ("language_model.model.layers.7.self_attn.o_proj.weight",),
    ),
    (
        "language_model.model.layers.1.feed_forward.w1.weight",
        ("language_model.model.layers.1.mlp.gate_proj.weight",),
    ),
    (
        "language_model.model.layers.1.feed_forward.w3.weight",
        ("language_model.model.layers.1.mlp.up_proj.weight",),
    ),
    (
        "language_model.model.layers.1.feed_forward.w2.weight",
        ("language_model.model.layers.1.mlp.down_proj.weight",),
    ),
    (
        "language_model.model.layers.0.attention_norm.weight",
        ("language_model.model.layers.0.input_layernorm.weight",),
    ),
    (
        "language_model.model.layers.0.ffn_norm.weight",
        ("language_model.model.layers.0.post_attention_layernorm.weight",),
    ),
    ("language_model.model.norm.weight", ("language_model.model.norm.weight",)),
    ("language_model.output.weight", ("language_model.lm_head.weight",)),
]


@pytest.mark.parametrize(("source", "targets"), RENAMES)
def test_rename_rule(source: str, targets: tuple[str, ...]) -> None:
    found = match_rule(source, INTERNVL_RULES)
    assert found is not None
    assert found[1] == targets


@pytest.mark.parametrize(
    "key",
    [
        "vision_model.encoder.layers.0.attn.qkv.weight.extra",  # anchored at the end
        "x.language_model.output.weight",  # anchored at the start
        "language_model.model.layers.0.attention.wqkvXweight",  # dots are escaped
        "language_model.model.layers.a.attention.wo.weight",
        "mlp1.2.weight",  # the GELU has no weights
        "vision_model.encoder.layers.0.attn.q_norm.weight",  # InternViT-6B only, not supported
    ],
)
def test_rules_do_not_match_foreign_keys(key: str) -> None:
    assert match_rule(key, INTERNVL_RULES) is None


@pytest.mark.parametrize(("num_heads", "num_kv_heads", "head_dim"), [(4, 2, 16), (6, 2, 8), (8, 8, 4), (4, 1, 4)])
def test_wqkv_split_matches_row_arithmetic(num_heads: int, num_kv_heads: int, head_dim: int) -> None:
    wqkv = torch.randn((num_heads + 2 * num_kv_heads) * head_dim, 5, generator=torch.Generator().manual_seed(3))
    expected = syn.independent_wqkv_split(wqkv, num_heads, num_kv_heads)
    for actual, reference in zip(split_internlm2_wqkv(wqkv, num_heads, num_kv_heads), expected, strict=True):
        assert not reference.isnan().any()
        assert torch.equal(actual, reference)


def test_wqkv_split_fixture_row_layout() -> None:
    """The fixture README's table (H=4, K=2, D=16): rows 0-31 q heads 0-1, 32-47 k0, 48-63 v0, 64-95 q 2-3,
    96-111 k1, 112-127 v1. Each row holds its own index so the mapping can be read off."""
    wqkv = torch.arange(128, dtype=torch.float32)[:, None].repeat(1, 2)
    q, k, v = split_internlm2_wqkv(wqkv, 4, 2)
    assert q[:, 0].tolist() == list(range(0, 32)) + list(range(64, 96))
    assert k[:, 0].tolist() == list(range(32, 48)) + list(range(96, 112))
    assert v[:, 0].tolist() == list(range(48, 64)) + list(range(112, 128))


def test_vision_qkv_split_in_thirds() -> None:
    qkv = torch.arange(12, dtype=torch.float32)
    q, k, v = split_vision_qkv(qkv)
    assert (q.tolist(), k.tolist(), v.tolist()) == ([0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11])
    with pytest.raises(ValueError, match="multiple of 3"):
        split_vision_qkv(torch.zeros(10, 2))


@pytest.fixture(scope="module")
def original() -> dict[str, torch.Tensor]:
    return syn.internvl_tensors(seed=7)


@pytest.mark.parametrize("layout", ["single", "sharded", "bin", "bin_sharded"])
def test_synthetic_folder_tensors_land_where_they_must(
    tmp_path: Path, original: dict[str, torch.Tensor], layout: str
) -> None:
    folder = syn.write_internvl_folder(tmp_path / layout, original, layout)
    model, report = load_internvl_folder(folder, chat_tokens=CHAT)
    state = model.state_dict()
    assert len(report.renamed) == len(original)

    # Grouped wqkv of LLM layer 1: each head's slice against the original rows of its KV group.
    heads, kv_heads, d = syn.TEXT["heads"], syn.TEXT["kv_heads"], syn.HEAD_DIM
    group = heads // kv_heads
    wqkv = original["language_model.model.layers.1.attention.wqkv.weight"]
    attention = "language_model.model.layers.1.self_attn."
    for head in range(heads):
        g, slot = divmod(head, group)
        start = (g * (group + 2) + slot) * d
        assert torch.equal(state[attention + "q_proj.weight"][head * d : (head + 1) * d], wqkv[start : start + d])
    for g in range(kv_heads):
        k_start = (g * (group + 2) + group) * d
        assert torch.equal(state[attention + "k_proj.weight"][g * d : (g + 1) * d], wqkv[k_start : k_start + d])
        assert torch.equal(state[attention + "v_proj.weight"][g * d : (g + 1) * d], wqkv[k_start + d : k_start + 2 * d])

    # InternViT qkv of layer 0: [q | k | v] thirds, weight and bias.
    c = syn.VISION["hidden"]
    for name in ("weight", "bias"):
        qkv = original[f"vision_model.encoder.layers.0.attn.qkv.{name}"]
        for index, part in enumerate("qkv"):
            actual = state[f"vision_model.encoder.layer.0.attention.{part}_proj.{name}"]
            assert torch.equal(actual, qkv[index * c : (index + 1) * c])

    vit, vit_out = "vision_model.encoder.layers.1.", "vision_model.encoder.layer.1."
    lm0, lm1 = "language_model.model.layers.0.", "language_model.model.layers.1."
    one_to_one = {
        "vision_model.embeddings.class_embedding": "vision_model.embeddings.cls_token",
        "vision_model.embeddings.position_embedding": "vision_model.embeddings.position_embeddings",
        vit + "ls1": vit_out + "lambda_1",
        vit + "ls2": vit_out + "lambda_2",
        vit + "norm1.bias": vit_out + "layernorm_before.bias",
        vit + "norm2.weight": vit_out + "layernorm_after.weight",
        vit + "mlp.fc1.weight": vit_out + "mlp.fc1.weight",
        vit + "attn.proj.weight": vit_out + "attention.projection_layer.weight",
        "mlp1.0.weight": "mlp1.layer_norm.weight",
        "mlp1.1.bias": "mlp1.linear_1.bias",
        "mlp1.3.weight": "mlp1.linear_2.weight",
        "language_model.model.tok_embeddings.weight": "language_model.model.embed_tokens.weight",
        lm0 + "attention.wo.weight": lm0 + "self_attn.o_proj.weight",
        lm0 + "feed_forward.w1.weight": lm0 + "mlp.gate_proj.weight",
        lm0 + "feed_forward.w3.weight": lm0 + "mlp.up_proj.weight",
        lm0 + "feed_forward.w2.weight": lm0 + "mlp.down_proj.weight",
        lm1 + "attention_norm.weight": lm1 + "input_layernorm.weight",
        lm1 + "ffn_norm.weight": lm1 + "post_attention_layernorm.weight",
        "language_model.model.norm.weight": "language_model.model.norm.weight",
        "language_model.output.weight": "language_model.lm_head.weight",
    }
    patch = original["vision_model.embeddings.patch_embedding.weight"]
    assert torch.equal(state["vision_model.embeddings.patch_embeddings.projection.weight"], patch)
    for source, target in one_to_one.items():
        assert torch.equal(state[target], original[source]), (source, target)


def test_missing_key_is_named(tmp_path: Path, original: dict[str, torch.Tensor]) -> None:
    tensors = dict(original)
    del tensors["language_model.model.layers.1.ffn_norm.weight"]
    folder = syn.write_internvl_folder(tmp_path / "m", tensors, "single")
    with pytest.raises(CheckpointKeyError) as caught:
        load_internvl_folder(folder, chat_tokens=CHAT)
    assert caught.value.missing == ["language_model.model.layers.1.post_attention_layernorm.weight"]
    assert "language_model.model.layers.1.post_attention_layernorm.weight" in str(caught.value)


def test_extra_key_is_named(tmp_path: Path, original: dict[str, torch.Tensor]) -> None:
    tensors = dict(original)
    tensors["vision_model.encoder.layers.0.attn.extra.weight"] = torch.zeros(2)
    tensors["language_model.model.layers.2.attention.wo.weight"] = torch.zeros(48, 48)  # one layer too many
    folder = syn.write_internvl_folder(tmp_path / "x", tensors, "sharded")
    with pytest.raises(CheckpointKeyError) as caught:
        load_internvl_folder(folder, chat_tokens=CHAT)
    message = str(caught.value)
    assert "vision_model.encoder.layers.0.attn.extra.weight" in message
    assert "language_model.model.layers.2.self_attn.o_proj.weight" in message
    assert not caught.value.missing


def test_wrong_shapes_are_named(tmp_path: Path, original: dict[str, torch.Tensor]) -> None:
    tensors = dict(original)
    tensors["language_model.model.layers.0.attention.wqkv.weight"] = torch.zeros(70, 48)
    tensors["mlp1.1.weight"] = torch.zeros(48, 100)
    folder = syn.write_internvl_folder(tmp_path / "s", tensors, "single")
    with pytest.raises(CheckpointKeyError) as caught:
        load_internvl_folder(folder, chat_tokens=CHAT)
    message = str(caught.value)
    assert "language_model.model.layers.0.attention.wqkv.weight: checkpoint (70, 48), expected 80 rows" in message
    assert "mlp1.linear_1.weight: checkpoint (48, 100), model (48, 128)" in message


def test_shard_without_its_listed_key_is_named(tmp_path: Path, original: dict[str, torch.Tensor]) -> None:
    folder = syn.write_internvl_folder(tmp_path / "sh", original, "sharded")
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    shard = index["weight_map"]["language_model.output.weight"]
    tensors = load_file(str(folder / shard))
    del tensors["language_model.output.weight"]
    save_file(tensors, str(folder / shard))
    with pytest.raises(CheckpointKeyError, match=r"missing keys:\n\s+language_model\.output\.weight"):
        load_internvl_folder(folder, chat_tokens=CHAT)


@pytest.mark.parametrize(("dtype", "name"), [(torch.bfloat16, "bf16"), (torch.float16, "fp16")])
def test_low_precision_load(tmp_path: Path, original: dict[str, torch.Tensor], dtype: torch.dtype, name: str) -> None:
    folder = syn.write_internvl_folder(tmp_path / name, original, "single")
    model, _ = load_internvl_folder(folder, chat_tokens=CHAT, dtype=name)
    assert {parameter.dtype for parameter in model.parameters()} == {dtype}
    head = model.state_dict()["language_model.lm_head.weight"]
    assert torch.equal(head, original["language_model.output.weight"].to(dtype))
    # The rotary frequencies stay float32, as with transformers' from_pretrained.
    assert model.language_model.model.rotary_emb.inv_freq.dtype == torch.float32
    ids = torch.tensor([[1, 5, 9, 12]])
    assert torch.isfinite(model(ids).logits.float()).all()


def test_folder_errors(tmp_path: Path, original: dict[str, torch.Tensor]) -> None:
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        load_internvl_folder(tmp_path, chat_tokens=CHAT)
    (tmp_path / "config.json").write_text(json.dumps(syn.internvl_config_json()))
    with pytest.raises(CheckpointError, match="no weight file found"):
        load_internvl_folder(tmp_path, chat_tokens=CHAT)
    config = syn.internvl_config_json()
    config["llm_config"]["num_key_value_heads"] = 4  # 6 heads are not a multiple of 4
    folder = syn.write_internvl_folder(tmp_path / "bad", original, "single", config_json=config)
    with pytest.raises(ValueError, match="num_attention_heads 6 is not a multiple of num_key_value_heads 4"):
        load_internvl_folder(folder, chat_tokens=CHAT)
