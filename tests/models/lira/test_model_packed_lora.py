"""The packed `wqkv` attention and the LoRA parametrisation it gives (one A shared by q, k, v, as InternLM2's).

Row arithmetic comes from `vl_synthetic.independent_wqkv_split` (native-internvl.md); LoRA values from the formula
`W + (alpha / r) · B @ A` on the packed InternLM2 weight.
"""

from __future__ import annotations

import pytest
import torch
import vl_synthetic as syn
from transformers.models.llama.modeling_llama import LlamaAttention

from models.lira.checkpoint.internvl import pack_internlm2_wqkv, split_internlm2_wqkv
from models.lira.checkpoint.lira import build_lira_tiny
from models.lira.model import LiraModel, LiraPackedQkvAttention


@pytest.mark.parametrize(("heads", "kv_heads", "head_dim"), [(4, 2, 16), (6, 2, 8), (8, 8, 4), (4, 1, 4)])
def test_pack_is_the_inverse_of_the_row_arithmetic(heads: int, kv_heads: int, head_dim: int) -> None:
    wqkv = torch.randn((heads + 2 * kv_heads) * head_dim, 5, generator=torch.Generator().manual_seed(1))
    q, k, v = syn.independent_wqkv_split(wqkv, heads, kv_heads)
    assert torch.equal(pack_internlm2_wqkv(q, k, v, heads, kv_heads), wqkv)
    # And the other direction, through the loader's split.
    assert torch.equal(pack_internlm2_wqkv(*split_internlm2_wqkv(wqkv, heads, kv_heads), heads, kv_heads), wqkv)
    with pytest.raises(ValueError, match="do not fit"):
        pack_internlm2_wqkv(q[:-1], k, v, heads, kv_heads)


@pytest.fixture
def tiny() -> LiraModel:
    return build_lira_tiny(seed=5)


def _layer0_q(model: LiraModel) -> torch.Tensor:
    attention = model.language_model.model.layers[0].self_attn
    if isinstance(attention, LiraPackedQkvAttention):
        return split_internlm2_wqkv(attention.wqkv.get_base_layer().weight, 4, 2)[0]
    return attention.q_proj.weight


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_packed_attention_computes_the_same(tiny: LiraModel, attn: str) -> None:
    tiny.language_model.config._attn_implementation = attn
    ids = torch.tensor([[1, 7, 8, 9, 10, 11], [1, 20, 21, 22, 2, 2]])
    mask = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        before = tiny.language_model(input_ids=ids, attention_mask=mask).logits
        generated = tiny.language_model.generate(input_ids=ids[:1], max_new_tokens=5, do_sample=False, pad_token_id=2)
        q_before = _layer0_q(tiny).clone()
        for layer in tiny.language_model.model.layers:
            layer.self_attn = LiraPackedQkvAttention.from_llama(layer.self_attn)
        after = tiny.language_model(input_ids=ids, attention_mask=mask).logits
        generated_packed = tiny.language_model.generate(
            input_ids=ids[:1], max_new_tokens=5, do_sample=False, pad_token_id=2
        )
        assert torch.equal(tiny.language_model.model.layers[0].self_attn.to_llama().q_proj.weight, q_before)
    torch.testing.assert_close(after, before, rtol=0, atol=1e-5)
    assert torch.equal(generated_packed, generated)  # KV cache path


def test_lora_on_packed_wqkv_is_one_pair_on_the_internlm2_weight(tiny: LiraModel) -> None:
    layer = tiny.language_model.model.layers[1]
    original = (
        pack_internlm2_wqkv(
            layer.self_attn.q_proj.weight, layer.self_attn.k_proj.weight, layer.self_attn.v_proj.weight, 4, 2
        )
        .detach()
        .clone()
    )
    tiny.attach_lora()
    wqkv = tiny.language_model.model.layers[1].self_attn.wqkv
    lora_a, lora_b = wqkv.lora_A["default"].weight, wqkv.lora_B["default"].weight
    assert lora_a.shape == (8, 64) and lora_b.shape == ((4 + 2 * 2) * 16, 8)  # rank 8, packed rows
    assert torch.equal(wqkv.get_base_layer().weight, original)
    with torch.no_grad():
        lora_b.normal_(generator=torch.Generator().manual_seed(3))
    expected = original + 2.0 * lora_b.detach() @ lora_a.detach()  # alpha / r = 16 / 8
    tiny.merge_lora()
    attention = tiny.language_model.model.layers[1].self_attn
    assert type(attention) is LlamaAttention
    q, k, v = syn.independent_wqkv_split(expected, 4, 2)
    torch.testing.assert_close(attention.q_proj.weight, q, rtol=0, atol=1e-6)
    torch.testing.assert_close(attention.k_proj.weight, k, rtol=0, atol=1e-6)
    torch.testing.assert_close(attention.v_proj.weight, v, rtol=0, atol=1e-6)
    # The q, k, v updates share one A: each is (its rows of B) @ A, a rank-8 update of the packed weight.
    delta = torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight]) - torch.cat(
        syn.independent_wqkv_split(original, 4, 2)
    )
    assert torch.linalg.matrix_rank(delta, atol=1e-4) <= 8


def test_attach_is_a_no_op_until_trained_and_merge_restores_the_model(tiny: LiraModel) -> None:
    ids = torch.tensor([[1, 7, 8, 300, 305, 9]])
    with torch.no_grad():
        before = tiny.language_model(input_ids=ids).logits
        tiny.attach_lora()
        assert tiny.lora_attached and not tiny.language_model.training
        attached = tiny.language_model(input_ids=ids).logits
        tiny.merge_lora()
        merged = tiny.language_model(input_ids=ids).logits
    assert torch.equal(attached, before)
    torch.testing.assert_close(merged, before, rtol=0, atol=1e-6)
    assert not tiny.lora_attached and not hasattr(tiny.language_model, "peft_config")
    names = {name for name, _ in tiny.named_parameters()}
    assert "language_model.model.layers.0.self_attn.q_proj.weight" in names and "language_model.lm_head.weight" in names
    tiny.attach_lora()  # again, on the restored model
    with pytest.raises(RuntimeError, match="already attached"):
        tiny.attach_lora()
