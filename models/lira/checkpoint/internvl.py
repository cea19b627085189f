"""Original InternVL2 folders (InternViT, `mlp1`, InternLM2; remote-code layout) → `LiraVisionLanguageModel`.

The rename tables below are the whole conversion: every original key matches exactly one rule (anchored,
escaped regex), and the rules with several targets split a fused tensor. Targets are keys of
`LiraVisionLanguageModel` (attributes `vision_model`, `mlp1`, `language_model`). Sources:
native-internvl.md ("Weight rename table", "InternLM2 wqkv split rule"), fixtures/internvl2_tiny/keys.txt.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from models.lira.checkpoint.common import (
    CheckpointError,
    CheckpointKeyError,
    ConversionReport,
    RenameRule,
    StateDict,
    empty_weights,
    load_checkpoint_folder,
    load_into,
    match_rule,
    resolve_dtype,
    rule,
)
from models.lira.config import (
    AttnImplementation,
    LiraChatTokenIds,
    LiraVisionLanguageConfig,
    vision_language_config_from_internvl,
)
from models.lira.vision_language import LiraVisionLanguageModel

_EMB, _EMB_OUT = r"vision_model\.embeddings\.", "vision_model.embeddings."
_VIT, _VIT_OUT = r"vision_model\.encoder\.layers\.(\d+)\.", r"vision_model.encoder.layer.\1."
_LM, _LM_OUT = r"language_model\.model\.", "language_model.model."
_LAYER, _LAYER_OUT = _LM + r"layers\.(\d+)\.", _LM_OUT + r"layers.\1."

# fmt: off
INTERNVIT_RULES: tuple[RenameRule, ...] = (
    rule(_EMB + r"class_embedding",                 _EMB_OUT + "cls_token"),
    rule(_EMB + r"position_embedding",              _EMB_OUT + "position_embeddings"),
    rule(_EMB + r"patch_embedding\.(weight|bias)",  _EMB_OUT + r"patch_embeddings.projection.\1"),
    rule(_VIT + r"attn\.qkv\.(weight|bias)",        _VIT_OUT + r"attention.q_proj.\2",
                                                    _VIT_OUT + r"attention.k_proj.\2",
                                                    _VIT_OUT + r"attention.v_proj.\2",    split="qkv_thirds"),
    rule(_VIT + r"attn\.proj\.(weight|bias)",       _VIT_OUT + r"attention.projection_layer.\2"),
    rule(_VIT + r"mlp\.fc([12])\.(weight|bias)",    _VIT_OUT + r"mlp.fc\2.\3"),
    rule(_VIT + r"norm1\.(weight|bias)",            _VIT_OUT + r"layernorm_before.\2"),
    rule(_VIT + r"norm2\.(weight|bias)",            _VIT_OUT + r"layernorm_after.\2"),
    rule(_VIT + r"ls([12])",                        _VIT_OUT + r"lambda_\2"),              # layer scales
)

MLP1_RULES: tuple[RenameRule, ...] = (
    rule(r"mlp1\.0\.(weight|bias)",                 r"mlp1.layer_norm.\1"),                # LayerNorm(4C)
    rule(r"mlp1\.1\.(weight|bias)",                 r"mlp1.linear_1.\1"),                  # Linear(4C → H)
    rule(r"mlp1\.3\.(weight|bias)",                 r"mlp1.linear_2.\1"),                  # Linear(H → H)
)                                                                                          # (mlp1.2 = GELU)

INTERNLM2_RULES: tuple[RenameRule, ...] = (
    rule(_LM + r"tok_embeddings\.weight",           _LM_OUT + "embed_tokens.weight"),
    rule(_LAYER + r"attention\.wqkv\.weight",       _LAYER_OUT + "self_attn.q_proj.weight",
                                                    _LAYER_OUT + "self_attn.k_proj.weight",
                                                    _LAYER_OUT + "self_attn.v_proj.weight",
                                                    split="wqkv_grouped"),
    rule(_LAYER + r"attention\.wo\.weight",         _LAYER_OUT + "self_attn.o_proj.weight"),
    rule(_LAYER + r"feed_forward\.w1\.weight",      _LAYER_OUT + "mlp.gate_proj.weight"),  # SiLU side
    rule(_LAYER + r"feed_forward\.w3\.weight",      _LAYER_OUT + "mlp.up_proj.weight"),
    rule(_LAYER + r"feed_forward\.w2\.weight",      _LAYER_OUT + "mlp.down_proj.weight"),
    rule(_LAYER + r"attention_norm\.weight",        _LAYER_OUT + "input_layernorm.weight"),
    rule(_LAYER + r"ffn_norm\.weight",              _LAYER_OUT + "post_attention_layernorm.weight"),
    rule(_LM + r"norm\.weight",                     _LM_OUT + "norm.weight"),
    rule(r"language_model\.output\.weight",         "language_model.lm_head.weight"),     # untied head
)
# fmt: on

INTERNVL_RULES: tuple[RenameRule, ...] = INTERNVIT_RULES + MLP1_RULES + INTERNLM2_RULES


def split_vision_qkv(qkv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """InternViT `attn.qkv` rows are `[q | k | v]`, three equal blocks (weight `(3C, C)` or bias `(3C,)`)."""
    if qkv.shape[0] % 3:
        raise ValueError(f"qkv has {qkv.shape[0]} rows, not a multiple of 3")
    q, k, v = qkv.chunk(3, dim=0)
    return q.contiguous(), k.contiguous(), v.contiguous()


def split_internlm2_wqkv(
    wqkv: torch.Tensor, num_heads: int, num_kv_heads: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split InternLM2's packed `wqkv` `((H + 2K)·D, hidden)` into Llama's q, k, v projections.

    Rows are grouped per KV head: for g = 0..K-1 a block of (G + 2)·D rows holds the G = H/K query heads
    of that group, then key head g, then value head g (each D rows). Query head j belongs to KV head j // G,
    which is the grouping Llama's `repeat_kv` uses, so no head reordering is needed.

    Returns:
        `q_proj` `(H·D, hidden)`, `k_proj` `(K·D, hidden)`, `v_proj` `(K·D, hidden)`.
    """
    if num_heads % num_kv_heads:
        raise ValueError(f"num_heads {num_heads} is not a multiple of num_kv_heads {num_kv_heads}")
    group = num_heads // num_kv_heads
    rows, hidden = wqkv.shape
    if rows % (num_heads + 2 * num_kv_heads):
        raise ValueError(
            f"wqkv has {rows} rows, not a multiple of num_heads + 2·num_kv_heads = {num_heads + 2 * num_kv_heads}"
        )
    head_dim = rows // (num_heads + 2 * num_kv_heads)
    grouped = wqkv.reshape(num_kv_heads, group + 2, head_dim, hidden)
    q = grouped[:, :group].reshape(num_heads * head_dim, hidden).contiguous()
    k = grouped[:, group].reshape(num_kv_heads * head_dim, hidden).contiguous()
    v = grouped[:, group + 1].reshape(num_kv_heads * head_dim, hidden).contiguous()
    return q, k, v


