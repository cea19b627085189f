"""Training forward of `lira-tiny`: losses, one optimiser step, the "2 [SEG] per mask" rule, stages (§7.1, §8, §9)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models.lira.checkpoint.lira import build_lira_tiny, build_random_lira
from models.lira.config import preset
from models.lira.losses import seg_mask_losses
from models.lira.model import IGNORE_INDEX, IMAGE_TOKEN_INDEX, LiraModel, LiraTrainingOutput

P = IMAGE_TOKEN_INDEX
SEG, P_START, P_END, IMAGE_ID = 300, 301, 302, 305
IM_START, IM_END = 290, 289


def make_batch(seed: int = 0) -> dict:
    """Two rows in LIRA's training format (right-padded with 2):
    row 0: two grounded phrases `[SEG]<image_id><image> <p> … </p> [SEG]` → 2 crops, 2 masks, 4 [SEG];
    row 1: one phrase → 1 crop, 1 mask, 2 [SEG]."""
    g = torch.Generator().manual_seed(seed)
    prompt = [1, IM_START, P, 40, 41, IM_END, IM_START]

    def phrase(words: list[int]) -> list[int]:
        return [SEG, IMAGE_ID, P, P_START, *words, P_END, SEG]

    row0 = [*prompt, 50, *phrase([60, 61]), 51, *phrase([62]), 52, IM_END]
    row1 = [*prompt, *phrase([70, 71, 72]), 53, IM_END]
    width = max(len(row0), len(row1))
    ids = torch.full((2, width), 2)
    mask = torch.zeros(2, width, dtype=torch.long)
    for b, row in enumerate((row0, row1)):
        ids[b, : len(row)] = torch.tensor(row)
        mask[b, : len(row)] = 1
    labels = ids.clone()
    labels[:, : len(prompt)] = IGNORE_INDEX
    labels[(ids == P) | (mask == 0)] = IGNORE_INDEX
    return {
        "input_ids": ids,
        "labels": labels,
        "attention_mask": mask,
        "seg_pixel_values": torch.randn(2, 3, 192, 192, generator=g),
        "internvl_pixel_values": [torch.randn(3, 3, 56, 56, generator=g), torch.randn(1, 3, 56, 56, generator=g)],
        "local_crop_pixel_values": [torch.randn(2, 3, 56, 56, generator=g), torch.randn(1, 3, 56, 56, generator=g)],
        # Original-resolution masks (landscape 120x160 and portrait 150x100): padded and resized in forward.
        "gt_masks": [
            torch.rand(2, 120, 160, generator=g) > 0.6,
            torch.rand(1, 150, 100, generator=g) > 0.4,
        ],
    }


def run(model: LiraModel, batch: dict, seed: int = 0) -> LiraTrainingOutput:
    torch.manual_seed(seed)  # LoRA dropout
    return model(**batch, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def model() -> LiraModel:
    return build_lira_tiny(seed=1)


def test_forward_gives_finite_losses(model: LiraModel) -> None:
    model.train()
    out = run(model, make_batch())
    assert out.seg_status.applied and (out.seg_status.num_seg_tokens, out.seg_status.num_masks) == (6, 3)
    assert not out.seg_status.mismatched
    for value in (out.loss, out.lm_loss, out.dice_loss, out.mask_loss):
        assert torch.isfinite(value) and value > 0
    assert out.projection_loss == 0
    torch.testing.assert_close(out.loss, out.lm_loss + out.dice_loss + out.mask_loss)


def test_mask_losses_use_every_decoder_output_and_pair_masks_with_both_seg_tokens(model: LiraModel) -> None:
    """Rebuild `compute_seg_loss` by hand: hidden states where labels == [SEG], row index as image, all 4 outputs
    of the 3-layer tiny decoder, GT masks (at 192², already square) repeated twice in phrase order."""
    batch = make_batch()
    batch["gt_masks"] = [torch.rand(2, 192, 192) > 0.5, torch.rand(1, 192, 192) > 0.5]
    model.eval()
    with torch.no_grad():
        out = model(**batch, generator=torch.Generator().manual_seed(7))
        encoding = model.encode_images(batch["seg_pixel_values"], batch["internvl_pixel_values"])
        crops = [list(model.internvl_features(c).unbind(0)) for c in batch["local_crop_pixel_values"]]
        spliced = model.build_inputs_embeds(
            batch["input_ids"],
            [[encoding.sequences[0], *crops[0]], [encoding.sequences[1], *crops[1]]],
            labels=batch["labels"],
            attention_mask=batch["attention_mask"],
        )
        hidden = model.language_model(
            inputs_embeds=spliced.inputs_embeds, attention_mask=spliced.attention_mask, output_hidden_states=True
        ).hidden_states[-1]
        at_seg = spliced.labels == SEG
        assert at_seg.sum(1).tolist() == [4, 2]
        decoded = model.decode_seg_hidden_states(
            hidden[at_seg], encoding.omg, torch.tensor([0, 0, 0, 0, 1, 1]), keep_intermediate=True
        )
        assert len(decoded.predictions) == 4
        m = [batch["gt_masks"][0][0], batch["gt_masks"][0][1], batch["gt_masks"][1][0]]
        targets = torch.stack([m[0], m[0], m[1], m[1], m[2], m[2]]).to(torch.uint8)
        expected = seg_mask_losses(
            [p.mask_logits for p in decoded.predictions],
            targets,
            model.config.mask_loss,
            generator=torch.Generator().manual_seed(7),
        )
    torch.testing.assert_close(out.dice_loss, expected.dice, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.mask_loss, expected.mask, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("stage", ["finetune", "pretrain"])
def test_one_optimiser_step_lowers_the_losses(stage: str) -> None:
    config = preset("lira-tiny").for_stage(stage)  # type: ignore[arg-type]
    model = build_random_lira(config, seed=2)
    model.prepare_for_training()
    model.train()
    batch = make_batch(seed=3)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(parameters, lr=1e-3, weight_decay=0.0)
    before = run(model, batch)
    before.loss.backward()
    optimiser.step()
    with torch.no_grad():
        after = run(model, batch)
    assert after.loss < before.loss
    assert after.lm_loss < before.lm_loss
    if stage == "finetune":
        assert before.seg_status.applied
        assert after.dice_loss + after.mask_loss < before.dice_loss + before.mask_loss
    else:
        assert not before.seg_status.applied and before.seg_status.reason == "pretrain stage has no mask losses"
        assert before.dice_loss == 0 and before.mask_loss == 0
        assert after.projection_loss < before.projection_loss


def test_pretrain_projection_loss_is_ten_times_the_mse_of_the_query_round_trip() -> None:
    model = build_random_lira(preset("lira-tiny").for_stage("pretrain"), seed=4)
    batch = make_batch(seed=5)
    batch["internvl_pixel_values"] = None  # stage 1 feeds no InternVL tokens
    with torch.no_grad():
        out = model(**batch)
        omg = model.visual_encoder.encode(batch["seg_pixel_values"])
        kept = omg.query_pos_feat[omg.attn_mask.sum(-1) > 0]  # as coded: unless a query wins every pixel
        core = model.projector.model
        round_trip = model.projector_text2vision(core.model(core.query_proj(kept)))
    expected = 10 * ((round_trip - kept) ** 2).mean()
    torch.testing.assert_close(out.projection_loss, expected)
    torch.testing.assert_close(out.loss, out.lm_loss + expected)


def test_seg_count_mismatch_zeroes_and_reports(model: LiraModel) -> None:
    model.prepare_for_training()
    model.train()
    batch = make_batch()
    labels = batch["labels"].clone()
    labels[1][(labels[1] == SEG).nonzero()[-1]] = IGNORE_INDEX  # the last [SEG] of row 1 was truncated away
    out = run(model, {**batch, "labels": labels})
    status = out.seg_status
    assert (status.num_seg_tokens, status.num_masks, status.applied, status.mismatched) == (5, 3, False, True)
    assert status.reason == "5 [SEG] tokens for 3 masks (expected 6)"
    assert out.dice_loss == 0 and out.mask_loss == 0
    out.loss.backward()  # the zeroed losses stay in the graph: every trainable part gets a gradient
    assert all(p.grad is not None for p in model.projector_text2vision.parameters())

    no_masks = run(model, {**batch, "gt_masks": None})
    assert no_masks.seg_status.reason == "no ground-truth masks in the batch" and no_masks.seg_status.mismatched
    text_only = {**batch, "gt_masks": [torch.zeros(0, 4, 4), torch.zeros(0, 4, 4)]}
    text_only["labels"] = batch["labels"].masked_fill(batch["labels"] == SEG, IGNORE_INDEX)
    status = run(model, text_only).seg_status
    assert (status.num_seg_tokens, status.num_masks, status.applied, status.mismatched) == (0, 0, False, False)


def test_local_crops_are_used_in_order(model: LiraModel) -> None:
    model.eval()
    batch = make_batch()
    with torch.no_grad():
        base = model(**batch, generator=torch.Generator().manual_seed(0)).lm_loss
        swapped = [batch["local_crop_pixel_values"][0].flip(0), batch["local_crop_pixel_values"][1]]
        changed = model(**{**batch, "local_crop_pixel_values": swapped}, generator=torch.Generator().manual_seed(0))
    assert not torch.isclose(changed.lm_loss, base)
    with pytest.raises(ValueError, match="row 1 has 2 image placeholders"):
        model(**{**batch, "local_crop_pixel_values": [batch["local_crop_pixel_values"][0], torch.zeros(0, 3, 56, 56)]})


def _projector_names(cross: bool) -> list[str]:
    names = ["projector.model.query_proj.weight", "projector.model.query_proj.bias"]
    for mlp in ("model", "model_feat"):
        names += [f"projector.model.{mlp}.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")]
    names += ["projector.model.seperate_embed.weight", "projector.model.seperate_embed_internvl.weight"]
    if cross:
        cross_attn = "projector.model.cross_beforellm."
        names += [cross_attn + f"multihead_attn.{p}" for p in ("in_proj_weight", "in_proj_bias")]
        names += [cross_attn + f"multihead_attn.out_proj.{p}" for p in ("weight", "bias")]
        names += [cross_attn + f"norm{i}.{p}" for i in (1, 2) for p in ("weight", "bias")]
    names += [f"projector_text2vision.model.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")]
    return names


def test_trainable_parts_per_stage() -> None:
    """lira-model.md §9, written out for the 2-layer tiny LLM."""
    pretrain = build_random_lira(preset("lira-tiny").for_stage("pretrain"), seed=0)
    assert sorted(pretrain.prepare_for_training()) == sorted(_projector_names(cross=False))
    assert not pretrain.lora_attached

    finetune = build_lira_tiny(seed=0)
    expected = [
        *_projector_names(cross=True),
        "language_model.model.embed_tokens.weight",  # full tok_embeddings
        "language_model.lm_head.base_layer.weight",  # output.base_layer
        "language_model.lm_head.lora_A.default.weight",
        "language_model.lm_head.lora_B.default.weight",
    ]
    for layer in range(2):
        for module in ("self_attn.wqkv", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"):
            expected += [f"language_model.model.layers.{layer}.{module}.lora_{x}.default.weight" for x in "AB"]
    assert sorted(finetune.prepare_for_training()) == sorted(expected)
    frozen = {name for name, p in finetune.named_parameters() if not p.requires_grad}
    for name in (
        "vision_model.embeddings.cls_token",
        "mlp1.linear_1.weight",
        "visual_encoder.backbone.stem.0.weight",
        "visual_encoder.panoptic_head.transformer_decoder.layers.0.cross_attn.attn.in_proj_weight",
        "language_model.model.layers.0.self_attn.wqkv.base_layer.weight",
        "language_model.model.layers.1.mlp.down_proj.base_layer.weight",
        "language_model.model.layers.0.input_layernorm.weight",
        "language_model.model.norm.weight",
    ):
        assert name in frozen, name


def test_config_stage_rules() -> None:
    tiny = preset("lira-tiny")
    assert tiny.stage == "finetune" and tiny.projector.cross_attention
    stage1 = tiny.for_stage("pretrain")
    assert stage1.stage == "pretrain" and not stage1.projector.cross_attention
    assert stage1.for_stage("finetune") == tiny
    with pytest.raises(ValueError, match=r"stage 'pretrain' needs projector\.cross_attention=False"):
        dataclasses.replace(tiny, stage="pretrain")
