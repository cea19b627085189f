"""LIRA's fine-tuned delta files (`LIRA-2B.pth`, `LIRA-8B.pth`, stage-1 `lira_*_pre.pth`).

A LIRA `.pth` is a flat `torch.save`d dict written by `LIRA.state_dict()` (echo840/LIRA
`omg_llava/model/lira.py`; lira-model.md §11.2). It holds only what training changed:

- the full input embeddings and LM head of the (peft-wrapped) InternLM2, prefix `llm.base_model.model.`
  (`llm.` in stage-1 files, where the LLM is not wrapped);
- LoRA `lora_A` `(r, in)` / `lora_B` `(out, r)` pairs on every `wqkv`, `wo`, `w1`, `w2`, `w3` and on `output`;
- the SEFE projector `projector.*` and the `[SEG]` projector `projector_text2vision.*`, passed through
  unchanged to the segmentation half.

Everything else (InternViT, `mlp1`, the base LLM weights) comes from the InternVL2 folder.

**LoRA is merged, not attached.** Each pair is folded into its base weight, `W + (alpha / r) · B @ A`
(computed in float32), in the original InternLM2 layout, *before* the `wqkv` split; the merged packed
weight then goes through the same split as a plain InternVL2 checkpoint, so there is one split path.
The result equals peft's unmerged inference output up to rounding (the LoRA dropout is inactive in eval
mode). Training code that needs live adapters attaches fresh peft LoRA to the native modules instead.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from models.lira.checkpoint.common import (
    CheckpointError,
    CheckpointKeyError,
    ConversionReport,
    RenameRule,
    StateDict,
    load_tensor_file,
    match_rule,
    resolve_dtype,
    rule,
)
from models.lira.checkpoint.internvl import (
    InternVLCheckpoint,
    build_vision_language,
    convert_internvl_state_dict,
    read_internvl_folder,
)
from models.lira.config import LiraConfig, LiraLoraConfig, LiraVisionLanguageConfig
from models.lira.vision_language import LiraVisionLanguageModel

EMBEDDINGS_KEY = "language_model.model.tok_embeddings.weight"
"""Original InternVL2 key of the input embeddings."""
HEAD_KEY = "language_model.output.weight"
"""Original InternVL2 key of the LM head."""

_PEFT = r"llm\.base_model\.model\."
_LORA_TARGET = r"model\.layers\.(\d+)\.(attention\.wqkv|attention\.wo|feed_forward\.w[123])"
_LORA_TARGET_OUT = r"language_model.model.layers.\1.\2.weight"
_ADAPTER = r"(?:\.default)?\.weight"  # the adapter name "default" is kept by xtuner's state-dict helper

# Targets are original InternVL2 keys (the layout of `models.lira.checkpoint.internvl` tables).
# fmt: off
FULL_TENSOR_RULES: tuple[RenameRule, ...] = (
    rule(_PEFT + r"model\.tok_embeddings\.weight",          EMBEDDINGS_KEY),
    rule(_PEFT + r"output\.base_layer\.weight",             HEAD_KEY),
    rule(r"llm\.model\.tok_embeddings\.weight",             EMBEDDINGS_KEY),   # stage 1: no peft
    rule(r"llm\.output\.weight",                            HEAD_KEY),
)

LORA_A_RULES: tuple[RenameRule, ...] = (
    rule(_PEFT + _LORA_TARGET + r"\.lora_A" + _ADAPTER,     _LORA_TARGET_OUT),
    rule(_PEFT + r"output\.lora_A" + _ADAPTER,              HEAD_KEY),
)

LORA_B_RULES: tuple[RenameRule, ...] = (
    rule(_PEFT + _LORA_TARGET + r"\.lora_B" + _ADAPTER,     _LORA_TARGET_OUT),
    rule(_PEFT + r"output\.lora_B" + _ADAPTER,              HEAD_KEY),
)

PASSTHROUGH_RULES: tuple[RenameRule, ...] = (
    rule(r"(projector\..+)",                                r"\1"),   # SEFE projector
    rule(r"(projector_text2vision\..+)",                    r"\1"),   # [SEG] → 512-d projector
)
# fmt: on

_LAYER_MODULES = {
    "wqkv": "attention.wqkv",
    "wo": "attention.wo",
    "w1": "feed_forward.w1",
    "w2": "feed_forward.w2",
    "w3": "feed_forward.w3",
}


@dataclasses.dataclass
class LiraDelta:
    """The contents of a LIRA `.pth`, keyed by original InternVL2 names."""

    full: StateDict
    """Whole tensors that replace the base ones (input embeddings, LM head)."""
    lora: dict[str, tuple[torch.Tensor, torch.Tensor]]
    """Base weight key → `(lora_A (r, in), lora_B (out, r))`."""
    passthrough: StateDict
    """`projector.*` and `projector_text2vision.*`, keys unchanged."""
    source: str


def read_lira_pth(path: str | Path) -> LiraDelta:
    """Read a LIRA `.pth` (`torch.load(weights_only=True)`; `state_dict`/`module` wrappers accepted).

    Raises:
        CheckpointKeyError: naming every key that is not a known LIRA key, and every LoRA half
            without its partner.
    """
    source = str(path)
    state_dict = load_tensor_file(path)
    delta = LiraDelta(full={}, lora={}, passthrough={}, source=source)
    halves_a: StateDict = {}
    halves_b: StateDict = {}
    unexpected: list[str] = []
    for key, tensor in state_dict.items():
        for rules, bucket in (
            (FULL_TENSOR_RULES, delta.full),
            (LORA_A_RULES, halves_a),
            (LORA_B_RULES, halves_b),
            (PASSTHROUGH_RULES, delta.passthrough),
        ):
            found = match_rule(key, rules)
            if found is not None:
                target = found[1][0]
                if target in bucket:
                    raise CheckpointError(f"{source}: two keys map to {target!r} (the second is {key!r})")
                bucket[target] = tensor
                break
        else:
            unexpected.append(key)
    missing = [f"lora_B of {target}" for target in halves_a if target not in halves_b]
    missing += [f"lora_A of {target}" for target in halves_b if target not in halves_a]
    if unexpected or missing:
        raise CheckpointKeyError(source, missing=missing, unexpected=unexpected)
    delta.lora = {target: (halves_a[target], halves_b[target]) for target in halves_a}
    return delta


def pad_vocabulary_rows(matrix: torch.Tensor, rows: int, *, fill: str) -> torch.Tensor:
    """Grow a vocabulary matrix to `rows` rows.

    LIRA's rule for a checkpoint with fewer vocabulary rows than the model (`refcoco_lira.py` and the
    `pretrained_pth` path of `LIRA.__init__`): input embeddings and the LM head (`output.base_layer`) get
    new rows equal to the mean of their existing rows; the head's `lora_B` gets zero rows.

    Args:
        matrix: `(vocab, width)`.
        fill: `"mean"` (row mean, computed in float32) or `"zeros"`.

    Raises:
        ValueError: if the matrix already has more than `rows` rows, or `fill` is unknown.
    """
    extra = rows - matrix.shape[0]
    if extra < 0:
        raise ValueError(f"matrix has {matrix.shape[0]} rows, more than the model's {rows}")
    if fill == "mean":
        new_rows = matrix.float().mean(dim=0, keepdim=True).to(matrix.dtype).expand(extra, -1)
    elif fill == "zeros":
        new_rows = matrix.new_zeros(extra, matrix.shape[1])
    else:
        raise ValueError(f"unknown fill {fill!r}; expected 'mean' or 'zeros'")
    return torch.cat([matrix, new_rows], dim=0)


def expected_lora_targets(num_layers: int, lora: LiraLoraConfig) -> list[str]:
    """Original keys of every weight that carries LoRA under `lora.target_modules`."""
    targets = [
        f"language_model.model.layers.{layer}.{_LAYER_MODULES[name]}.weight"
        for layer in range(num_layers)
        for name in lora.target_modules
        if name != "output"
    ]
    if "output" in lora.target_modules:
        targets.append(HEAD_KEY)
    return targets


def apply_lira_delta(
    state_dict: StateDict,
    delta: LiraDelta | None,
    *,
    config: LiraVisionLanguageConfig,
    lora: LiraLoraConfig,
    merged_dtype: torch.dtype,
) -> ConversionReport:
    """Apply a LIRA delta in place to an original-layout InternVL2 state dict.

    Steps, in order:
    1. Base vocabulary growth to `config.text.vocab_size` (LIRA's `_add_special_tokens`): new LM-head rows
       are the mean of the old ones. New input-embedding rows are also the row mean here; the original
       leaves them randomly initialised, and every LIRA `.pth` replaces them.
    2. The delta's full tensors replace the base ones; if they have fewer rows than the model, they and the
       head's `lora_B` are padded by `pad_vocabulary_rows`.
    3. LoRA merge `W + (alpha / r) · B @ A` in float32, stored as `merged_dtype`. When the file has LoRA,
       it must cover exactly the weights of `expected_lora_targets`, with rank `lora.rank`.

    Raises:
        CheckpointKeyError: LoRA pairs missing or unexpected for the configured targets, or shapes that
            do not fit.
        CheckpointError: a checkpoint vocabulary larger than the model's.
    """
    source = delta.source if delta is not None else "InternVL2 folder"
    report = ConversionReport()
    vocab_size = config.text.vocab_size
    for key in (EMBEDDINGS_KEY, HEAD_KEY):
        if key not in state_dict:
            continue  # reported as missing by the conversion that follows, unless the delta supplies it
        rows = state_dict[key].shape[0]
        if rows > vocab_size:
            raise CheckpointError(f"{key} has {rows} rows, more than the model vocabulary {vocab_size}")
        if rows < vocab_size:
            state_dict[key] = pad_vocabulary_rows(state_dict[key], vocab_size, fill="mean")
            report.operations.append(f"{key}: base vocabulary {rows} → {vocab_size} rows, new rows = row mean")
    if delta is None:
        return report
    report.sources.append(source)

    lora_pairs = dict(delta.lora)
    mismatched: list[str] = []
    for key, tensor in delta.full.items():
        rows = tensor.shape[0]
        if rows > vocab_size:
            raise CheckpointError(f"{source}: {key} has {rows} rows, more than the model vocabulary {vocab_size}")
        width = config.text.hidden_size
        if tensor.dim() != 2 or tensor.shape[1] != width:
            mismatched.append(f"{key}: checkpoint {tuple(tensor.shape)}, expected (rows, {width})")
            continue
        if rows < vocab_size:
            tensor = pad_vocabulary_rows(tensor, vocab_size, fill="mean")
            report.operations.append(f"{key}: {source} has {rows} rows, padded to {vocab_size} with the row mean")
            if key == HEAD_KEY and key in lora_pairs:
                lora_a, lora_b = lora_pairs[key]
                lora_pairs[key] = (lora_a, pad_vocabulary_rows(lora_b, vocab_size, fill="zeros"))
                report.operations.append(f"{key}: lora_B padded to {vocab_size} rows with zeros")
        state_dict[key] = tensor
        report.operations.append(f"{key}: replaced by the {source} tensor")
    if mismatched:
        raise CheckpointKeyError(source, mismatched=mismatched)

    if lora_pairs:
        expected = expected_lora_targets(config.text.num_hidden_layers, lora)
        missing = [f"LoRA for {key}" for key in expected if key not in lora_pairs]
        unexpected = [f"LoRA for {key}" for key in lora_pairs if key not in expected]
        if missing or unexpected:
            raise CheckpointKeyError(source, missing=missing, unexpected=unexpected)
        for key, (lora_a, lora_b) in lora_pairs.items():
            if key not in state_dict:
                continue  # the base weight is missing: the conversion reports it by name
            weight = state_dict[key]
            if lora_a.shape != (lora.rank, weight.shape[1]) or lora_b.shape != (weight.shape[0], lora.rank):
                mismatched.append(
                    f"LoRA for {key}: A {tuple(lora_a.shape)}, B {tuple(lora_b.shape)}; expected A "
                    f"{(lora.rank, weight.shape[1])}, B {(weight.shape[0], lora.rank)} (rank {lora.rank})"
                )
                continue
            merged = weight.float() + lora.scaling * (lora_b.float() @ lora_a.float())
            state_dict[key] = merged.to(merged_dtype)
        if mismatched:
            raise CheckpointKeyError(source, mismatched=mismatched)
        report.operations.append(
            f"merged {len(lora_pairs)} LoRA pairs (rank {lora.rank}, scale alpha/r = {lora.scaling:g}) "
            "into the original-layout weights before the wqkv split"
        )
    return report


def _config_differences(actual: object, expected: object, prefix: str) -> list[str]:
    if dataclasses.is_dataclass(actual) and dataclasses.is_dataclass(expected):
        differences: list[str] = []
        for field in dataclasses.fields(actual):
            differences += _config_differences(
                getattr(actual, field.name), getattr(expected, field.name), f"{prefix}.{field.name}"
            )
        return differences
    return [] if actual == expected else [f"{prefix}: folder {actual!r}, LIRA config {expected!r}"]


def read_lira_internvl_folder(internvl_folder: str | Path, vl_config: LiraVisionLanguageConfig) -> InternVLCheckpoint:
    """Read an InternVL2 folder and check that its `config.json` agrees with `vl_config`, except for the
    vocabulary, which may be smaller (LIRA grows it by its six tokens).

    Raises:
        CheckpointError: naming every config field that differs.
    """
    checkpoint = read_internvl_folder(
        internvl_folder, chat_tokens=vl_config.chat_tokens, attn_implementation=vl_config.attn_implementation
    )
    folder_vocab = checkpoint.config.text.vocab_size
    if folder_vocab > vl_config.text.vocab_size:
        raise CheckpointError(
            f"{internvl_folder}: vocabulary {folder_vocab} is larger than the LIRA config's {vl_config.text.vocab_size}"
        )
    comparable = dataclasses.replace(
        checkpoint.config,
        text=dataclasses.replace(checkpoint.config.text, vocab_size=vl_config.text.vocab_size),
    )
    differences = _config_differences(comparable, vl_config, "vision_language")
    if differences:
        raise CheckpointError(
            f"{internvl_folder}/config.json does not match the LIRA config:\n  " + "\n  ".join(differences)
        )
    return checkpoint


def load_lira_vision_language(
    internvl_folder: str | Path,
    lira_pth: str | Path | None,
    config: LiraConfig,
    *,
    dtype: torch.dtype | str = torch.float32,
    device: torch.device | str = "cpu",
) -> tuple[LiraVisionLanguageModel, StateDict, ConversionReport]:
    """Build LIRA's vision-language half from the InternVL2 folder and a LIRA `.pth`.

    Args:
        internvl_folder: e.g. `pretrained/InternVL2-2B`; its `config.json` must agree with
            `config.vision_language` except for the vocabulary, which may be smaller (it is grown).
        lira_pth: e.g. `model_weight/LIRA-2B.pth`, or None for the InternVL2 weights with the grown
            vocabulary only.
        config: the LIRA config (`preset("lira-2b")`, ...); only its vision-language part and LoRA are read.

    Returns:
        The model (eval mode), the `projector.*` / `projector_text2vision.*` tensors of the `.pth` for the
        segmentation half (empty without a `.pth`), and the conversion report.
    """
    vl_config = config.vision_language
    checkpoint = read_lira_internvl_folder(internvl_folder, vl_config)
    delta = read_lira_pth(lira_pth) if lira_pth is not None else None
    resolved = resolve_dtype(dtype)
    files = ", ".join(str(path) for path in checkpoint.files)
    delta_report = apply_lira_delta(
        checkpoint.state_dict, delta, config=vl_config, lora=config.lora, merged_dtype=resolved
    )
    converted, report = convert_internvl_state_dict(checkpoint.state_dict, vl_config, source=files)
    report.merge(delta_report)
    model = build_vision_language(vl_config, converted, dtype=resolved, device=device, source=files)
    report.operations.append(f"loaded as {resolved} on {device}")
    passthrough = delta.passthrough if delta is not None else {}
    report.passed_through.extend(passthrough)
    return model, passthrough, report
