"""LIRA `.pth` deltas: key rules, LoRA merge before the wqkv split, vocabulary padding, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import vl_synthetic as syn

from models.lira.checkpoint.common import CheckpointError, CheckpointKeyError, match_rule
from models.lira.checkpoint.lira_pth import (
    FULL_TENSOR_RULES,
    LORA_A_RULES,
    LORA_B_RULES,
    PASSTHROUGH_RULES,
    load_lira_vision_language,
    pad_vocabulary_rows,
    read_lira_pth,
)
from models.lira.config import (
    LiraAddedTokenIds,
    LiraChatTokenIds,
    LiraConfig,
    LiraLoraConfig,
    LiraTextConfig,
    LiraVisionConfig,
    LiraVisionLanguageConfig,
    SefeProjectorConfig,
    TextToVisionConfig,
)

RANK, ALPHA = 4, 8.0
SCALE = ALPHA / RANK  # 2.0


def lira_config(rank: int = RANK) -> LiraConfig:
    """The synthetic model's LIRA config, written out by hand from `vl_synthetic`'s sizes."""
    vision = LiraVisionConfig(
        image_size=28,
        patch_size=14,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    text = LiraTextConfig(
        vocab_size=syn.LIRA_VOCAB,
        hidden_size=48,
        intermediate_size=72,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
    )
    return LiraConfig(
        vision_language=LiraVisionLanguageConfig(
            vision=vision, text=text, chat_tokens=LiraChatTokenIds(**syn.CHAT_TOKENS)
        ),
        added_tokens=LiraAddedTokenIds.after(syn.TEXT["vocab"]),
        lora=LiraLoraConfig(rank=rank, alpha=ALPHA),
        # Segmentation side: unused here, but its LLM widths must fit (LiraConfig checks).
        projector=SefeProjectorConfig(llm_hidden_size=48, cross_attention_heads=4),
        text_to_vision=TextToVisionConfig(llm_hidden_size=48),
    )


@pytest.mark.parametrize(
    ("rules", "key", "target"),
    [
        (
            FULL_TENSOR_RULES,
            "llm.base_model.model.model.tok_embeddings.weight",
            "language_model.model.tok_embeddings.weight",
        ),
        (FULL_TENSOR_RULES, "llm.base_model.model.output.base_layer.weight", "language_model.output.weight"),
        (FULL_TENSOR_RULES, "llm.model.tok_embeddings.weight", "language_model.model.tok_embeddings.weight"),
        (FULL_TENSOR_RULES, "llm.output.weight", "language_model.output.weight"),
        (
            LORA_A_RULES,
            "llm.base_model.model.model.layers.23.attention.wqkv.lora_A.default.weight",
            "language_model.model.layers.23.attention.wqkv.weight",
        ),
        (
            LORA_B_RULES,
            "llm.base_model.model.model.layers.0.feed_forward.w2.lora_B.default.weight",
            "language_model.model.layers.0.feed_forward.w2.weight",
        ),
        (
            LORA_A_RULES,
            "llm.base_model.model.model.layers.5.attention.wo.lora_A.weight",  # adapter name stripped by peft
            "language_model.model.layers.5.attention.wo.weight",
        ),
        (LORA_B_RULES, "llm.base_model.model.output.lora_B.default.weight", "language_model.output.weight"),
        (PASSTHROUGH_RULES, "projector.model.cross_beforellm.multihead_attn.in_proj_weight", None),
        (PASSTHROUGH_RULES, "projector_text2vision.model.2.bias", None),
    ],
)
def test_lira_key_rules(rules: tuple, key: str, target: str | None) -> None:
    found = match_rule(key, rules)
    assert found is not None
    assert found[1] == ((target or key),)


@pytest.mark.parametrize(
    "key",
    [
        "llm.base_model.model.model.layers.0.attention.wqkv.lora_C.default.weight",
        "llm.base_model.model.model.layers.0.attention_norm.lora_A.default.weight",
        "llm.base_model.model.lm_head.lora_A.default.weight",
        "visual_encoder.adapter_proj.weight",
    ],
)
def test_unknown_lira_keys_are_rejected_by_name(tmp_path: Path, key: str) -> None:
    tensors = syn.lira_pth_tensors(rank=RANK, vocab_rows=syn.LIRA_VOCAB)
    tensors[key] = torch.zeros(2, 2)
    torch.save(tensors, tmp_path / "LIRA.pth")
    with pytest.raises(CheckpointKeyError) as caught:
        read_lira_pth(tmp_path / "LIRA.pth")
    assert caught.value.unexpected == [key]


@pytest.fixture(scope="module")
def internvl_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    tensors = syn.internvl_tensors(seed=11)
    folder = syn.write_internvl_folder(tmp_path_factory.mktemp("internvl") / "InternVL2", tensors, "sharded")
    return folder, tensors


def merged(weight: torch.Tensor, lora_a: torch.Tensor, lora_b: torch.Tensor) -> torch.Tensor:
    return weight + SCALE * (lora_b @ lora_a)


def test_lora_merge_and_split(tmp_path: Path, internvl_folder: tuple[Path, dict[str, torch.Tensor]]) -> None:
    folder, base = internvl_folder
    delta = syn.lira_pth_tensors(rank=RANK, vocab_rows=syn.LIRA_VOCAB)
    torch.save(delta, tmp_path / "LIRA-tiny.pth")
    model, passthrough, report = load_lira_vision_language(folder, tmp_path / "LIRA-tiny.pth", lira_config())
    state = model.state_dict()
    peft = "llm.base_model.model.model.layers.1."

    # wqkv of layer 1: merge W + s·B·A on the packed weight, then split it independently.
    wqkv = merged(
        base["language_model.model.layers.1.attention.wqkv.weight"],
        delta[peft + "attention.wqkv.lora_A.default.weight"],
        delta[peft + "attention.wqkv.lora_B.default.weight"],
    )
    q, k, v = syn.independent_wqkv_split(wqkv, syn.TEXT["heads"], syn.TEXT["kv_heads"])
    attention = "language_model.model.layers.1.self_attn."
    torch.testing.assert_close(state[attention + "q_proj.weight"], q, rtol=0, atol=1e-5)
    torch.testing.assert_close(state[attention + "k_proj.weight"], k, rtol=0, atol=1e-5)
    torch.testing.assert_close(state[attention + "v_proj.weight"], v, rtol=0, atol=1e-5)

    for module, target in (("attention.wo", "self_attn.o_proj"), ("feed_forward.w2", "mlp.down_proj")):
        expected = merged(
            base[f"language_model.model.layers.1.{module}.weight"],
            delta[f"{peft}{module}.lora_A.default.weight"],
            delta[f"{peft}{module}.lora_B.default.weight"],
        )
        torch.testing.assert_close(state[f"language_model.model.layers.1.{target}.weight"], expected, rtol=0, atol=1e-5)

    # Head and embeddings come from the .pth, not from the InternVL2 folder.
    head = merged(
        delta["llm.base_model.model.output.base_layer.weight"],
        delta["llm.base_model.model.output.lora_A.default.weight"],
        delta["llm.base_model.model.output.lora_B.default.weight"],
    )
    torch.testing.assert_close(state["language_model.lm_head.weight"], head, rtol=0, atol=1e-5)
    assert torch.equal(
        state["language_model.model.embed_tokens.weight"],
        delta["llm.base_model.model.model.tok_embeddings.weight"],
    )
    # Parts without LoRA keep the InternVL2 weights.
    assert torch.equal(state["mlp1.linear_1.weight"], base["mlp1.1.weight"])
    assert torch.equal(
        state["language_model.model.layers.0.input_layernorm.weight"],
        base["language_model.model.layers.0.attention_norm.weight"],
    )

    assert sorted(passthrough) == [
        "projector.model.query_proj.weight",
        "projector.model.seperate_embed.weight",
        "projector_text2vision.model.0.weight",
    ]
    for key, tensor in passthrough.items():
        assert torch.equal(tensor, delta[key])
    assert any("merged 11 LoRA pairs (rank 4, scale alpha/r = 2)" in line for line in report.operations)


def test_vocabulary_padding_rule(tmp_path: Path, internvl_folder: tuple[Path, dict[str, torch.Tensor]]) -> None:
    """A .pth with 43 vocabulary rows for a 46-token model: embeddings and head padded with their row mean,
    the head's lora_B with zeros (so the merged padded head rows are exactly the mean)."""
    folder, _ = internvl_folder
    delta = syn.lira_pth_tensors(rank=RANK, vocab_rows=43)
    torch.save({"state_dict": delta}, tmp_path / "wrapped.pth")  # xtuner-style wrapper
    model, _, _ = load_lira_vision_language(folder, tmp_path / "wrapped.pth", lira_config())
    state = model.state_dict()
    embeddings = delta["llm.base_model.model.model.tok_embeddings.weight"]
    base_head = delta["llm.base_model.model.output.base_layer.weight"]
    lora_a = delta["llm.base_model.model.output.lora_A.default.weight"]
    lora_b = delta["llm.base_model.model.output.lora_B.default.weight"]

    embed = state["language_model.model.embed_tokens.weight"]
    assert embed.shape == (46, 48)
    assert torch.equal(embed[:43], embeddings)
    for row in range(43, 46):
        torch.testing.assert_close(embed[row], embeddings.mean(dim=0), rtol=0, atol=1e-6)
    head = state["language_model.lm_head.weight"]
    torch.testing.assert_close(head[:43], merged(base_head, lora_a, lora_b), rtol=0, atol=1e-5)
    for row in range(43, 46):
        torch.testing.assert_close(head[row], base_head.mean(dim=0), rtol=0, atol=1e-6)


