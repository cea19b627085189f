"""Shared checkpoint machinery: reading weight files, rename rules, strict loading, and the conversion report.

Every reader returns a flat `{key: tensor}` dict. Every loader checks the converted keys against the
module's own state dict and raises `CheckpointKeyError` naming every missing, unexpected or mis-shaped
key; nothing is loaded with `strict=False`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.initialization import no_init_weights

StateDict = dict[str, torch.Tensor]

_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
_TORCH_SUFFIXES = (".pth", ".pt", ".bin")


class CheckpointError(ValueError):
    """A weight file or folder cannot be read or does not fit the model."""


class CheckpointKeyError(CheckpointError):
    """Keys of a checkpoint do not match the model; the message lists every offending key."""

    def __init__(
        self,
        source: str,
        *,
        missing: list[str] | None = None,
        unexpected: list[str] | None = None,
        mismatched: list[str] | None = None,
    ) -> None:
        self.source = source
        self.missing = sorted(missing or [])
        self.unexpected = sorted(unexpected or [])
        self.mismatched = sorted(mismatched or [])
        lines = [f"{source}: checkpoint does not match the model"]
        for title, keys in (
            ("missing keys", self.missing),
            ("unexpected keys", self.unexpected),
            ("shape mismatches", self.mismatched),
        ):
            if keys:
                lines.append(f"  {len(keys)} {title}:")
                lines.extend(f"    {key}" for key in keys)
        super().__init__("\n".join(lines))


def resolve_dtype(dtype: torch.dtype | str) -> torch.dtype:
    """`torch.float32`/`bfloat16`/`float16`, or one of the names fp32, bf16, fp16 (and float32, ...)."""
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"unsupported dtype {dtype}; use float32, bfloat16 or float16")
        return dtype
    try:
        return _DTYPES[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; expected one of {sorted(_DTYPES)}") from None


# ---------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------


def _as_state_dict(obj: object, path: Path) -> StateDict:
    """Unwrap `{'state_dict': ...}` / `{'module': ...}` (xtuner `guess_load_checkpoint`) and check types."""
    if isinstance(obj, Mapping):
        for wrapper in ("state_dict", "module"):
            if wrapper in obj and isinstance(obj[wrapper], Mapping):
                obj = obj[wrapper]
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    not_tensors = sorted(str(key) for key, value in obj.items() if not isinstance(value, torch.Tensor))
    if not_tensors:
        raise CheckpointError(f"{path}: entries that are not tensors: {not_tensors}")
    return dict(obj)


def load_tensor_file(path: str | Path) -> StateDict:
    """Read one weight file to CPU: `.safetensors`, or `.pth`/`.pt`/`.bin` via `torch.load(weights_only=True)`
    (wrappers `{'state_dict': ...}` and `{'module': ...}` are unwrapped).

    Raises:
        CheckpointError: unknown suffix, unreadable file, or contents that are not a flat dict of tensors.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path}: is a directory; DeepSpeed checkpoint folders must first be converted to one .pth "
            "(echo840/LIRA omg_llava/tools/convert_deepspeed2pth.py)"
        )
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        return load_file(str(path), device="cpu")
    if path.suffix in _TORCH_SUFFIXES:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for bad or unsafe files
            raise CheckpointError(f"{path}: cannot be read with torch.load(weights_only=True): {error}") from error
        return _as_state_dict(obj, path)
    raise CheckpointError(f"{path}: unknown weight file type {path.suffix!r} (.safetensors, .pth, .pt, .bin)")


def _read_index(index_path: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CheckpointError(f"{index_path}: not a shard index with a 'weight_map' ({error})") from error
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index_path}: 'weight_map' must be a non-empty object")
    return weight_map


def _load_sharded(index_path: Path) -> tuple[StateDict, list[Path]]:
    weight_map = _read_index(index_path)
    state_dict: StateDict = {}
    shards = sorted({index_path.parent / name for name in weight_map.values()})
    for shard in shards:
        tensors = load_tensor_file(shard)
        listed = {key for key, name in weight_map.items() if index_path.parent / name == shard}
        if set(tensors) != listed:
            raise CheckpointKeyError(
                f"{shard} (listed in {index_path.name})",
                missing=sorted(listed - set(tensors)),
                unexpected=sorted(set(tensors) - listed),
            )
        state_dict.update(tensors)
    return state_dict, shards


def load_checkpoint_folder(folder: str | Path) -> tuple[StateDict, list[Path]]:
    """Read a transformers-style weight folder: `model.safetensors`, `model.safetensors.index.json` with
    shards, `pytorch_model.bin`, or `pytorch_model.bin.index.json` with shards (first found, in that order).

    Returns:
        The flat state dict and the files read.

    Raises:
        CheckpointError: no weight file, or a shard whose keys differ from its index entries.
    """
    folder = Path(folder)
    candidates = (
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    )
    for name in candidates:
        path = folder / name
        if path.is_file():
            if name.endswith(".index.json"):
                return _load_sharded(path)
            return load_tensor_file(path), [path]
    raise CheckpointError(f"{folder}: no weight file found; expected one of {list(candidates)}")