def pack_internlm2_wqkv(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_heads: int, num_kv_heads: int
) -> torch.Tensor:
    """The inverse of `split_internlm2_wqkv`: Llama's q, k, v projections → InternLM2's grouped `wqkv`.

    Args:
        q: `(H·D, ...)`; k, v: `(K·D, ...)`. Any trailing shape (a weight `(·, hidden)` or a LoRA B `(·, r)`).

    Returns:
        `((H + 2K)·D, ...)`: per KV group g, the G = H/K query heads of the group, key head g, value head g.
    """
    if num_heads % num_kv_heads:
        raise ValueError(f"num_heads {num_heads} is not a multiple of num_kv_heads {num_kv_heads}")
    group = num_heads // num_kv_heads
    if q.shape[0] % num_heads or k.shape[0] != v.shape[0] or k.shape[0] * num_heads != q.shape[0] * num_kv_heads:
        raise ValueError(
            f"q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} do not fit {num_heads} query heads "
            f"over {num_kv_heads} KV heads"
        )
    head_dim = q.shape[0] // num_heads
    rest = tuple(q.shape[1:])
    grouped = torch.cat(
        [
            q.reshape(num_kv_heads, group, head_dim, *rest),
            k.reshape(num_kv_heads, 1, head_dim, *rest),
            v.reshape(num_kv_heads, 1, head_dim, *rest),
        ],
        dim=1,
    )
    return grouped.reshape((num_heads + 2 * num_kv_heads) * head_dim, *rest).contiguous()


def _split(split: str, tensor: torch.Tensor, config: LiraVisionLanguageConfig) -> tuple[torch.Tensor, ...]:
    if split == "qkv_thirds":
        return split_vision_qkv(tensor)
    if split == "wqkv_grouped":
        return split_internlm2_wqkv(tensor, config.text.num_attention_heads, config.text.num_key_value_heads)
    raise RuntimeError(f"rename table bug: unknown split {split!r}")


def _expected_fused_rows(split: str, config: LiraVisionLanguageConfig) -> int:
    if split == "qkv_thirds":
        return 3 * config.vision.hidden_size
    text = config.text
    return (text.num_attention_heads + 2 * text.num_key_value_heads) * text.head_dim


def vision_language_shapes(config: LiraVisionLanguageConfig) -> dict[str, torch.Size]:
    """Every state-dict key of `LiraVisionLanguageModel(config)` with its shape (built on the meta device)."""
    with torch.device("meta"):
        module = LiraVisionLanguageModel(config)
    return {key: value.shape for key, value in module.state_dict().items()}


