"""The assembled `lira-tiny` model, loaded from BOTH parity fixtures through `load_lira` (the loader of the official
files), reproduces the original code's outputs.

`lira-tiny` has the sizes of `fixtures/internvl2_tiny` (vision-language part) and `fixtures/lira_seg_tiny`
(OMG-Seg, projectors), so one model holds both: the InternVL2 folder, `omg_seg.safetensors` and
`ov_classifier.safetensors` as they are, and a LIRA `.pth` holding the fixture's `projector.*` /
`projector_text2vision.*` tensors. Tolerances are the fixtures' READMEs': max abs 1e-5 (InternVL2),
1e-4 + 1e-4·|ref| (segmentation), greedy tokens exact.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from models.lira.checkpoint.lira import load_lira
from models.lira.config import preset
from models.lira.model import IMAGE_TOKEN_INDEX, LiraModel

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
VL, SEG = FIXTURES / "internvl2_tiny", FIXTURES / "lira_seg_tiny"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> LiraModel:
    pth = tmp_path_factory.mktemp("lira") / "LIRA-tiny.pth"
    torch.save(load_file(SEG / "lira_projectors.safetensors"), pth)
    loaded, report = load_lira(
        preset("lira-tiny"), VL / "single", SEG / "omg_seg.safetensors", SEG / "ov_classifier.safetensors", pth
    )
    assert report.fresh == [] and len(report.ignored) == 9
    return loaded


@pytest.fixture(scope="module")
def vl_expected() -> dict[str, torch.Tensor]:
    return load_file(VL / "expected.safetensors")


@pytest.fixture(scope="module")
def seg_expected() -> dict[str, torch.Tensor]:
    return load_file(SEG / "expected.safetensors")


def seg_close(got: torch.Tensor, ref: torch.Tensor) -> None:
    assert got.shape == ref.shape
    assert bool(((got - ref).abs() <= 1e-4 + 1e-4 * ref.abs()).all())


@torch.no_grad()
def test_internvl_features_and_text_logits(model: LiraModel, vl_expected: dict[str, torch.Tensor]) -> None:
    features = model.internvl_features(vl_expected["pixel_values"])
    torch.testing.assert_close(features, vl_expected["image_features"], rtol=0, atol=1e-5)
    logits = model.language_model(input_ids=vl_expected["text_input_ids"]).logits
    # The vocabulary grew by LIRA's six tokens (300 → 306); the original 300 logits are unchanged.
    assert logits.shape[-1] == 306
    torch.testing.assert_close(logits[..., :300], vl_expected["text_logits"], rtol=0, atol=1e-5)


@torch.no_grad()
def test_placeholder_splice_equals_internvl_splice(model: LiraModel, vl_expected: dict[str, torch.Tensor]) -> None:
    """One `IMAGE_TOKEN_INDEX` + the image's tokens gives the same embeddings and logits as InternVL2's four
    `<IMG_CONTEXT>` ids; greedy generation on those embeddings gives the fixture's 8 tokens."""
    ids = vl_expected["mm_input_ids"]
    features = model.internvl_features(vl_expected["pixel_values"])
    rows = []
    for row in ids:
        context = (row == 293).nonzero().flatten()
        rows.append(torch.cat([row[: context[0]], torch.tensor([IMAGE_TOKEN_INDEX]), row[context[-1] + 1 :]]))
    spliced = model.build_inputs_embeds(torch.stack(rows), [[f] for f in features])
    torch.testing.assert_close(spliced.inputs_embeds, vl_expected["mm_inputs_embeds"], rtol=0, atol=1e-5)
    logits = model.language_model(inputs_embeds=spliced.inputs_embeds).logits[..., :300]
    torch.testing.assert_close(logits, vl_expected["mm_logits"], rtol=0, atol=1e-5)

    gen = vl_expected["gen_input_ids"][0]
    context = (gen == 293).nonzero().flatten()
    prompt = torch.cat([gen[: context[0]], torch.tensor([IMAGE_TOKEN_INDEX]), gen[context[-1] + 1 :]])[None]
    embeds = model.build_inputs_embeds(prompt, [[model.internvl_features(vl_expected["gen_pixel_values"])[0]]])
    tokens = model.language_model.generate(
        inputs_embeds=embeds.inputs_embeds,
        attention_mask=embeds.attention_mask,
        max_new_tokens=8,
        do_sample=False,
        eos_token_id=289,
        pad_token_id=2,
    )
    assert torch.equal(tokens, vl_expected["gen_new_tokens"])


@torch.no_grad()
def test_segmentation_path(model: LiraModel, seg_expected: dict[str, torch.Tensor]) -> None:
    omg = model.visual_encoder.encode(seg_expected["in.image"])
    seg_close(omg.clip_feature, seg_expected["omg.clip_feature"])
    seg_close(omg.query_pos_feat, seg_expected["omg.query_pos_feat"])
    assert torch.equal(omg.attn_mask.to(torch.uint8), seg_expected["omg.attn_mask"])
    sequence = model.projector(
        omg.clip_feature, omg.query_pos_feat, omg.attn_mask, [seg_expected["in.internvl_embeds"]]
    )[0]
    seg_close(sequence, seg_expected["proj.out_sequence"])
    decoded = model.decode_seg_hidden_states(
        seg_expected["in.seg_hidden_states"], omg, seg_expected["in.batch_idxs"], keep_intermediate=True
    )
    assert len(decoded.predictions) == 4
    for k, prediction in enumerate(decoded.predictions):
        seg_close(prediction.mask_logits, seg_expected[f"llmseg.mask{k}"])
