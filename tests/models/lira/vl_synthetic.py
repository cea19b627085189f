"""Synthetic checkpoints in the ORIGINAL layouts (InternVL2 folder, LIRA `.pth`) at tiny sizes, random values.

Key names and shapes are written here from the original layout (fixtures/internvl2_tiny/keys.txt,
lira-model.md §2.1 and §11.2), independently of the converters under test. The sizes differ from the
parity fixture on purpose: 6 query heads over 2 KV heads (3 per group), head_dim 8.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

VISION = {"image_size": 28, "patch_size": 14, "hidden": 32, "inter": 48, "layers": 2, "heads": 2}
TEXT = {"vocab": 40, "hidden": 48, "inter": 72, "layers": 2, "heads": 6, "kv_heads": 2}
HEAD_DIM = TEXT["hidden"] // TEXT["heads"]  # 8
CHAT_TOKENS = {"im_end": 30, "im_start": 31, "img_start": 32, "img_end": 33, "img_context": 34}
LIRA_VOCAB = TEXT["vocab"] + 6  # the six LIRA tokens get ids 40..45

# (module, in_features, out_features) of every InternLM2 Linear inside a decoder layer.
LAYER_LINEARS = (
    ("attention.wqkv", TEXT["hidden"], (TEXT["heads"] + 2 * TEXT["kv_heads"]) * HEAD_DIM),
    ("attention.wo", TEXT["hidden"], TEXT["hidden"]),
    ("feed_forward.w1", TEXT["hidden"], TEXT["inter"]),
    ("feed_forward.w3", TEXT["hidden"], TEXT["inter"]),
    ("feed_forward.w2", TEXT["inter"], TEXT["hidden"]),
)


def internvl_config_json() -> dict:
    """An original-style `config.json` (`internvl_chat`) for the synthetic model."""
    return {
        "architectures": ["InternVLChatModel"],
        "model_type": "internvl_chat",
        "downsample_ratio": 0.5,
        "force_image_size": VISION["image_size"],
        "ps_version": "v2",
        "select_layer": -1,
        "template": "internlm2-chat",
        "tie_word_embeddings": False,
        "vision_config": {
            "model_type": "intern_vit_6b",
            "image_size": VISION["image_size"],
            "patch_size": VISION["patch_size"],
            "num_channels": 3,
            "hidden_size": VISION["hidden"],
            "intermediate_size": VISION["inter"],
            "num_hidden_layers": VISION["layers"],
            "num_attention_heads": VISION["heads"],
            "qkv_bias": True,
            "qk_normalization": False,
            "norm_type": "layer_norm",
            "layer_norm_eps": 1e-6,
            "hidden_act": "gelu",
            "initializer_factor": 1.0,
            "use_flash_attn": True,
        },
        "llm_config": {
            "model_type": "internlm2",
            "architectures": ["InternLM2ForCausalLM"],
            "vocab_size": TEXT["vocab"],
            "hidden_size": TEXT["hidden"],
            "intermediate_size": TEXT["inter"],
            "num_hidden_layers": TEXT["layers"],
            "num_attention_heads": TEXT["heads"],
            "num_key_value_heads": TEXT["kv_heads"],
            "hidden_act": "silu",
            "rms_norm_eps": 1e-5,
            "rope_theta": 1000000,
            "rope_scaling": {"type": "dynamic", "factor": 2.0},
            "max_position_embeddings": 32768,
            "bias": False,
            "bos_token_id": 1,
            "eos_token_id": 2,
            "pad_token_id": 2,
            "tie_word_embeddings": False,
            "attn_implementation": "flash_attention_2",
        },
    }


def internvl_tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    """Every tensor of an original InternVL2 checkpoint (InternViT, mlp1, InternLM2), random normal values."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    c, grid = VISION["hidden"], VISION["image_size"] // VISION["patch_size"]
    tensors = {
        "vision_model.embeddings.class_embedding": randn(1, 1, c),
        "vision_model.embeddings.position_embedding": randn(1, grid * grid + 1, c),
        "vision_model.embeddings.patch_embedding.weight": randn(c, 3, VISION["patch_size"], VISION["patch_size"]),
        "vision_model.embeddings.patch_embedding.bias": randn(c),
    }
    for layer in range(VISION["layers"]):
        prefix = f"vision_model.encoder.layers.{layer}."
        tensors.update(
            {
                prefix + "ls1": randn(c),
                prefix + "ls2": randn(c),
                prefix + "attn.qkv.weight": randn(3 * c, c),
                prefix + "attn.qkv.bias": randn(3 * c),
                prefix + "attn.proj.weight": randn(c, c),
                prefix + "attn.proj.bias": randn(c),
                prefix + "mlp.fc1.weight": randn(VISION["inter"], c),
                prefix + "mlp.fc1.bias": randn(VISION["inter"]),
                prefix + "mlp.fc2.weight": randn(c, VISION["inter"]),
                prefix + "mlp.fc2.bias": randn(c),
                prefix + "norm1.weight": randn(c),
                prefix + "norm1.bias": randn(c),
                prefix + "norm2.weight": randn(c),
                prefix + "norm2.bias": randn(c),
            }
        )
    h = TEXT["hidden"]
    tensors["language_model.model.tok_embeddings.weight"] = randn(TEXT["vocab"], h)
    for layer in range(TEXT["layers"]):
        prefix = f"language_model.model.layers.{layer}."
        for module, fan_in, fan_out in LAYER_LINEARS:
            tensors[prefix + module + ".weight"] = randn(fan_out, fan_in)
        tensors[prefix + "attention_norm.weight"] = randn(h)
        tensors[prefix + "ffn_norm.weight"] = randn(h)
    tensors["language_model.model.norm.weight"] = randn(h)
    tensors["language_model.output.weight"] = randn(TEXT["vocab"], h)
    tensors.update(
        {
            "mlp1.0.weight": randn(4 * c),
            "mlp1.0.bias": randn(4 * c),
            "mlp1.1.weight": randn(h, 4 * c),
            "mlp1.1.bias": randn(h),
            "mlp1.3.weight": randn(h, h),
            "mlp1.3.bias": randn(h),
        }
    )
    return tensors