def test_without_pth_the_base_vocabulary_grows(internvl_folder: tuple[Path, dict[str, torch.Tensor]]) -> None:
    """LIRA._add_special_tokens: the six new LM-head rows are the mean of the 40 InternVL2 rows."""
    folder, base = internvl_folder
    model, passthrough, _ = load_lira_vision_language(folder, None, lira_config())
    head = model.state_dict()["language_model.lm_head.weight"]
    old = base["language_model.output.weight"]
    assert torch.equal(head[:40], old)
    for row in range(40, 46):
        torch.testing.assert_close(head[row], old.mean(dim=0), rtol=0, atol=1e-6)
    assert passthrough == {}


def test_stage1_file_without_lora(tmp_path: Path, internvl_folder: tuple[Path, dict[str, torch.Tensor]]) -> None:
    folder, base = internvl_folder
    generator = torch.Generator().manual_seed(5)
    stage1 = {
        "llm.model.tok_embeddings.weight": torch.randn(46, 48, generator=generator),
        "llm.output.weight": torch.randn(46, 48, generator=generator),
        "projector.model.model.0.weight": torch.randn(48, 12, generator=generator),
    }
    torch.save(stage1, tmp_path / "lira_tiny_pre.pth")
    model, passthrough, _ = load_lira_vision_language(folder, tmp_path / "lira_tiny_pre.pth", lira_config())
    state = model.state_dict()
    assert torch.equal(state["language_model.lm_head.weight"], stage1["llm.output.weight"])
    assert torch.equal(
        state["language_model.model.layers.0.self_attn.o_proj.weight"],
        base["language_model.model.layers.0.attention.wo.weight"],
    )
    assert list(passthrough) == ["projector.model.model.0.weight"]


