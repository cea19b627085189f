"""The model a training run starts from, with its tokenizer and trainable parts set for the stage.

- Stage 1 (`pretrain`): InternVL2 folder + OMG-Seg files, fresh `projector.*` and `projector_text2vision.*`
  (PyTorch default initialisation, seeded), no LoRA.
- Stage 2 (`finetune`): the same files plus the stage-1 `.pth` (`init_pth`, the original's `pretrained_pth`); the
  SEFE cross-attention, absent from stage-1 files, starts fresh; new LoRA adapters (A Kaiming-uniform, B zero).

With `random_init_seed` the base weights are seeded random values instead of the files (tests and benchmarks), and
`init_pth` is applied on top.

Trainable parameters (`LiraModel.prepare_for_training`, lira-model.md §9) are held in float32; frozen ones in
`model.dtype` (OMG-Seg always float32).
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from harness.errors import UserError
from models.lira.checkpoint.common import resolve_dtype
from models.lira.checkpoint.lira import apply_lira_pth, build_random_lira, load_lira
from models.lira.checkpoint.lira_pth import read_lira_pth
from models.lira.config import LiraConfig, LiraLoraConfig, preset
from models.lira.model import LiraModel
from models.lira.tokenizer import InternLM2Tokenizer, load_lira_tokenizer
from models.lira.training.config import TrainConfig
from models.lira.training.dataset import check_tokenizer


def lira_config_for(config: TrainConfig) -> LiraConfig:
    """The preset for the run's stage, with the run's LoRA settings."""
    try:
        base = preset(config.model.preset)
    except KeyError as error:
        raise UserError(str(error.args[0])) from None
    lora = config.model.lora
    lora_config = LiraLoraConfig(rank=lora.rank, alpha=lora.alpha, dropout=lora.dropout)
    return dataclasses.replace(base, lora=lora_config).for_stage(config.stage)


def frozen_dtype(config: TrainConfig, device: torch.device) -> torch.dtype:
    """`model.dtype`, `auto` meaning float16 on CUDA (the original loads InternVL2 in float16), else float32."""
    if config.model.dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return resolve_dtype(config.model.dtype)


def load_training_tokenizer(config: TrainConfig, lira_config: LiraConfig) -> InternLM2Tokenizer:
    """The tokenizer folder's tokenizer with LIRA's tokens, checked against the model's token ids."""
    folder = config.model.tokenizer or config.model.internvl
    if folder is None:
        raise UserError("training config: model.tokenizer is needed when the weights are random (random_init_seed)")
    tokenizer = load_lira_tokenizer(folder, expected_ids=None)
    check_tokenizer(tokenizer, lira_config, str(folder))
    return tokenizer


def build_training_model(config: TrainConfig, device: torch.device) -> tuple[LiraModel, list[str]]:
    """The starting model on `device` with its stage's trainable parts (float32); returns it and a log of where
    its weights came from."""
    lira_config = lira_config_for(config)
    dtype = frozen_dtype(config, device)
    finetune = config.stage == "finetune"
    notes: list[str] = []
    torch.manual_seed(config.seed)  # fresh projector / cross-attention / LoRA initialisation
    model_config = config.model
    if model_config.random_init_seed is not None:
        model = build_random_lira(lira_config, model_config.random_init_seed, dtype=dtype, device=device)
        notes.append(f"random base weights (seed {model_config.random_init_seed})")
        if finetune:
            model.attach_lora()
        if model_config.init_pth is not None:
            if not finetune and read_lira_pth(model_config.init_pth).lora:
                raise UserError(f"{model_config.init_pth}: holds LoRA (a stage-2 file); stage 1 has no LoRA")
            keys = apply_lira_pth(model, model_config.init_pth)
            notes.append(f"{len(keys)} tensors from {model_config.init_pth}")
    else:
        assert model_config.internvl and model_config.omg_seg and model_config.class_embeddings
        if finetune:
            fresh = ("projector.model.cross_beforellm.",)
            if model_config.init_pth is None:
                fresh = ("projector.", "projector_text2vision.")
        else:
            fresh = ("projector.", "projector_text2vision.")
        model, report = load_lira(
            lira_config,
            model_config.internvl,
            model_config.omg_seg,
            model_config.class_embeddings,
            model_config.init_pth,
            dtype=dtype,
            device=device,
            lora="attach" if finetune else "merge",
            allow_fresh=fresh,
        )
        notes.append(report.summary())
    model.prepare_for_training()
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.data = parameter.data.float()
    if config.activation_checkpointing:
        model.language_model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    for frozen in (model.vision_model, model.mlp1, model.visual_encoder):
        frozen.eval()  # no dropout or batch statistics in frozen parts
    return model, notes


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Trainable parameters in module order (the optimizer's order)."""
    return [(name, parameter) for name, parameter in model.named_parameters() if parameter.requires_grad]


__all__ = [
    "build_training_model",
    "frozen_dtype",
    "lira_config_for",
    "load_training_tokenizer",
    "trainable_parameters",
]
