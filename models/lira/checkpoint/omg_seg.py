"""Load OMG-Seg's weights (`omg_seg_convl.pth`) and class embeddings into `OmgSegEncoder`.

`OmgSegEncoder` uses the original module names, so checkpoint keys map to themselves; the only
table is the list of keys the original carries but never uses on LIRA's path. Every other key
must match a model tensor of the same shape, and every model tensor must be filled, or loading
fails with a `CheckpointKeyError` that names each offending key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from models.lira.checkpoint.common import CheckpointKeyError
from models.lira.segmentation import OmgSegEncoder

OMG_SEG_IGNORED_KEYS: tuple[tuple[str, str], ...] = (
    (
        r"^backbone\.head\.0\.norm\.(weight|bias)$",
        "CLIP trunk head norm; only open-vocabulary re-scoring uses it",
    ),
    (r"^backbone\.head\.1\.mlp\.fc[12]\.(weight|bias)$", "CLIP projection head; same"),
    (r"^panoptic_head\.mask_tokens\.weight$", "box/point prompt queries, unused by LIRA"),
    (r"^panoptic_head\.pb_embedding\.weight$", "box/point prompt queries, unused by LIRA"),
    (r"^panoptic_head\.pos_linear\.(weight|bias)$", "box/point prompt queries, unused by LIRA"),
)
"""(anchored pattern, reason) for checkpoint keys the original model holds but LIRA never runs."""

_IGNORED = tuple(re.compile(pattern) for pattern, _ in OMG_SEG_IGNORED_KEYS)


@dataclass(frozen=True)
class OmgSegLoadReport:
    """What `load_omg_seg` did.

    Attributes:
        weights: the weight file read.
        class_embeddings: the class-embedding file read.
        loaded: model keys filled from the file.
        ignored: file keys skipped on purpose (`OMG_SEG_IGNORED_KEYS`).
    """

    weights: str
    class_embeddings: str
    loaded: tuple[str, ...]
    ignored: tuple[str, ...]


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises UnpicklingError or RuntimeError depending on the cause
        raise ValueError(
            f"{path}: cannot be read with torch.load(weights_only=True): {error}. Only tensors and plain "
            "containers are accepted; re-save the file's state_dict (or convert it to safetensors)."
        ) from error


def read_omg_seg_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Read OMG-Seg weights: `.pth` as `{"state_dict": {...}}` (the official layout) or a flat
    `{key: tensor}`, or a `.safetensors` file.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the content is not a mapping of names to tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"OMG-Seg weights not found: {path}")
    if path.suffix == ".safetensors":
        return dict(load_file(path))
    content = _torch_load(path)
    if isinstance(content, Mapping) and "state_dict" in content:
        content = content["state_dict"]
    if not isinstance(content, Mapping):
        raise ValueError(f"{path}: expected a state_dict mapping, got {type(content).__name__}")
    bad = [str(k) for k, v in content.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{path}: entries that are not tensors with string keys: {', '.join(bad[:20])}")
    return dict(content)


def read_class_embeddings(path: str | Path) -> Tensor:
    """Read the open-vocabulary class embeddings (`convnext_large_d_320_CocoPanopticOVDataset.pth`).

    The official file is one `torch.save`d tensor `(classes, prototypes, dim)` whose rows are
    L2-normalised (OMG-Seg `tools/gen_cls.py`: per class the text embeddings of each synonym,
    averaged over prompt templates; classes with fewer synonyms repeat their first one). A
    `.safetensors` file or a `.pth` mapping holding exactly one tensor is accepted as well.

    Raises:
        ValueError: not a single 3-D tensor, or rows not of unit norm (the original asserts this).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"class-embedding file not found: {path}")
    content: object = dict(load_file(path)) if path.suffix == ".safetensors" else _torch_load(path)
    if isinstance(content, Mapping):
        tensors = list(content.values())
        if len(tensors) != 1:
            raise ValueError(f"{path}: expected one tensor, found keys {sorted(map(str, content))}")
        content = tensors[0]
    if not isinstance(content, Tensor) or content.dim() != 3:
        shape = tuple(content.shape) if isinstance(content, Tensor) else type(content).__name__
        raise ValueError(f"{path}: expected a (classes, prototypes, dim) tensor, got {shape}")
    norms = content.float().norm(p=2, dim=-1)
    if not torch.allclose(norms, torch.ones_like(norms)):
        raise ValueError(
            f"{path}: class-embedding rows must have unit L2 norm; max deviation {(norms - 1).abs().max():.3g}"
        )
    return content


def convert_omg_seg_state_dict(
    state_dict: Mapping[str, Tensor], model_shapes: Mapping[str, torch.Size], *, source: str = "state_dict"
) -> tuple[dict[str, Tensor], tuple[str, ...]]:
    """Map an OMG-Seg state_dict onto the model's keys.

    Each source key is either on the ignore list or assigned to the model key of the same name;
    the shapes must agree and every model key must be assigned exactly once.

    Args:
        state_dict: checkpoint tensors by original key.
        model_shapes: the model's `state_dict()` shapes.
        source: file name used in error messages.

    Returns:
        The model state_dict and the ignored source keys.

    Raises:
        CheckpointKeyError: listing missing, unexpected and wrongly shaped keys.
    """
    converted: dict[str, Tensor] = {}
    ignored, unexpected, wrong_shape = [], [], []
    for key, tensor in state_dict.items():
        if any(pattern.match(key) for pattern in _IGNORED):
            ignored.append(key)
        elif key not in model_shapes:
            unexpected.append(key)
        elif tuple(tensor.shape) != tuple(model_shapes[key]):
            wrong_shape.append(f"{key}: file {tuple(tensor.shape)}, model {tuple(model_shapes[key])}")
        else:
            converted[key] = tensor
    missing = [key for key in model_shapes if key not in converted and key not in state_dict]
    if missing or unexpected or wrong_shape:
        raise CheckpointKeyError(f"{source} (OMG-Seg)", missing=missing, unexpected=unexpected, mismatched=wrong_shape)
    return converted, tuple(ignored)


def load_omg_seg(model: OmgSegEncoder, weights: str | Path, class_embeddings: str | Path) -> OmgSegLoadReport:
    """Fill `model` from the OMG-Seg weight file and the class-embedding file.

    Tensors are copied into the model's existing parameters (their dtype and device are kept).
    """
    state_dict = read_omg_seg_state_dict(weights)
    shapes = {key: value.shape for key, value in model.state_dict().items()}
    converted, ignored = convert_omg_seg_state_dict(state_dict, shapes, source=str(weights))
    model.load_state_dict(converted, strict=True)
    model.panoptic_head.set_class_embeddings(read_class_embeddings(class_embeddings))
    return OmgSegLoadReport(
        weights=str(weights), class_embeddings=str(class_embeddings), loaded=tuple(converted), ignored=ignored
    )


__all__ = [
    "OMG_SEG_IGNORED_KEYS",
    "OmgSegLoadReport",
    "convert_omg_seg_state_dict",
    "load_omg_seg",
    "read_class_embeddings",
    "read_omg_seg_state_dict",
]