def test_lora_half_without_partner_is_named(tmp_path: Path) -> None:
    tensors = syn.lira_pth_tensors(rank=RANK, vocab_rows=syn.LIRA_VOCAB)
    del tensors["llm.base_model.model.model.layers.0.attention.wo.lora_B.default.weight"]
    torch.save(tensors, tmp_path / "half.pth")
    with pytest.raises(CheckpointKeyError) as caught:
        read_lira_pth(tmp_path / "half.pth")
    assert caught.value.missing == ["lora_B of language_model.model.layers.0.attention.wo.weight"]


def test_missing_lora_pair_is_named(tmp_path: Path, internvl_folder: tuple[Path, dict[str, torch.Tensor]]) -> None:
    folder, _ = internvl_folder
    tensors = syn.lira_pth_tensors(rank=RANK, vocab_rows=syn.LIRA_VOCAB)
    for half in ("A", "B"):
        del tensors[f"llm.base_model.model.model.layers.1.feed_forward.w3.lora_{half}.default.weight"]
    torch.save(tensors, tmp_path / "pair.pth")
    with pytest.raises(CheckpointKeyError) as caught:
        load_lira_vision_language(folder, tmp_path / "pair.pth", lira_config())
    assert caught.value.missing == ["LoRA for language_model.model.layers.1.feed_forward.w3.weight"]


