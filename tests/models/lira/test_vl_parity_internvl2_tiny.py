"""Parity with the original InternVL2 code on `tests/fixtures/internvl2_tiny` (single and sharded folders).

Every expected tensor of the fixture is reproduced within its README's tolerance: max abs diff < 1e-5 in
fp32 on CPU, greedy tokens exactly. The model is loaded through `load_internvl_folder`, the same loader
that reads the official InternVL2 folders.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.lira.checkpoint.common import read_safetensors_metadata
from models.lira.checkpoint.internvl import load_internvl_folder
from models.lira.config import LiraChatTokenIds
from models.lira.vision import shuffle_vision_tokens
from models.lira.vision_language import LiraVisionLanguageModel

FIXTURE = Path(__file__).parents[2] / "fixtures" / "internvl2_tiny"
ATOL = 1e-5  # README "Suggested tolerances"


def assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=0, atol=ATOL)


def test_fixture_copies_are_unchanged() -> None:
    listed = re.findall(r"^([0-9a-f]{64})  (\S+)$", (FIXTURE / "README.md").read_text(), flags=re.MULTILINE)
    assert len(listed) == 8
    for digest, name in listed:
        assert hashlib.sha256((FIXTURE / name).read_bytes()).hexdigest() == digest, name


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURE / "expected.safetensors"))


@pytest.fixture(scope="module")
def chat_tokens() -> LiraChatTokenIds:
    """The fixture's token ids, read from the metadata of expected.safetensors."""
    meta = read_safetensors_metadata(FIXTURE / "expected.safetensors")
    return LiraChatTokenIds(
        im_end=int(meta["im_end_token_id"]),
        im_start=int(meta["im_start_token_id"]),
        img_start=int(meta["img_start_token_id"]),
        img_end=int(meta["img_end_token_id"]),
        img_context=int(meta["img_context_token_id"]),
    )


@pytest.fixture(scope="module", params=["single", "sharded"])
def model(request: pytest.FixtureRequest, chat_tokens: LiraChatTokenIds) -> LiraVisionLanguageModel:
    loaded, report = load_internvl_folder(FIXTURE / request.param, chat_tokens=chat_tokens)
    assert len(report.renamed) == 55  # every original tensor, once
    assert sum(parameter.numel() for parameter in loaded.parameters()) == 239_616
    return loaded


@pytest.fixture(autouse=True)
def deterministic() -> None:
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(previous)


@torch.no_grad()
def test_vision_path(model: LiraVisionLanguageModel, expected: dict[str, torch.Tensor]) -> None:
    pixel_values = expected["pixel_values"]
    assert_close(model.vision_model.embeddings(pixel_values), expected["vision_embeddings"])
    last_hidden_state = model.vision_model(pixel_values=pixel_values).last_hidden_state
    assert_close(last_hidden_state, expected["vision_last_hidden_state"])
    assert_close(shuffle_vision_tokens(last_hidden_state), expected["vision_pixel_shuffled"])
    assert_close(model.extract_internvl_features(pixel_values), expected["image_features"])


@torch.no_grad()
def test_text_forward(model: LiraVisionLanguageModel, expected: dict[str, torch.Tensor]) -> None:
    outputs = model(
        expected["text_input_ids"], attention_mask=expected["text_attention_mask"], output_hidden_states=True
    )
    assert_close(outputs.logits, expected["text_logits"])
    assert_close(outputs.hidden_states[-1], expected["text_last_hidden_state"])
    assert_close(outputs.hidden_states[1], expected["text_hidden_after_layer0"])


@torch.no_grad()
def test_multimodal_forward(model: LiraVisionLanguageModel, expected: dict[str, torch.Tensor]) -> None:
    assert expected["mm_image_flags"].eq(1).all()  # every image is real; no flag handling needed
    features = model.extract_internvl_features(expected["pixel_values"])
    assert_close(model.merge_image_features(expected["mm_input_ids"], features), expected["mm_inputs_embeds"])
    outputs = model(
        expected["mm_input_ids"],
        pixel_values=expected["pixel_values"],
        attention_mask=expected["mm_attention_mask"],
        output_hidden_states=True,
    )
    assert_close(outputs.logits, expected["mm_logits"])
    assert_close(outputs.hidden_states[-1], expected["mm_last_hidden_state"])
    # The causal LM alone on the spliced embeddings (the path LIRA's own splice feeds).
    direct = model.language_model(
        inputs_embeds=expected["mm_inputs_embeds"], attention_mask=expected["mm_attention_mask"]
    )
    assert_close(direct.logits, expected["mm_logits"])


@torch.no_grad()
def test_greedy_generation(
    model: LiraVisionLanguageModel, expected: dict[str, torch.Tensor], chat_tokens: LiraChatTokenIds
) -> None:
    output = model.generate(
        expected["gen_input_ids"],
        pixel_values=expected["gen_pixel_values"],
        attention_mask=expected["gen_attention_mask"],
        max_new_tokens=8,
        do_sample=False,
        eos_token_id=chat_tokens.im_end,
        pad_token_id=model.config.text.pad_token_id,
        return_dict_in_generate=True,
        output_logits=True,
    )
    assert torch.equal(output.sequences, expected["gen_new_tokens"])
    step_logits = torch.cat(output.logits)
    assert_close(step_logits, expected["gen_step_logits"])
    top2 = step_logits.topk(2, dim=-1).values
    assert_close(top2[:, 0] - top2[:, 1], expected["gen_top1_top2_gap"])


def test_every_expected_tensor_is_checked(expected: dict[str, torch.Tensor]) -> None:
    """Guards this file: each tensor of expected.safetensors is either an input or compared above."""
    source = Path(__file__).read_text()
    for name in expected:
        assert f'"{name}"' in source, name


@torch.no_grad()
def test_sdpa_attention_stays_within_tolerance(
    chat_tokens: LiraChatTokenIds, expected: dict[str, torch.Tensor]
) -> None:
    """`eager` is the exact default; `sdpa` is allowed and differs only at rounding level."""
    model, _ = load_internvl_folder(FIXTURE / "single", chat_tokens=chat_tokens, attn_implementation="sdpa")
    assert model.language_model.config._attn_implementation == "sdpa"
    assert model.vision_model.config._attn_implementation == "sdpa"
    logits = model(
        expected["mm_input_ids"],
        pixel_values=expected["pixel_values"],
        attention_mask=expected["mm_attention_mask"],
    ).logits
    assert_close(logits, expected["mm_logits"])
