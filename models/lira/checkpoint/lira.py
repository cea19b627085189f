"""The whole LIRA model from files: the official weight files, our own saved format, and seeded random weights.

Official files → `LiraModel` keys (`load_lira`):

- `vision_model.*`, `mlp1.*`, `language_model.*`: the InternVL2 folder, through the `checkpoint.internvl` rename
  tables (InternLM2's `wqkv` split per KV group).
- `language_model.model.embed_tokens.weight`, `language_model.lm_head.weight`: the LIRA `.pth`
  (`llm.base_model.model.*`, or `llm.*` in stage-1 files), replacing the folder's (`checkpoint.lira_pth`).
- LoRA `*.lora_A/B.default.weight` of the `.pth`: merged into the weights, or held by attached adapters
  (`LORA_KEY_TABLE`).
- `projector.*`, `projector_text2vision.*`: the LIRA `.pth`, same keys.
- `visual_encoder.*`: the `state_dict` of `omg_seg_convl.pth`, prefixed (`checkpoint.omg_seg`).
- `visual_encoder.panoptic_head.cls_embed` (buffer): the class-embedding file.

`lira_pth_state_dict` is the inverse for the parts training changes: it writes our LoRA adapters, embeddings, head
and projectors in the official `.pth` layout (`LIRA.state_dict()`), so a model trained here can be used by the
original code, and official → model → official is lossless.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from models.lira.checkpoint.common import (
    CheckpointError,
    CheckpointKeyError,
    StateDict,
    check_state_dict,
    empty_weights,
    load_checkpoint_folder,
    resolve_dtype,
    save_state_dict,
)
from models.lira.checkpoint.internvl import convert_internvl_state_dict
from models.lira.checkpoint.lira_pth import (
    EMBEDDINGS_KEY,
    HEAD_KEY,
    apply_lira_delta,
    expected_lora_targets,
    pad_vocabulary_rows,
    read_lira_internvl_folder,
    read_lira_pth,
)
from models.lira.checkpoint.omg_seg import (
    convert_omg_seg_state_dict,
    read_class_embeddings,
    read_omg_seg_state_dict,
)
from models.lira.config import LiraConfig, preset
from models.lira.model import LiraModel
from models.lira.segmentation import OmgSegEncoder

CLASS_EMBEDDINGS_KEY = "visual_encoder.panoptic_head.cls_embed"
"""Key of the (non-persistent) class-embedding buffer in our saved format."""
SAVED_FORMAT = "attreval-lira"
SAVED_FORMAT_VERSION = 1

_PEFT = "llm.base_model.model."
LORA_KEY_TABLE: tuple[tuple[str, str], ...] = (
    ("self_attn.wqkv", "attention.wqkv"),
    ("self_attn.o_proj", "attention.wo"),
    ("mlp.gate_proj", "feed_forward.w1"),
    ("mlp.up_proj", "feed_forward.w3"),
    ("mlp.down_proj", "feed_forward.w2"),
)
"""Module of a decoder layer in `LiraModel.language_model` (LoRA attached) → InternLM2 module of the `.pth`."""

_MODEL_LAYER = re.compile(r"language_model\.model\.layers\.(\d+)\.(.+)")
_ORIGINAL_LAYER = re.compile(r"language_model\.model\.layers\.(\d+)\.(.+)\.weight")


@dataclasses.dataclass
class LiraLoadReport:
    """Where every tensor of a loaded model came from.

    Attributes:
        sources: model key → the file it was read from (each key exactly once).
        fresh: model keys initialised here instead (allowed missing parts, new LoRA adapters).
        ignored: file keys that are deliberately not used (OMG-Seg's unused heads).
        operations: splits, merges, vocabulary padding, dtype and device.
    """

    sources: dict[str, str] = dataclasses.field(default_factory=dict)
    fresh: list[str] = dataclasses.field(default_factory=list)
    ignored: list[str] = dataclasses.field(default_factory=list)
    operations: list[str] = dataclasses.field(default_factory=list)

    def assign(self, keys: Sequence[str], source: str) -> None:
        twice = [key for key in keys if key in self.sources]
        if twice:
            raise CheckpointError(f"{source}: {len(twice)} tensors already come from another file: {twice}")
        self.sources.update(dict.fromkeys(keys, source))

    def summary(self) -> str:
        per_file: dict[str, int] = {}
        for source in self.sources.values():
            per_file[source] = per_file.get(source, 0) + 1
        lines = [f"{count} tensors from {source}" for source, count in per_file.items()]
        lines += [f"{len(self.fresh)} tensors initialised here", f"{len(self.ignored)} file tensors unused"]
        lines += [f"- {operation}" for operation in self.operations]
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Building and random weights
# ---------------------------------------------------------------------------


def build_empty_lira(config: LiraConfig, dtype: torch.dtype | str, device: torch.device | str) -> LiraModel:
    """`LiraModel(config)` with uninitialised weights in `dtype` on `device`; OMG-Seg in float32 (as the
    original keeps it, lira-model.md §2.3 and `OmgSegEncoder`)."""
    with empty_weights(resolve_dtype(dtype), device):
        model = LiraModel(config)
    model.visual_encoder.float()
    return model


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, nn.LayerNorm | nn.GroupNorm) or type(module).__name__.endswith("RMSNorm")


@torch.no_grad()
def initialise_random(model: LiraModel, seed: int) -> None:
    """Seeded random weights in place (no copy of the model is made): norm weights U(0.5, 1.5) and biases
    N(0, 0.1²); other tensors of ≥ 2 dims N(0, 1/fan_in), other vectors N(0, 0.1²); unit-norm random class
    embeddings. The same seed, config, dtype and device give the same weights."""
    generators: dict[torch.device, torch.Generator] = {}

    def generator(device: torch.device) -> torch.Generator:
        if device not in generators:
            generators[device] = torch.Generator(device=device).manual_seed(seed)
        return generators[device]

    for module in model.modules():
        norm = _is_norm(module)
        for name, parameter in module.named_parameters(recurse=False):
            g = generator(parameter.device)
            if norm and name == "weight":
                parameter.uniform_(0.5, 1.5, generator=g)
            elif parameter.dim() >= 2:
                fan_in = parameter[0].numel()
                parameter.normal_(0.0, fan_in**-0.5, generator=g)
            else:
                parameter.normal_(0.0, 0.1, generator=g)
    omg = model.config.omg_seg
    head = model.visual_encoder.panoptic_head
    shape = (omg.num_classes, omg.class_embed_prototypes, omg.class_embed_dim)
    classes = torch.randn(shape, generator=generator(head.cls_embed.device), device=head.cls_embed.device)
    head.set_class_embeddings(classes / classes.norm(dim=-1, keepdim=True))


def build_random_lira(
    config: LiraConfig, seed: int, *, dtype: torch.dtype | str = torch.float32, device: torch.device | str = "cpu"
) -> LiraModel:
    """A `LiraModel` with seeded random weights (`initialise_random`), in eval mode."""
    model = build_empty_lira(config, dtype, device)
    initialise_random(model, seed)
    return model.eval()


def build_lira_tiny(seed: int = 0) -> LiraModel:
    """The `lira-tiny` preset with seeded random float32 weights on CPU, deterministic across runs."""
    return build_random_lira(preset("lira-tiny"), seed)


def _initialise_fresh(model: LiraModel, keys: Sequence[str]) -> None:
    """Default initialisation of the modules that own `keys` (all of whose tensors must be in `keys`).

    PyTorch's own `reset_parameters`, then Xavier-uniform for every ≥ 2-dim tensor of the SEFE cross-attention
    (`CrossAttentionLayer_Pre._reset_parameters`). Uses the global RNG: seed it for reproducible weights.
    """
    wanted = set(keys)
    owners: dict[str, nn.Module] = {}
    for key in keys:
        owner_name = key.rpartition(".")[0]
        owners[owner_name] = model.get_submodule(owner_name)
    for owner_name, owner in owners.items():
        own = {f"{owner_name}.{name}" for name, _ in owner.named_parameters(recurse=False)}
        if not own <= wanted:
            raise CheckpointError(f"cannot initialise {owner_name} partly: {sorted(own - wanted)} come from the files")
        reset = getattr(owner, "reset_parameters", None) or getattr(owner, "_reset_parameters", None)
        if reset is None:
            raise CheckpointError(f"{owner_name} ({type(owner).__name__}) has no default initialisation")
        reset()
    cross = "projector.model.cross_beforellm."
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in wanted and name.startswith(cross) and parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)


def _copy_into(model: LiraModel, tensors: StateDict) -> None:
    targets = model.state_dict(keep_vars=True)
    with torch.no_grad():
        for key in list(tensors):
            targets[key].copy_(tensors.pop(key))


# ---------------------------------------------------------------------------
# Official files
# ---------------------------------------------------------------------------


def _lora_module_key(original_key: str) -> str:
    """`language_model.model.layers.3.attention.wqkv.weight` → `language_model.model.layers.3.self_attn.wqkv`;
    `language_model.output.weight` → `language_model.lm_head`."""
    if original_key == HEAD_KEY:
        return "language_model.lm_head"
    match = _ORIGINAL_LAYER.fullmatch(original_key)
    ours = {original: model for model, original in LORA_KEY_TABLE}
    if match is None or match.group(2) not in ours:
        raise CheckpointError(f"no LoRA module for {original_key!r}")
    return f"language_model.model.layers.{match.group(1)}.{ours[match.group(2)]}"


def _lora_state_dict(lora_pairs: dict[str, tuple[Tensor, Tensor]], vocab_size: int) -> tuple[StateDict, bool]:
    """The peft adapter tensors holding a file's LoRA pairs; the head's `lora_B` is padded with zero rows to
    `vocab_size` (returned True when it was)."""
    tensors: StateDict = {}
    padded = False
    for original_key, (lora_a, lora_b) in lora_pairs.items():
        module_key = _lora_module_key(original_key)
        if original_key == HEAD_KEY and lora_b.shape[0] < vocab_size:
            lora_b = pad_vocabulary_rows(lora_b, vocab_size, fill="zeros")
            padded = True
        tensors[f"{module_key}.lora_A.default.weight"] = lora_a
        tensors[f"{module_key}.lora_B.default.weight"] = lora_b
    return tensors, padded


def _attach_file_lora(
    model: LiraModel,
    lora_pairs: dict[str, tuple[Tensor, Tensor]],
    source: str,
    report: LiraLoadReport,
) -> None:
    """Attach fresh adapters, then fill them from the file's pairs (all or none of the targets)."""
    config = model.config
    model.attach_lora()
    state = model.state_dict(keep_vars=True)
    lora_keys = [key for key in state if ".lora_" in key]
    if not lora_pairs:
        report.fresh.extend(lora_keys)
        report.operations.append("attached new LoRA adapters (peft initialisation: A Kaiming-uniform, B zeros)")
        return
    expected = expected_lora_targets(config.vision_language.text.num_hidden_layers, config.lora)
    missing = [f"LoRA for {key}" for key in expected if key not in lora_pairs]
    unexpected = [f"LoRA for {key}" for key in lora_pairs if key not in expected]
    if missing or unexpected:
        raise CheckpointKeyError(source, missing=missing, unexpected=unexpected)
    vocab_size = config.vision_language.text.vocab_size
    tensors, padded = _lora_state_dict(lora_pairs, vocab_size)
    if padded:
        report.operations.append(f"{HEAD_KEY}: lora_B padded to {vocab_size} rows with zeros")
    check_state_dict({key: state[key].shape for key in lora_keys}, tensors, f"{source} (LoRA)")
    report.assign(list(tensors), source)
    _copy_into(model, tensors)
    report.operations.append(
        f"attached {len(lora_pairs)} LoRA pairs from {source} (rank {config.lora.rank}); wqkv adapters act on "
        "the packed InternLM2 wqkv (LiraPackedQkvAttention)"
    )


def load_lira(
    config: LiraConfig,
    internvl_folder: str | Path,
    omg_seg_weights: str | Path,
    class_embeddings: str | Path,
    lira_pth: str | Path | None,
    *,
    dtype: torch.dtype | str = torch.float32,
    device: torch.device | str = "cpu",
    lora: Literal["merge", "attach"] = "merge",
    allow_fresh: Sequence[str] = (),
) -> tuple[LiraModel, LiraLoadReport]:
    """Build LIRA from the official files (lira-model.md §11).

    Args:
        config: `preset("lira-2b")`, ... (its `stage` decides the projector layout).
        internvl_folder: the InternVL2 folder (single or sharded safetensors, or `.bin`).
        omg_seg_weights: `omg_seg_convl.pth` (`{"state_dict": ...}`), or a flat `.pth` / `.safetensors`.
        class_embeddings: `convnext_large_d_320_CocoPanopticOVDataset.pth`.
        lira_pth: `LIRA-2B.pth` / `LIRA-8B.pth` (or a stage-1 `lira_*_pre.pth`); None for none.
        dtype: float32 / bfloat16 / float16 for everything except OMG-Seg, which stays float32.
        lora: `merge` the `.pth` LoRA into the weights (inference), or `attach` peft adapters holding it
            (training; new adapters when the file has none). `attach` is the inverse of `lira_pth_state_dict`.
        allow_fresh: model-key prefixes that may be absent from the files and are then initialised here (PyTorch
            defaults; seed the global RNG). E.g. `("projector.", "projector_text2vision.")` to start stage 1, or
            `("projector.model.cross_beforellm.",)` to start stage 2 from a stage-1 file. Anything else missing,
            and anything unexpected, fails.

    Raises:
        CheckpointKeyError: naming every missing, unexpected or mis-shaped key.
    """
    if lora not in ("merge", "attach"):
        raise ValueError(f"load_lira: lora must be 'merge' or 'attach', got {lora!r}")
    resolved = resolve_dtype(dtype)
    vl_config = config.vision_language
    report = LiraLoadReport()

    checkpoint = read_lira_internvl_folder(internvl_folder, vl_config)
    folder = ", ".join(str(path) for path in checkpoint.files)
    delta = read_lira_pth(lira_pth) if lira_pth is not None else None
    file_lora: dict[str, tuple[Tensor, Tensor]] = {}
    if delta is not None and lora == "attach":
        file_lora, delta = delta.lora, dataclasses.replace(delta, lora={})
    delta_report = apply_lira_delta(
        checkpoint.state_dict, delta, config=vl_config, lora=config.lora, merged_dtype=resolved
    )
    converted, vl_report = convert_internvl_state_dict(checkpoint.state_dict, vl_config, source=folder)
    report.operations += delta_report.operations + vl_report.operations
    replaced = {
        "language_model.model.embed_tokens.weight": "language_model.model.tok_embeddings.weight",
        "language_model.lm_head.weight": HEAD_KEY,
    }
    from_delta = {key for key, original in replaced.items() if delta is not None and original in delta.full}
    report.assign([key for key in converted if key not in from_delta], folder)
    if delta is not None:
        report.assign(sorted(from_delta), delta.source)

    omg_source = str(omg_seg_weights)
    with torch.device("meta"):
        omg_shapes = {key: value.shape for key, value in OmgSegEncoder(config.omg_seg).state_dict().items()}
    omg_state, ignored = convert_omg_seg_state_dict(
        read_omg_seg_state_dict(omg_seg_weights), omg_shapes, source=omg_source
    )
    report.ignored.extend(f"{omg_source}: {key}" for key in ignored)
    omg_state = {f"visual_encoder.{key}": value for key, value in omg_state.items()}
    report.assign(list(omg_state), omg_source)

    projectors = dict(delta.passthrough) if delta is not None else {}
    if projectors:
        report.assign(list(projectors), delta.source)  # type: ignore[union-attr]

    tensors: StateDict = {**converted, **omg_state, **projectors}
    model = build_empty_lira(config, resolved, device)
    expected = {key: value.shape for key, value in model.state_dict().items()}
    fresh = [key for key in expected if key not in tensors and key.startswith(tuple(allow_fresh))]
    check_state_dict(
        {key: shape for key, shape in expected.items() if key not in fresh},
        tensors,
        " + ".join(filter(None, [folder, omg_source, delta.source if delta else None])),
    )
    _copy_into(model, tensors)
    if fresh:
        _initialise_fresh(model, fresh)
        report.fresh.extend(fresh)
        report.operations.append(f"initialised {len(fresh)} tensors absent from the files: {fresh}")
    model.visual_encoder.panoptic_head.set_class_embeddings(read_class_embeddings(class_embeddings))
    report.assign([CLASS_EMBEDDINGS_KEY], str(class_embeddings))

    if lora == "attach":
        _attach_file_lora(model, file_lora, delta.source if delta else "", report)
    report.operations.append(f"loaded as {resolved} (OMG-Seg float32) on {device}")
    return model.eval(), report


def apply_lira_pth(model: LiraModel, path: str | Path, *, merge: bool = False) -> list[str]:
    """Load a LIRA `.pth` (embeddings, head, projectors, LoRA) into an already built model, e.g. one with seeded
    random base weights; returns the model keys set.

    The SEFE cross-attention may be absent (stage-1 files keep the model's). LoRA pairs fill the model's adapters,
    which are attached first if needed; with `merge` they are then folded into the weights (`LiraModel.merge_lora`),
    as for inference.

    Raises:
        CheckpointKeyError: keys that do not fit the model.
    """
    delta = read_lira_pth(path)
    if delta.lora and not model.lora_attached:
        model.attach_lora()
    head = "language_model.lm_head.base_layer.weight" if model.lora_attached else "language_model.lm_head.weight"
    names = {EMBEDDINGS_KEY: "language_model.model.embed_tokens.weight", HEAD_KEY: head}
    vocab = model.config.vision_language.text.vocab_size
    tensors = {names[key]: value for key, value in delta.full.items()}
    for key, value in list(tensors.items()):
        if value.shape[0] < vocab:
            tensors[key] = pad_vocabulary_rows(value, vocab, fill="mean")
    tensors.update(delta.passthrough)
    tensors.update(_lora_state_dict(delta.lora, vocab)[0])
    state = model.state_dict(keep_vars=True)
    unexpected = [key for key in tensors if key not in state]
    mismatched = [key for key in tensors if key in state and tensors[key].shape != state[key].shape]
    if unexpected or mismatched:
        raise CheckpointKeyError(str(path), unexpected=unexpected, mismatched=mismatched)
    with torch.no_grad():
        for key, value in tensors.items():
            state[key].copy_(value)
    if merge and model.lora_attached:
        model.merge_lora()
    return sorted(tensors)


def lira_pth_state_dict(model: LiraModel) -> StateDict:
    """The official LIRA `.pth` contents for `model` (`LIRA.state_dict()`, lira-model.md §11.2).

    With LoRA attached (stage 2): `llm.base_model.model.model.tok_embeddings.weight`,
    `llm.base_model.model.output.base_layer.weight`, every `….lora_A/B.default.weight` of `wqkv`, `wo`, `w1`,
    `w2`, `w3` and `output`, and `projector.*`, `projector_text2vision.*`. Without LoRA (stage 1):
    `llm.model.tok_embeddings.weight`, `llm.output.weight` and the projectors. Tensors are the model's own
    (detached, not copied; in the model's dtypes).

    Raises:
        ValueError: a fine-tune-stage model without LoRA adapters (a merged model cannot be written back as a
            delta).
    """
    state = model.state_dict()
    out: StateDict = {}
    if model.lora_attached:
        out[_PEFT + "model.tok_embeddings.weight"] = state["language_model.model.embed_tokens.weight"]
        out[_PEFT + "output.base_layer.weight"] = state["language_model.lm_head.base_layer.weight"]
        to_original = dict(LORA_KEY_TABLE)
        for key, value in state.items():
            if ".lora_" not in key:
                continue
            module, _, suffix = key.partition(".lora_")
            if module == "language_model.lm_head":
                out[f"{_PEFT}output.lora_{suffix}"] = value
                continue
            match = _MODEL_LAYER.fullmatch(module)
            if match is None or match.group(2) not in to_original:
                raise ValueError(f"lira_pth_state_dict: LoRA on {module} has no InternLM2 counterpart")
            layer, name = match.group(1), to_original[match.group(2)]
            out[f"{_PEFT}model.layers.{layer}.{name}.lora_{suffix}"] = value
    elif model.config.stage == "pretrain":
        out["llm.model.tok_embeddings.weight"] = state["language_model.model.embed_tokens.weight"]
        out["llm.output.weight"] = state["language_model.lm_head.weight"]
    else:
        raise ValueError(
            "lira_pth_state_dict: a fine-tune model needs its LoRA adapters attached (LiraModel.attach_lora / "
            "load_lira(lora='attach')); merged weights cannot be written as a LIRA delta"
        )
    for key, value in state.items():
        if key.startswith(("projector.", "projector_text2vision.")):
            out[key] = value
    return {key: value.detach() for key, value in out.items()}


def save_lira_pth(model: LiraModel, path: str | Path) -> None:
    """Write `lira_pth_state_dict(model)` with `torch.save` (CPU tensors), readable by the original code."""
    torch.save({key: value.cpu() for key, value in lira_pth_state_dict(model).items()}, Path(path))


# ---------------------------------------------------------------------------
# Our own saved format
# ---------------------------------------------------------------------------


def save_lira(model: LiraModel, folder: str | Path, *, max_shard_bytes: int | None = None) -> list[Path]:
    """Save the whole model: `config.json` plus `model.safetensors` (or shards with an index).

    Every tensor is saved in its own dtype, including the non-persistent class-embedding buffer
    (`CLASS_EMBEDDINGS_KEY`); `load_saved_lira` restores it bit for bit. A model with LoRA attached is saved
    unmerged and reloaded with the adapters attached.

    Returns:
        The files written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    description = {
        "format": SAVED_FORMAT,
        "format_version": SAVED_FORMAT_VERSION,
        "lora_attached": model.lora_attached,
        "config": model.config.to_dict(),
    }
    config_path = folder / "config.json"
    config_path.write_text(json.dumps(description, indent=2) + "\n")
    tensors = dict(model.state_dict())
    tensors[CLASS_EMBEDDINGS_KEY] = model.visual_encoder.panoptic_head.cls_embed
    if max_shard_bytes is None:
        save_state_dict(tensors, folder / "model.safetensors")
        return [config_path, folder / "model.safetensors"]
    shards: list[list[str]] = [[]]
    size = 0
    for key, value in tensors.items():
        nbytes = value.numel() * value.element_size()
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(key)
        size += nbytes
    weight_map: dict[str, str] = {}
    written = [config_path]
    for index, keys in enumerate(shards, start=1):
        name = f"model-{index:05d}-of-{len(shards):05d}.safetensors"
        save_state_dict({key: tensors[key] for key in keys}, folder / name)
        weight_map.update(dict.fromkeys(keys, name))
        written.append(folder / name)
    index_path = folder / "model.safetensors.index.json"
    index_path.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2) + "\n")
    return [*written, index_path]


def load_saved_lira(
    folder: str | Path, *, dtype: torch.dtype | str | None = None, device: torch.device | str = "cpu"
) -> tuple[LiraModel, LiraLoadReport]:
    """Load a folder written by `save_lira`.

    Args:
        dtype: None keeps the saved dtypes (bit-exact round trip); otherwise everything but OMG-Seg is cast.

    Raises:
        CheckpointError: not a saved LIRA folder. CheckpointKeyError: keys that differ from the model's.
    """
    folder = Path(folder)
    config_path = folder / "config.json"
    try:
        description = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{config_path}: cannot be read ({error})") from error
    if description.get("format") != SAVED_FORMAT or description.get("format_version") != SAVED_FORMAT_VERSION:
        raise CheckpointError(
            f"{config_path}: not an {SAVED_FORMAT} v{SAVED_FORMAT_VERSION} folder (format "
            f"{description.get('format')!r}, version {description.get('format_version')!r}); official files "
            "load with load_lira"
        )
    config = LiraConfig.from_dict(description["config"])
    tensors, files = load_checkpoint_folder(folder)
    source = ", ".join(str(path) for path in files)
    embeddings_key = "language_model.model.embed_tokens.weight"
    if embeddings_key not in tensors:
        raise CheckpointKeyError(source, missing=[embeddings_key])
    resolved = resolve_dtype(dtype) if dtype is not None else tensors[embeddings_key].dtype
    model = build_empty_lira(config, resolved, device)
    if description.get("lora_attached"):
        model.attach_lora()
    class_embeddings = tensors.pop(CLASS_EMBEDDINGS_KEY, None)
    expected = {key: value.shape for key, value in model.state_dict().items()}
    expected[CLASS_EMBEDDINGS_KEY] = model.visual_encoder.panoptic_head.cls_embed.shape
    if class_embeddings is not None:
        tensors[CLASS_EMBEDDINGS_KEY] = class_embeddings
    check_state_dict(expected, tensors, source)
    report = LiraLoadReport()
    report.assign(list(tensors), source)
    with torch.no_grad():
        model.visual_encoder.panoptic_head.cls_embed.copy_(tensors.pop(CLASS_EMBEDDINGS_KEY))
    _copy_into(model, tensors)
    report.operations.append(f"loaded as {resolved} (OMG-Seg float32) on {device}")
    return model.eval(), report


__all__ = [
    "CLASS_EMBEDDINGS_KEY",
    "LORA_KEY_TABLE",
    "LiraLoadReport",
    "apply_lira_pth",
    "build_empty_lira",
    "build_lira_tiny",
    "build_random_lira",
    "initialise_random",
    "lira_pth_state_dict",
    "load_lira",
    "load_saved_lira",
    "save_lira",
    "save_lira_pth",
]