def convert_internvl_state_dict(
    state_dict: StateDict, config: LiraVisionLanguageConfig, *, source: str = "InternVL2 checkpoint"
) -> tuple[StateDict, ConversionReport]:
    """Rename and split an original-layout InternVL2 state dict into `LiraVisionLanguageModel` keys.

    The source dict is emptied as it is converted (to free memory early).

    Raises:
        CheckpointKeyError: naming every source key no rule matches, every model key left unfilled and
            every shape that disagrees with `config`.
    """
    report = ConversionReport(sources=[source])
    converted: StateDict = {}
    unexpected: list[str] = []
    mismatched: list[str] = []
    for key in list(state_dict):
        tensor = state_dict.pop(key)
        found = match_rule(key, INTERNVL_RULES)
        if found is None:
            unexpected.append(key)
            continue
        matched, targets = found
        report.renamed[key] = targets
        if matched.split is None:
            converted[targets[0]] = tensor
            continue
        rows = _expected_fused_rows(matched.split, config)
        if tensor.shape[0] != rows:
            mismatched.append(f"{key}: checkpoint {tuple(tensor.shape)}, expected {rows} rows")
            continue
        converted.update(zip(targets, _split(matched.split, tensor, config), strict=True))
    expected = vision_language_shapes(config)
    missing = [key for key in expected if key not in converted]
    unexpected.extend(key for key in converted if key not in expected)
    mismatched.extend(
        f"{key}: checkpoint {tuple(converted[key].shape)}, model {tuple(shape)}"
        for key, shape in expected.items()
        if key in converted and converted[key].shape != shape
    )
    if missing or unexpected or mismatched:
        raise CheckpointKeyError(source, missing=missing, unexpected=unexpected, mismatched=mismatched)
    text = config.text
    report.operations.append(
        f"split {sum(1 for t in report.renamed.values() if len(t) == 3)} fused tensors: InternViT qkv "
        f"in thirds, InternLM2 wqkv per KV group ({text.num_key_value_heads} groups of "
        f"{text.queries_per_kv_head} q + 1 k + 1 v heads of {text.head_dim} rows)"
    )
    return converted, report


def build_vision_language(
    config: LiraVisionLanguageConfig,
    state_dict: StateDict,
    *,
    dtype: torch.dtype | str = torch.float32,
    device: torch.device | str = "cpu",
    source: str = "state dict",
) -> LiraVisionLanguageModel:
    """Instantiate `LiraVisionLanguageModel` in `dtype` on `device` (no random init) and load a converted
    state dict strictly; the model is returned in eval mode."""
    with empty_weights(resolve_dtype(dtype), device):
        model = LiraVisionLanguageModel(config)
    load_into(model, state_dict, source)
    return model.eval()


@dataclasses.dataclass
class InternVLCheckpoint:
    """An original InternVL2 folder read into memory (original key layout)."""

    config: LiraVisionLanguageConfig
    state_dict: StateDict
    files: list[Path]


def read_internvl_folder(
    folder: str | Path,
    *,
    chat_tokens: LiraChatTokenIds,
    attn_implementation: AttnImplementation = "eager",
) -> InternVLCheckpoint:
    """Read `config.json` and the weights (single or sharded safetensors, or `.bin`) of an InternVL2 folder.

    Args:
        chat_tokens: the chat-token ids of the folder's tokenizer (not stored in `config.json`).
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{folder}: no config.json")
    try:
        config_json = json.loads(config_path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{config_path}: invalid JSON ({error})") from error
    config = vision_language_config_from_internvl(
        config_json, chat_tokens=chat_tokens, attn_implementation=attn_implementation, source=str(config_path)
    )
    state_dict, files = load_checkpoint_folder(folder)
    return InternVLCheckpoint(config=config, state_dict=state_dict, files=files)


def load_internvl_folder(
    folder: str | Path,
    *,
    chat_tokens: LiraChatTokenIds,
    dtype: torch.dtype | str = torch.float32,
    device: torch.device | str = "cpu",
    attn_implementation: AttnImplementation = "eager",
) -> tuple[LiraVisionLanguageModel, ConversionReport]:
    """Build `LiraVisionLanguageModel` from an original InternVL2 folder (e.g. `pretrained/InternVL2-2B`).

    Returns:
        The model in eval mode and the conversion report.
    """
    checkpoint = read_internvl_folder(folder, chat_tokens=chat_tokens, attn_implementation=attn_implementation)
    source = ", ".join(str(path) for path in checkpoint.files)
    converted, report = convert_internvl_state_dict(checkpoint.state_dict, checkpoint.config, source=source)
    model = build_vision_language(checkpoint.config, converted, dtype=dtype, device=device, source=source)
    report.operations.append(f"loaded as {resolve_dtype(dtype)} on {device}")
    return model, report