def read_safetensors_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata stored in a `.safetensors` header."""
    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


def save_state_dict(
    state_dict: Mapping[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Write tensors to `.safetensors` (contiguous CPU copies; dtypes kept)."""
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state_dict.items()}
    save_file(tensors, str(path), metadata=metadata)


# ---------------------------------------------------------------------------
# Rename rules
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RenameRule:
    """One source-key pattern (matched in full) and the target key(s) it becomes.

    `targets` are `re` replacement templates (`\\1` = first group). A rule with several targets splits
    a fused tensor; `split` names the operation the converter applies.
    """

    pattern: re.Pattern[str]
    targets: tuple[str, ...]
    split: str | None = None

    def apply(self, key: str) -> tuple[str, ...] | None:
        match = self.pattern.fullmatch(key)
        if match is None:
            return None
        return tuple(match.expand(target) for target in self.targets)


def rule(pattern: str, *targets: str, split: str | None = None) -> RenameRule:
    """A `RenameRule`; `pattern` is a regex matched against the whole key (escape the dots)."""
    if not targets:
        raise ValueError(f"rule {pattern!r} has no target")
    if len(targets) > 1 and split is None:
        raise ValueError(f"rule {pattern!r} has several targets but no split")
    return RenameRule(re.compile(pattern), tuple(targets), split)


def match_rule(key: str, rules: tuple[RenameRule, ...]) -> tuple[RenameRule, tuple[str, ...]] | None:
    """The single rule matching `key` and its target keys, or None; two matching rules are a table bug."""
    found = [(candidate, targets) for candidate in rules if (targets := candidate.apply(key)) is not None]
    if len(found) > 1:
        raise RuntimeError(f"rename table bug: {key!r} matches {[r.pattern.pattern for r, _ in found]}")
    return found[0] if found else None


# ---------------------------------------------------------------------------
# Reports and strict loading
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class ConversionReport:
    """What a conversion did: inputs, key mapping, fused-tensor splits and other operations."""

    sources: list[str] = dataclasses.field(default_factory=list)
    renamed: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    """Source key → target key(s)."""
    operations: list[str] = dataclasses.field(default_factory=list)
    """Human-readable notes: splits, LoRA merges, vocabulary padding, dtype casts."""
    passed_through: list[str] = dataclasses.field(default_factory=list)
    """Source keys handed on unchanged to another part of the model."""

    def merge(self, other: ConversionReport) -> None:
        self.sources.extend(other.sources)
        self.renamed.update(other.renamed)
        self.operations.extend(other.operations)
        self.passed_through.extend(other.passed_through)

    def summary(self) -> str:
        targets = sum(len(keys) for keys in self.renamed.values())
        lines = [
            f"sources: {', '.join(self.sources) or '-'}",
            f"{len(self.renamed)} source tensors → {targets} model tensors",
            f"{len(self.passed_through)} tensors passed through unchanged",
        ]
        lines.extend(f"- {operation}" for operation in self.operations)
        return "\n".join(lines)


def check_state_dict(expected: Mapping[str, torch.Size], state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise `CheckpointKeyError` unless `state_dict` has exactly the `expected` keys and shapes."""
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    mismatched = [
        f"{key}: checkpoint {tuple(state_dict[key].shape)}, model {tuple(shape)}"
        for key, shape in expected.items()
        if key in state_dict and tuple(state_dict[key].shape) != tuple(shape)
    ]
    if missing or unexpected or mismatched:
        raise CheckpointKeyError(source, missing=missing, unexpected=unexpected, mismatched=mismatched)


def load_into(module: nn.Module, state_dict: StateDict, source: str) -> None:
    """Copy `state_dict` into `module` after checking its keys and shapes exactly (values cast to the
    module's dtypes). Entries are removed from `state_dict` as they are copied, to free memory early.
    """
    targets = module.state_dict(keep_vars=True)
    check_state_dict({key: value.shape for key, value in targets.items()}, state_dict, source)
    with torch.no_grad():
        for key, target in targets.items():
            target.copy_(state_dict.pop(key))


@contextlib.contextmanager
def empty_weights(dtype: torch.dtype, device: torch.device | str) -> Iterator[None]:
    """Build modules directly in `dtype` on `device` without random initialisation (weights are loaded next).

    Parameters are created in `dtype` through the default dtype; buffers that transformers computes
    explicitly in float32 (the rotary `inv_freq`) stay float32, as with `from_pretrained`.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), no_init_weights():
            yield
    finally:
        torch.set_default_dtype(previous)