def test_rank_mismatch_is_reported(tmp_path: Path, internvl_folder: tuple[Path, dict[str, torch.Tensor]]) -> None:
    folder, _ = internvl_folder
    torch.save(syn.lira_pth_tensors(rank=RANK, vocab_rows=syn.LIRA_VOCAB), tmp_path / "r4.pth")
    with pytest.raises(CheckpointKeyError, match=r"expected A \(8, 48\), B \(80, 8\) \(rank 8\)"):
        load_lira_vision_language(folder, tmp_path / "r4.pth", lira_config(rank=8))


def test_vocabulary_larger_than_model_is_refused(
    tmp_path: Path, internvl_folder: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    folder, _ = internvl_folder
    torch.save(syn.lira_pth_tensors(rank=RANK, vocab_rows=50), tmp_path / "big.pth")
    with pytest.raises(CheckpointError, match="50 rows, more than the model vocabulary 46"):
        load_lira_vision_language(folder, tmp_path / "big.pth", lira_config())


def test_folder_must_match_the_lira_config(internvl_folder: tuple[Path, dict[str, torch.Tensor]]) -> None:
    folder, _ = internvl_folder
    config = lira_config()
    wrong_text = dataclasses.replace(config.vision_language.text, intermediate_size=96)
    config = dataclasses.replace(config, vision_language=dataclasses.replace(config.vision_language, text=wrong_text))
    with pytest.raises(CheckpointError, match=r"vision_language\.text\.intermediate_size: folder 72, LIRA config 96"):
        load_lira_vision_language(folder, None, config)


class PickledObject:
    """Stands for arbitrary code a malicious pickle could run on load."""


def test_pth_with_code_objects_is_refused(tmp_path: Path) -> None:
    """`torch.load(weights_only=True)` refuses pickled objects other than tensors and containers."""
    torch.save({"weights": torch.zeros(2), "hook": PickledObject()}, tmp_path / "evil.pth")
    with pytest.raises(CheckpointError, match=r"weights_only=True"):
        read_lira_pth(tmp_path / "evil.pth")


def test_pad_vocabulary_rows() -> None:
    matrix = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    assert pad_vocabulary_rows(matrix, 4, fill="mean").tolist() == [[1, 2], [3, 6], [2, 4], [2, 4]]
    assert pad_vocabulary_rows(matrix, 3, fill="zeros").tolist() == [[1, 2], [3, 6], [0, 0]]
    with pytest.raises(ValueError, match="more than the model's 1"):
        pad_vocabulary_rows(matrix, 1, fill="mean")


def test_full_tensor_of_wrong_width_is_named(
    tmp_path: Path, internvl_folder: tuple[Path, dict[str, torch.Tensor]]
) -> None:
    folder, _ = internvl_folder
    tensors = syn.lira_pth_tensors(rank=RANK, vocab_rows=syn.LIRA_VOCAB)
    tensors["llm.base_model.model.model.tok_embeddings.weight"] = torch.zeros(46, 40)
    torch.save(tensors, tmp_path / "width.pth")
    with pytest.raises(CheckpointKeyError) as caught:
        load_lira_vision_language(folder, tmp_path / "width.pth", lira_config())
    assert caught.value.mismatched == [
        "language_model.model.tok_embeddings.weight: checkpoint (46, 40), expected (rows, 48)"
    ]