def write_internvl_folder(
    folder: Path, tensors: dict[str, torch.Tensor], layout: str, config_json: dict | None = None
) -> Path:
    """Write an InternVL2 folder: `single` / `sharded` safetensors, or `bin` / `bin_sharded` torch files."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config_json or internvl_config_json()))
    keys = list(tensors)
    if layout == "single":
        save_file(tensors, str(folder / "model.safetensors"))
    elif layout == "bin":
        torch.save(tensors, folder / "pytorch_model.bin")
    elif layout in ("sharded", "bin_sharded"):
        chunks = [
            keys[: len(keys) // 3],
            keys[len(keys) // 3 : 2 * len(keys) // 3],
            keys[2 * len(keys) // 3 :],
        ]
        weight_map = {}
        for index, chunk in enumerate(chunks, start=1):
            if layout == "sharded":
                name = f"model-{index:05d}-of-00003.safetensors"
                save_file({key: tensors[key] for key in chunk}, str(folder / name))
            else:
                name = f"pytorch_model-{index:05d}-of-00003.bin"
                torch.save({key: tensors[key] for key in chunk}, folder / name)
            weight_map.update(dict.fromkeys(chunk, name))
        index_name = "model.safetensors.index.json" if layout == "sharded" else "pytorch_model.bin.index.json"
        (folder / index_name).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    else:
        raise ValueError(layout)
    return folder


def lira_pth_tensors(rank: int, vocab_rows: int, seed: int = 1) -> dict[str, torch.Tensor]:
    """A LIRA `.pth` state dict: full embeddings/head, LoRA on every Linear and `output`, projector keys."""
    generator = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    peft = "llm.base_model.model."
    h = TEXT["hidden"]
    tensors = {
        peft + "model.tok_embeddings.weight": randn(vocab_rows, h),
        peft + "output.base_layer.weight": randn(vocab_rows, h),
    }
    for layer in range(TEXT["layers"]):
        for module, fan_in, fan_out in LAYER_LINEARS:
            prefix = f"{peft}model.layers.{layer}.{module}."
            tensors[prefix + "lora_A.default.weight"] = randn(rank, fan_in)
            tensors[prefix + "lora_B.default.weight"] = randn(fan_out, rank)
    tensors[peft + "output.lora_A.default.weight"] = randn(rank, h)
    tensors[peft + "output.lora_B.default.weight"] = randn(vocab_rows, rank)
    tensors["projector.model.query_proj.weight"] = randn(12, 10)
    tensors["projector.model.seperate_embed.weight"] = randn(1, h)
    tensors["projector_text2vision.model.0.weight"] = randn(10, h)
    return tensors


def independent_wqkv_split(
    wqkv: torch.Tensor, num_heads: int, num_kv_heads: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split a grouped InternLM2 `wqkv` row by row with the index arithmetic of native-internvl.md:
    row r → g = r // ((G+2)·D), s = (r // D) mod (G+2), d = r mod D; s < G → q row (g·G+s)·D+d,
    s = G → k row g·D+d, s = G+1 → v row g·D+d."""
    group = num_heads // num_kv_heads
    head_dim = wqkv.shape[0] // (num_heads + 2 * num_kv_heads)
    q = torch.full((num_heads * head_dim, wqkv.shape[1]), float("nan"))
    k = torch.full((num_kv_heads * head_dim, wqkv.shape[1]), float("nan"))
    v = torch.full((num_kv_heads * head_dim, wqkv.shape[1]), float("nan"))
    for r in range(wqkv.shape[0]):
        g, s, d = r // ((group + 2) * head_dim), (r // head_dim) % (group + 2), r % head_dim
        if s < group:
            q[(g * group + s) * head_dim + d] = wqkv[r]
        elif s == group:
            k[g * head_dim + d] = wqkv[r]
        else:
            v[g * head_dim + d] = wqkv[r]
    return q, k, v
