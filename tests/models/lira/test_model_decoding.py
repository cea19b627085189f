"""What the generation adapter relies on: batched greedy decoding over spliced `inputs_embeds` (left padding, KV
cache), hidden states at `[SEG]`, and an ILVC crop chunk fed mid-generation through the cache (§7.2)."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from models.lira.checkpoint.lira import build_lira_tiny
from models.lira.model import IMAGE_TOKEN_INDEX, LiraModel

P = IMAGE_TOKEN_INDEX
SEG, IMAGE_ID, P_START = 300, 305, 301


@pytest.fixture(scope="module")
def model() -> LiraModel:
    return build_lira_tiny(seed=21)


@pytest.fixture(scope="module")
def visual(model: LiraModel) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(22)
    with torch.no_grad():
        encoding = model.encode_images(
            torch.randn(2, 3, 192, 192, generator=g),
            [torch.randn(2, 3, 56, 56, generator=g), torch.randn(1, 3, 56, 56, generator=g)],
        )
    return encoding.sequences


@torch.no_grad()
def test_batched_left_padded_generation_equals_one_by_one(model: LiraModel, visual: list[torch.Tensor]) -> None:
    prompts = [[1, 290, P, 40, 41, 42, 43, 289, 290], [290, P, 50, 289, 290]]
    width = max(map(len, prompts))
    ids = torch.zeros(2, width, dtype=torch.long)
    mask = torch.zeros(2, width, dtype=torch.long)
    for b, prompt in enumerate(prompts):
        ids[b, width - len(prompt) :] = torch.tensor(prompt)
        mask[b, width - len(prompt) :] = 1
    batched = model.build_inputs_embeds(ids, [[v] for v in visual], attention_mask=mask, padding_side="left")
    tokens = model.language_model.generate(
        inputs_embeds=batched.inputs_embeds,
        attention_mask=batched.attention_mask,
        max_new_tokens=6,
        do_sample=False,
        pad_token_id=2,
        eos_token_id=None,
    )
    for b, prompt in enumerate(prompts):
        single = model.build_inputs_embeds(torch.tensor([prompt]), [[visual[b]]])
        alone = model.language_model.generate(
            inputs_embeds=single.inputs_embeds, max_new_tokens=6, do_sample=False, pad_token_id=2, eos_token_id=None
        )
        assert torch.equal(tokens[b], alone[0]), b


@torch.no_grad()
def test_cached_steps_with_a_crop_chunk_equal_one_full_pass(model: LiraModel, visual: list[torch.Tensor]) -> None:
    """Prefill, then `[SEG]`, then the crop chunk `[<image_id>, crop tokens, <p>]` through the KV cache: the
    hidden state at `[SEG]` and the final logits equal those of one uncached pass over the whole sequence."""
    prompt = model.build_inputs_embeds(torch.tensor([[1, 290, P, 40, 289, 290]]), [[visual[0]]]).inputs_embeds
    crop = model.encode_local_crops(torch.randn(1, 3, 56, 56, generator=torch.Generator().manual_seed(23)))[0]
    seg = model.embed_tokens(torch.tensor([[SEG]]))
    chunk = torch.cat(
        [model.embed_tokens(torch.tensor([[IMAGE_ID]])), crop[None], model.embed_tokens(torch.tensor([[P_START]]))], 1
    )

    lm = model.language_model
    cache = DynamicCache()
    lm(inputs_embeds=prompt, cache=cache, use_cache=True)
    at_seg = lm(inputs_embeds=seg, cache=cache, use_cache=True, output_hidden_states=True)
    last = lm(inputs_embeds=chunk, cache=cache, use_cache=True)

    full = lm(inputs_embeds=torch.cat([prompt, seg, chunk], 1), output_hidden_states=True)
    seg_position = prompt.shape[1]
    torch.testing.assert_close(
        at_seg.hidden_states[-1][0, -1], full.hidden_states[-1][0, seg_position], rtol=0, atol=1e-5
    )
    torch.testing.assert_close(last.logits[0, -1], full.logits[0, -1], rtol=0, atol=1e-5)
