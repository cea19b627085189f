"""`lira-tiny` trained on CPU on every training format (acceptance of issue 9).

Stage 2 on the mix of `configs/stage2.yaml` (LLaVA SFT, RefCOCO in the ILVC format, RefCOCOg-GCG, Flickr-GCG,
GranD-f, OpenPSG) and stage 1 on LLaVA captions: the losses fall, exactly the parameters of lira-model.md §9 change
(every frozen tensor is compared bit for bit), the exported `.pth` is the trained weights in the official layout,
and the stage-1 export is where stage 2 starts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_data import tiny_overrides, write_config

from models.lira.checkpoint.lira import apply_lira_pth, build_random_lira, lira_pth_state_dict
from models.lira.model import LiraModel
from models.lira.training.config import TrainConfig, load_config
from models.lira.training.dataset import collate
from models.lira.training.modeling import build_training_model, lira_config_for
from models.lira.training.runtime import Runtime
from models.lira.training.trainer import Trainer


def _config(data_root: Path, out: Path, stage: str, **values: object) -> TrainConfig:
    merged = tiny_overrides(data_root, out / "run", stage) | values
    return load_config(str(write_config(out / f"{stage}.yaml", stage, merged)))


def _snapshot(model: LiraModel) -> dict[str, torch.Tensor]:
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    state["cls_embed"] = model.visual_encoder.panoptic_head.cls_embed.clone()
    return state


def _train(config: TrainConfig) -> tuple[Trainer, dict[str, torch.Tensor], dict[str, torch.Tensor], list[dict]]:
    trainer = Trainer(config, Runtime.start(config), command="test")
    before = _snapshot(trainer.model)
    trainer.run()
    after = _snapshot(trainer.model)
    rows = [json.loads(line) for line in (Path(config.output_dir) / "metrics.jsonl").read_text().splitlines()]
    return trainer, before, after, rows


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _is_stage2_trainable(name: str) -> bool:
    """lira-model.md §9, stage 2: LoRA on every LLM linear layer and the head, the full embeddings and head base
    weight, the SEFE projector (with cross-attention) and projector_text2vision."""
    return (
        ".lora_A." in name
        or ".lora_B." in name
        or name in ("language_model.model.embed_tokens.weight", "language_model.lm_head.base_layer.weight")
        or name.startswith(("projector.", "projector_text2vision."))
    )


@pytest.fixture(scope="module")
def stage2(data_root: Path, tmp_path_factory: pytest.TempPathFactory, one_thread_for_module: None):
    out = tmp_path_factory.mktemp("stage2")
    config = _config(
        data_root,
        out,
        "stage2",
        optim={"lr": 1.0e-3},
        batch={"per_device": 1, "accumulation": 2},
        schedule={"epochs": 2},
        checkpoint={"every_steps": 0, "keep": 1},
        export_name="tiny-stage2.pth",
    )
    return (config, *_train(config))


def test_stage2_uses_every_format(stage2) -> None:
    _, trainer, _, _, rows = stage2
    names = ("sft", "refcoco", "refcocog_gcg", "flickr_gcg", "grandf", "openpsg")
    assert dict(trainer.dataset.per_source) == dict.fromkeys(names, 6)
    assert not trainer.dataset.skipped
    # 36 samples, 2 per step, 2 epochs; every step trained on its 2 samples
    assert len(rows) == 36 and all(row["samples"] == 2 and row["skipped"] == 0 for row in rows)
    assert [row["step"] for row in rows] == list(range(1, 37))


def test_stage2_losses_fall(stage2) -> None:
    *_, rows = stage2
    lm = [row["lm_loss"] for row in rows]
    assert _mean(lm[-6:]) < 0.8 * _mean(lm[:6])
    masked = [row["dice_loss"] + row["mask_loss"] for row in rows if row["mask_loss"] > 0]
    assert len(masked) > 20
    assert _mean(masked[-5:]) < 0.8 * _mean(masked[:5])


def test_stage2_changes_exactly_the_trainable_parameters(stage2) -> None:
    _, trainer, before, after, _ = stage2
    trainable = set(trainer.model.trainable_parameter_names())
    assert trainable == {name for name, _ in trainer.model.named_parameters() if _is_stage2_trainable(name)}
    assert any(".wqkv.lora_A." in n for n in trainable) and "language_model.lm_head.lora_B.default.weight" in trainable
    for name, tensor in before.items():
        if name in trainable:
            assert not torch.equal(tensor, after[name]), f"{name} did not change"
        else:
            assert torch.equal(tensor, after[name]), f"frozen {name} changed"
    # AdamW without weight decay leaves the embedding rows of tokens that never occur untouched
    embeddings = "language_model.model.embed_tokens.weight"
    region = trainer.model.config.added_tokens.region  # <region> is in no conversation
    assert torch.equal(before[embeddings][region], after[embeddings][region])


def test_stage2_export_is_the_trained_model_in_the_official_layout(stage2) -> None:
    config, trainer, *_ = stage2
    exported = torch.load(Path(config.output_dir) / "tiny-stage2.pth", weights_only=True)
    expected = lira_pth_state_dict(trainer.model)
    assert sorted(exported) == sorted(expected)
    assert all(torch.equal(exported[key], expected[key].cpu()) for key in expected)
    assert "llm.base_model.model.model.layers.0.attention.wqkv.lora_A.default.weight" in exported
    assert "llm.base_model.model.output.lora_B.default.weight" in exported
    assert "projector.model.cross_beforellm.multihead_attn.in_proj_weight" in exported


def test_stage2_run_folder(stage2) -> None:
    config, *_ = stage2
    run = Path(config.output_dir)
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "finished" and info["export"].endswith("tiny-stage2.pth")
    page = (run / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == 4  # losses, learning rate, gradient norm, throughput
    assert "Nothing was left out." in page and "<script" not in page
    assert (run / "checkpoints" / "step-00000036" / "trainable.safetensors").is_file()


def test_stage1_trains_the_projectors_and_starts_stage2(data_root: Path, tmp_path: Path) -> None:
    config = _config(
        data_root,
        tmp_path,
        "stage1",
        optim={"lr": 1.0e-3},
        batch={"per_device": 2, "accumulation": 1},
        schedule={"epochs": 6},
        checkpoint={"every_steps": 0, "keep": 1},
        export_name="tiny_pre.pth",
    )
    trainer, before, after, rows = _train(config)
    trainable = set(trainer.model.trainable_parameter_names())
    assert trainable and all(name.startswith(("projector.", "projector_text2vision.")) for name in trainable)
    assert not any("cross_beforellm" in name for name in trainable)  # add_cross=False in stage 1
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name]) != (name in trainable), name
    assert len(rows) == 18 and rows[0]["dice_loss"] == 0 and rows[0]["mask_loss"] == 0
    projection = [row["projection_loss"] for row in rows]
    assert _mean(projection[-3:]) < 0.5 * _mean(projection[:3])
    assert _mean([row["lm_loss"] for row in rows][-3:]) < _mean([row["lm_loss"] for row in rows][:3])

    exported = torch.load(tmp_path / "run" / "tiny_pre.pth", weights_only=True)
    assert {"llm.model.tok_embeddings.weight", "llm.output.weight"} <= set(exported)

    values = tiny_overrides(data_root, tmp_path / "second", "stage2")
    values["model"]["init_pth"] = str(tmp_path / "run" / "tiny_pre.pth")
    start = load_config(str(write_config(tmp_path / "stage2_from_pre.yaml", "stage2", values)))
    model, notes = build_training_model(start, torch.device("cpu"))
    assert any("tiny_pre.pth" in note for note in notes)
    state = model.state_dict()
    for name in trainable:  # the stage-1 projectors carry over; the cross-attention starts fresh
        assert torch.equal(state[name], after[name]), name
    assert "projector.model.cross_beforellm.multihead_attn.in_proj_weight" in state
    embeddings = "language_model.model.embed_tokens.weight"
    assert torch.equal(state[embeddings], after[embeddings])


def test_stage2_export_loads_onto_the_seeded_base_and_predicts_like_the_trained_model(stage2) -> None:
    """What `lira-tiny` with trained weights does: the seeded random base (`random_init_seed` 3), the exported `.pth`
    on top with LoRA merged; its logits equal the trained model's (LoRA unmerged) up to rounding."""
    config, trainer, *_ = stage2
    fresh = build_random_lira(lira_config_for(config), seed=3)
    keys = apply_lira_pth(fresh, Path(config.output_dir) / "tiny-stage2.pth", merge=True)
    assert not fresh.lora_attached and any(".lora_A." in key for key in keys)
    batch = collate([trainer.dataset[6]], pad_token_id=2)  # the first RefCOCO sample: image, crops, masks
    assert batch.gt_masks is not None and batch.local_crop_pixel_values is not None
    trained = trainer.model.eval()
    with torch.no_grad():
        expected = trained(**batch.model_inputs(), generator=torch.Generator().manual_seed(0))
        got = fresh(**batch.model_inputs(), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(got.logits, expected.logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-4, atol=1e-4)
