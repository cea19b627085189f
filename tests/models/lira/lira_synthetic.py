"""A synthetic full set of official LIRA files at tiny sizes with random values, in the ORIGINAL layouts.

- InternVL2 folder: `vl_synthetic` (6 query heads over 2 KV heads, head_dim 8, LLM width 48, vocabulary 40).
- OMG-Seg `state_dict`: every key and shape of `fixtures/lira_seg_tiny/omg_seg.safetensors` (the tiny OMG-Seg,
  original key names, including the keys LIRA never uses), read from the fixture's `keys.txt`.
- LIRA `.pth`: the stage-2 layout of lira-model.md §11.2 (full embeddings and head, LoRA on every InternLM2
  Linear and on `output`, the SEFE projector with its cross-attention, `projector_text2vision`), or the stage-1
  layout (`llm.model.tok_embeddings.weight`, `llm.output.weight`, projector without cross-attention).

Shapes of the projector keys are written out here from lira-model.md §3.1 and §6, not taken from the model.
"""

from __future__ import annotations

from pathlib import Path

import torch
import vl_synthetic as syn

from models.lira.config import (
    OMG_SEG_TINY,
    LiraAddedTokenIds,
    LiraChatTokenIds,
    LiraConfig,
    LiraLoraConfig,
    LiraTextConfig,
    LiraVisionConfig,
    LiraVisionLanguageConfig,
    MaskLossConfig,
    SefeProjectorConfig,
    TextToVisionConfig,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "lira_seg_tiny"
H = syn.TEXT["hidden"]  # 48
C = 64  # OMG-Seg width of OMG_SEG_TINY
CLIP = 64  # ConvNeXt stage-4 channels of OMG_SEG_TINY
RANK, ALPHA = 4, 8.0
CLASSES, PROTOTYPES, CLASS_DIM = 5, 2, 16  # 3 things + 2 stuff


def config(stage: str = "finetune") -> LiraConfig:
    """The LIRA config of the synthetic files, written out by hand."""
    vision = LiraVisionConfig(
        image_size=28, patch_size=14, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2
    )
    text = LiraTextConfig(
        vocab_size=syn.LIRA_VOCAB,
        hidden_size=H,
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
        lora=LiraLoraConfig(rank=RANK, alpha=ALPHA),
        omg_seg=OMG_SEG_TINY,
        projector=SefeProjectorConfig(
            llm_hidden_size=H,
            query_channels=C,
            clip_channels=CLIP,
            cross_attention=stage == "finetune",
            cross_attention_heads=4,
        ),
        text_to_vision=TextToVisionConfig(llm_hidden_size=H, out_channels=2 * C),
        mask_loss=MaskLossConfig(num_points=64),
        seg_image_size=192,
        stage=stage,  # type: ignore[arg-type]
    )


def _randn(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=generator)


def omg_seg_state_dict(seed: int = 11) -> dict[str, torch.Tensor]:
    """Every tensor of the original `OMGSegVisualEncoder.state_dict()` at the tiny sizes (keys.txt)."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for line in (FIXTURE / "keys.txt").read_text().splitlines():
        if line.startswith("omg_seg.safetensors\t"):
            _, key, _, shape = line.split("\t")
            tensors[key] = _randn(generator, *(int(x) for x in shape.strip("[]").split(", ")))
    return tensors


def class_embeddings(seed: int = 12) -> torch.Tensor:
    raw = _randn(torch.Generator().manual_seed(seed), CLASSES, PROTOTYPES, CLASS_DIM)
    return raw / raw.norm(dim=-1, keepdim=True)


def projector_tensors(generator: torch.Generator, *, cross_attention: bool) -> dict[str, torch.Tensor]:
    """`projector.model.*` (lira-model.md §3.1) and `projector_text2vision.model.*` (§6)."""
    feat = CLIP * 4  # stage-4 channels after the 2x2 space-to-depth
    tensors = {
        "projector.model.query_proj.weight": _randn(generator, feat, 2 * C),
        "projector.model.query_proj.bias": _randn(generator, feat),
        "projector.model.model.0.weight": _randn(generator, H, feat),
        "projector.model.model.0.bias": _randn(generator, H),
        "projector.model.model.2.weight": _randn(generator, H, H),
        "projector.model.model.2.bias": _randn(generator, H),
        "projector.model.model_feat.0.weight": _randn(generator, H, feat + 2 * C),
        "projector.model.model_feat.0.bias": _randn(generator, H),
        "projector.model.model_feat.2.weight": _randn(generator, H, H),
        "projector.model.model_feat.2.bias": _randn(generator, H),
        "projector.model.seperate_embed.weight": _randn(generator, 1, H),
        "projector.model.seperate_embed_internvl.weight": _randn(generator, 1, H),
        "projector_text2vision.model.0.weight": _randn(generator, 2 * C, H),
        "projector_text2vision.model.0.bias": _randn(generator, 2 * C),
        "projector_text2vision.model.2.weight": _randn(generator, 2 * C, 2 * C),
        "projector_text2vision.model.2.bias": _randn(generator, 2 * C),
    }
    if cross_attention:
        cross = "projector.model.cross_beforellm."
        tensors.update(
            {
                cross + "norm1.weight": _randn(generator, H),
                cross + "norm1.bias": _randn(generator, H),
                cross + "norm2.weight": _randn(generator, H),
                cross + "norm2.bias": _randn(generator, H),
                cross + "multihead_attn.in_proj_weight": _randn(generator, 3 * H, H),
                cross + "multihead_attn.in_proj_bias": _randn(generator, 3 * H),
                cross + "multihead_attn.out_proj.weight": _randn(generator, H, H),
                cross + "multihead_attn.out_proj.bias": _randn(generator, H),
            }
        )
    return tensors


def lira_pth_stage2(seed: int = 13) -> dict[str, torch.Tensor]:
    """`LIRA-*.pth` layout: peft-wrapped InternLM2 embeddings/head, LoRA on every Linear and `output`, projectors."""
    generator = torch.Generator().manual_seed(seed)
    peft = "llm.base_model.model."
    vocab = syn.LIRA_VOCAB
    tensors = {
        peft + "model.tok_embeddings.weight": _randn(generator, vocab, H),
        peft + "output.base_layer.weight": _randn(generator, vocab, H),
    }
    for layer in range(syn.TEXT["layers"]):
        for module, fan_in, fan_out in syn.LAYER_LINEARS:
            prefix = f"{peft}model.layers.{layer}.{module}."
            tensors[prefix + "lora_A.default.weight"] = _randn(generator, RANK, fan_in)
            tensors[prefix + "lora_B.default.weight"] = _randn(generator, fan_out, RANK)
    tensors[peft + "output.lora_A.default.weight"] = _randn(generator, RANK, H)
    tensors[peft + "output.lora_B.default.weight"] = _randn(generator, vocab, RANK)
    tensors.update(projector_tensors(generator, cross_attention=True))
    return tensors


def lira_pth_stage1(seed: int = 14) -> dict[str, torch.Tensor]:
    """`lira_*_pre.pth` layout: un-wrapped LLM embeddings/head, projector without cross-attention."""
    generator = torch.Generator().manual_seed(seed)
    tensors = {
        "llm.model.tok_embeddings.weight": _randn(generator, syn.LIRA_VOCAB, H),
        "llm.output.weight": _randn(generator, syn.LIRA_VOCAB, H),
    }
    tensors.update(projector_tensors(generator, cross_attention=False))
    return tensors


def write_official_files(
    folder: Path,
    *,
    layout: str = "single",
    pth: dict[str, torch.Tensor] | None = None,
    omg: dict[str, torch.Tensor] | None = None,
    internvl: dict[str, torch.Tensor] | None = None,
) -> dict[str, Path]:
    """Write the InternVL2 folder, `omg_seg_convl.pth` (`{"state_dict": ...}`), the class-embedding `.pth` and the
    LIRA `.pth`; returns their paths under the keys `internvl`, `omg`, `classes`, `lira`."""
    folder.mkdir(parents=True, exist_ok=True)
    internvl_folder = syn.write_internvl_folder(
        folder / "InternVL2-tiny", internvl if internvl is not None else syn.internvl_tensors(), layout
    )
    omg_path = folder / "omg_seg_convl.pth"
    torch.save({"state_dict": omg if omg is not None else omg_seg_state_dict(), "meta": {"epoch": 1}}, omg_path)
    classes_path = folder / "convnext_large_d_320_CocoPanopticOVDataset.pth"
    torch.save(class_embeddings(), classes_path)
    lira_path = folder / "LIRA-tiny.pth"
    torch.save(pth if pth is not None else lira_pth_stage2(), lira_path)
    return {"internvl": internvl_folder, "omg": omg_path, "classes": classes_path, "lira": lira_path}
