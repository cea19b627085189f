"""Training run configuration: YAML files under `configs/`, overridable from the command line.

A config file is a mapping whose sections mirror the dataclasses below (`model`, `data`, `optim`, `schedule`,
`batch`, `sampler`, `distributed`, `checkpoint`, plus top-level values). `base: NAME` inherits another config and
overrides it key by key (lists are replaced whole). `--set a.b=value` overrides one value after loading; the value
is read as YAML (`--set optim.lr=1e-4`, `--set data.sources.0.repeats=2`, `--set model.init_pth=null`).

Values are those of the original configs (lira-model.md §10): `omg_llava/configs/pretrain/LIRA-{2B,8B}-pre.py` for
stage 1, `omg_llava/configs/finetune/LIRA-{2B,8B}.py` for stage 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.errors import UserError

CONFIG_FOLDER = Path(__file__).resolve().parents[3] / "configs"
"""`configs/` at the repository root: `--config stage2` reads `configs/stage2.yaml`."""

SourceFormat = Literal["llava", "refcoco", "grandf", "openpsg", "refcocog_gcg", "flickr_gcg"]
SOURCE_FORMATS: tuple[str, ...] = typing.get_args(SourceFormat)


@dataclasses.dataclass(frozen=True)
class LoraSection:
    """LoRA of stage 2 (`llm_lora` of the finetune configs); unused in stage 1."""

    rank: int = 128
    alpha: float = 256.0
    dropout: float = 0.05


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """Where the starting weights come from.

    Attributes:
        preset: `lira-2b`, `lira-8b` or `lira-tiny` (architecture; models/lira/config.py).
        internvl: the InternVL2 folder (`./pretrained/InternVL2-2B`): InternViT, mlp1, the base LLM, the tokenizer.
        omg_seg: `omg_seg_convl.pth`.
        class_embeddings: `convnext_large_d_320_CocoPanopticOVDataset.pth`.
        init_pth: a LIRA `.pth` applied on top (stage 2 starts from the stage-1 output `lira_2b_pre.pth`, as the
            original's `pretrained_pth`); None in stage 1.
        random_init_seed: instead of the three weight files, seeded random base weights (tests, benchmarks).
        tokenizer: tokenizer folder; None means the InternVL2 folder.
        dtype: dtype of the frozen weights: `auto` (float16 on CUDA as the original loads InternVL2, float32 on
            CPU), `float32`, `bfloat16`, `float16`. Trainable parameters are always held in float32.
    """

    preset: str = "lira-2b"
    internvl: str | None = None
    omg_seg: str | None = None
    class_embeddings: str | None = None
    init_pth: str | None = None
    random_init_seed: int | None = None
    tokenizer: str | None = None
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    lora: LoraSection = dataclasses.field(default_factory=LoraSection)


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """One dataset of the training mix.

    Attributes:
        name: label in logs and skip counts.
        format: `llava` (conversation JSON), `refcoco` (REFER folder: `refs(*).p` + `instances.json`, ILVC
            format), `grandf` / `openpsg` / `refcocog_gcg` / `flickr_gcg` (GCG training annotations).
        annotations: the JSON file; for `refcoco` the folder holding `<dataset>/` (`./data/ref_seg_high/`).
        images: image folder; annotation file names are joined to it.
        dataset: `refcoco`, `refcoco+` or `refcocog` (format `refcoco` only).
        split_by: `unc` / `umd` / `google`; default `umd` for refcocog, else `unc`.
        split: REFER split (`train`).
        repeats: each item appears this many times per epoch, identical each time (`GCGDataset.repeats`).
        copies: the source is listed this many times, each copy drawing its own random choices (expressions,
            questions): the original lists each RefCOCO set three times in its `CombineDataset`.
        crops: ILVC local crops: `file` opens each grounding's `seg_img_path`; `render` computes the highlight crop
            from the image and mask (`processor.highlight_crop`); `auto` uses `seg_img_path` when the annotation
            has one, otherwise renders.
        max_expressions: referring expressions per image (sampled without replacement; 3 in the original).
    """

    name: str
    format: SourceFormat
    annotations: str
    images: str
    dataset: str | None = None
    split_by: str | None = None
    split: str = "train"
    repeats: int = 1
    copies: int = 1
    crops: Literal["auto", "file", "render"] = "auto"
    max_expressions: int = 3


@dataclasses.dataclass(frozen=True)
class DataSection:
    """The training mix and how samples are encoded.

    Attributes:
        root: base folder of relative `annotations` / `images` paths (and of `seg_img_path`s that are relative).
        max_length: text tokens per sample, each `<image>` placeholder counting as one (1024 / 4096).
        max_tiles: InternVL tiles per image (`max_patch` 6; 1..max_tiles plus a thumbnail).
        overlong: `skip` a sample longer than `max_length` (counted), or `truncate` it as xtuner does (a truncated
            sample whose `[SEG]` tokens or crop placeholders no longer match its masks is then skipped).
        num_workers: DataLoader worker processes per rank.
        sources: the mix, in order.
    """

    root: str = "."
    max_length: int = 1024
    max_tiles: int = 6
    overlong: Literal["skip", "truncate"] = "skip"
    num_workers: int = 8
    sources: tuple[SourceSpec, ...] = ()


@dataclasses.dataclass(frozen=True)
class OptimSection:
    """AdamW with gradient clipping (`optim_wrapper`)."""

    lr: float = 2e-5
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0


@dataclasses.dataclass(frozen=True)
class ScheduleSection:
    """`LinearLR` warm-up then `CosineAnnealingLR`, both converted to iterations (mmengine semantics)."""

    epochs: int = 1
    warmup_ratio: float = 0.03
    warmup_start_factor: float = 1e-5
    eta_min: float = 0.0


@dataclasses.dataclass(frozen=True)
class BatchSection:
    """Samples per device per iteration, and iterations per optimizer step."""

    per_device: int = 1
    accumulation: int = 16


@dataclasses.dataclass(frozen=True)
class SamplerSection:
    """xtuner `LengthGroupedSampler` (stage 2) or a plain shuffle (`DefaultSampler(shuffle=True)`, stage 1).

    Attributes:
        group_by_length: group by `modality_length` in megabatches of `mega_batch_mult` × global batch.
        mega_batch_mult: None: `min(len // (4 × global batch), 50)`, at least 1 (xtuner's default).
    """

    group_by_length: bool = True
    mega_batch_mult: int | None = None


@dataclasses.dataclass(frozen=True)
class DistributedSection:
    """How several processes share the work (`torchrun` / `accelerate launch` set the ranks).

    Attributes:
        strategy: `ddp` (PyTorch DistributedDataParallel), `fsdp` (PyTorch FSDP, gradients and optimizer state
            sharded like ZeRO-2) or `deepspeed` (ZeRO-2 from `deepspeed_config`; needs `pip install deepspeed`).
        backend: `auto` (nccl on CUDA, gloo on CPU), `nccl` or `gloo`.
        deepspeed_config: the DeepSpeed JSON; its `"auto"` values are filled from this config.
    """

    strategy: Literal["ddp", "fsdp", "deepspeed"] = "ddp"
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    deepspeed_config: str = "configs/deepspeed_zero2.json"


@dataclasses.dataclass(frozen=True)
class CheckpointSection:
    """Resumable training checkpoints every `every_steps` optimizer steps (0: only at the end); the newest `keep`
    are kept."""

    every_steps: int = 500
    keep: int = 3


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A whole training run.

    Attributes:
        stage: `pretrain` (stage 1: projectors only) or `finetune` (stage 2: LoRA, embeddings, head, projectors).
        output_dir: run folder: checkpoints, `metrics.jsonl`, `report.html`, the exported `.pth`.
        export_name: file name of the exported official-layout `.pth` inside `output_dir`.
        seed: seeds sampling, expression and question draws, LoRA dropout and the loss point sampling.
        precision: `auto` (float16 autocast with dynamic loss scaling on CUDA, as the original's `AmpOptimWrapper`;
            float32 on CPU), `float32`, `bfloat16`, `float16`.
        activation_checkpointing: recompute the LLM's layers in the backward pass (on in the original).
        device: `auto` (the rank's CUDA device when available, else CPU), `cpu` or `cuda`.
        log_every_steps: metrics are written every optimizer step; the console line every this many.
        max_steps: stop after this many optimizer steps (None: the whole schedule). The schedule does not change.
    """

    stage: Literal["pretrain", "finetune"]
    model: ModelSection
    data: DataSection
    optim: OptimSection = dataclasses.field(default_factory=OptimSection)
    schedule: ScheduleSection = dataclasses.field(default_factory=ScheduleSection)
    batch: BatchSection = dataclasses.field(default_factory=BatchSection)
    sampler: SamplerSection = dataclasses.field(default_factory=SamplerSection)
    distributed: DistributedSection = dataclasses.field(default_factory=DistributedSection)
    checkpoint: CheckpointSection = dataclasses.field(default_factory=CheckpointSection)
    output_dir: str = "work_dirs/lira"
    export_name: str = "lira.pth"
    seed: int = 0
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    activation_checkpointing: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every_steps: int = 10
    max_steps: int | None = None

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def fingerprint(self) -> str:
        """Hash of everything that decides the trained weights (not `output_dir`, logging or `max_steps`)."""
        data = self.to_dict()
        for key in ("output_dir", "log_every_steps", "max_steps", "checkpoint"):
            data.pop(key)
        data["data"].pop("num_workers")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise UserError(f"training config: {message}")


def _validate(config: TrainConfig) -> None:
    _check(config.stage in ("pretrain", "finetune"), f"stage must be 'pretrain' or 'finetune', got {config.stage!r}")
    model = config.model
    weights = (model.internvl, model.omg_seg, model.class_embeddings)
    _check(
        model.random_init_seed is not None or all(weights),
        "model needs internvl, omg_seg and class_embeddings (the official files), or random_init_seed",
    )
    _check(model.lora.rank > 0 and model.lora.alpha > 0, "model.lora.rank and model.lora.alpha must be positive")
    _check(0 <= model.lora.dropout < 1, "model.lora.dropout must be in [0, 1)")
    data = config.data
    _check(bool(data.sources), "data.sources is empty: list at least one dataset")
    _check(data.max_length > 0 and data.max_tiles >= 1, "data.max_length and data.max_tiles must be positive")
    _check(data.overlong in ("skip", "truncate"), f"data.overlong must be 'skip' or 'truncate', got {data.overlong!r}")
    _check(data.num_workers >= 0, "data.num_workers must be >= 0")
    names = [source.name for source in data.sources]
    _check(len(set(names)) == len(names), f"data.sources names must be unique, got {names}")
    for source in data.sources:
        where = f"data.sources[{source.name}]"
        _check(source.format in SOURCE_FORMATS, f"{where}.format {source.format!r} is not one of {SOURCE_FORMATS}")
        _check(source.repeats >= 1 and source.copies >= 1, f"{where}: repeats and copies must be >= 1")
        _check(source.crops in ("auto", "file", "render"), f"{where}.crops must be auto, file or render")
        _check(source.max_expressions >= 1, f"{where}.max_expressions must be >= 1")
        if source.format == "refcoco":
            _check(
                source.dataset in ("refcoco", "refcoco+", "refcocog"),
                f"{where}.dataset must be refcoco, refcoco+ or refcocog for format refcoco",
            )
        if config.stage == "pretrain":
            _check(source.format == "llava", f"{where}: stage 1 trains on LLaVA-format captions only")
    _check(config.optim.lr > 0 and config.optim.max_grad_norm > 0, "optim.lr and optim.max_grad_norm must be > 0")
    schedule = config.schedule
    _check(schedule.epochs >= 1, "schedule.epochs must be >= 1")
    _check(0 <= schedule.warmup_ratio < 1, "schedule.warmup_ratio must be in [0, 1)")
    _check(0 < schedule.warmup_start_factor <= 1, "schedule.warmup_start_factor must be in (0, 1]")
    _check(config.batch.per_device >= 1 and config.batch.accumulation >= 1, "batch sizes must be >= 1")
    _check(config.sampler.mega_batch_mult is None or config.sampler.mega_batch_mult >= 1, "mega_batch_mult >= 1")
    _check(config.checkpoint.every_steps >= 0 and config.checkpoint.keep >= 1, "checkpoint.every_steps >= 0, keep >= 1")
    _check(config.max_steps is None or config.max_steps >= 1, "max_steps must be >= 1")
    _check(config.log_every_steps >= 1, "log_every_steps must be >= 1")
    _check(bool(config.export_name), "export_name must not be empty")


# ---------------------------------------------------------------------------
# Reading files and overrides
# ---------------------------------------------------------------------------


def _build(cls: type, data: Any, where: str) -> Any:
    """Dataclass `cls` from a mapping, recursively; unknown keys and wrong kinds are errors naming `where`."""
    if not isinstance(data, Mapping):
        raise UserError(f"training config: {where} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"training config: unknown key(s) {unknown} in {where}; expected some of {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _convert(hints[name], value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as error:
        raise UserError(f"training config: {where}: {error}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise UserError(f"training config: {where} must not be null")
        options = [arg for arg in args if arg is not type(None)]
        return _convert(options[0], value, where) if len(options) == 1 else value
    if origin is tuple:
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise UserError(f"training config: {where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
        if len(args) != len(value):
            raise UserError(f"training config: {where} must have {len(args)} items, got {value!r}")
        pairs = enumerate(zip(args, value, strict=True))
        return tuple(_convert(arg, item, f"{where}[{i}]") for i, (arg, item) in pairs)
    if origin is Literal:
        if value not in args:
            raise UserError(f"training config: {where} must be one of {list(args)}, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise UserError(f"training config: {where} must be a number, got {value!r}")
        try:
            return float(value)  # YAML reads "1e-3" as a string
        except ValueError:
            raise UserError(f"training config: {where} must be a number, got {value!r}") from None
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise UserError(f"training config: {where} must be an integer, got {value!r}")
    if hint is bool and not isinstance(value, bool):
        raise UserError(f"training config: {where} must be true or false, got {value!r}")
    if hint is str and not isinstance(value, str):
        raise UserError(f"training config: {where} must be a string, got {value!r}")
    return value


def resolve_config_path(name: str) -> Path:
    """`stage2` → `configs/stage2.yaml`; an existing path is taken as it is."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    candidate = CONFIG_FOLDER / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in CONFIG_FOLDER.glob("*.yaml"))
    raise UserError(f"no training config {name!r}: not a YAML file, and not one of {known} in {CONFIG_FOLDER}")


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def read_config_file(name: str, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The raw mapping of a config file, with its `base` chain merged in (`base` names a file beside it, or a
    config under `configs/`)."""
    path = resolve_config_path(name).resolve()
    if path in _seen:
        raise UserError(f"training config {path}: 'base' chain loops ({' -> '.join(map(str, _seen))})")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise UserError(f"training config {path}: not valid YAML ({error})") from None
    if not isinstance(data, dict):
        raise UserError(f"training config {path}: expected a mapping at the top level")
    base = data.pop("base", None)
    if base is None:
        return data
    sibling = path.parent / (base if Path(base).suffix else f"{base}.yaml")
    parent = str(sibling) if sibling.is_file() and sibling.resolve() != path else base  # else under configs/
    return _merge(read_config_file(parent, (*_seen, path)), data)


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` (value read as YAML) in place; list items are addressed by index."""
    key, sep, text = assignment.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {assignment!r}: expected KEY=VALUE, e.g. optim.lr=1e-4")
    try:
        value = yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError as error:
        raise UserError(f"--set {assignment!r}: the value is not valid YAML ({error})") from None
    parts = key.strip().split(".")
    node: Any = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise UserError(f"--set {assignment!r}: {where} is not an index of a {len(node)}-item list")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise UserError(f"--set {assignment!r}: {'.'.join(parts[:depth])} is a value, not a section")


def load_config(name: str, overrides: Sequence[str] = ()) -> TrainConfig:
    """Read `configs/<name>.yaml` (or a YAML path), apply `--set` overrides, validate."""
    data = read_config_file(name)
    for assignment in overrides:
        apply_override(data, assignment)
    return config_from_mapping(data, str(resolve_config_path(name)))


def config_from_mapping(data: Mapping[str, Any], where: str = "config") -> TrainConfig:
    """A validated `TrainConfig` from a plain mapping (as written by `TrainConfig.to_dict`)."""
    try:
        return _build(TrainConfig, data, where)
    except UserError:
        raise
    except ValueError as error:
        raise UserError(f"training config {where}: {error}") from None


__all__ = [
    "CONFIG_FOLDER",
    "SOURCE_FORMATS",
    "BatchSection",
    "CheckpointSection",
    "DataSection",
    "DistributedSection",
    "LoraSection",
    "ModelSection",
    "OptimSection",
    "SamplerSection",
    "ScheduleSection",
    "SourceSpec",
    "TrainConfig",
    "apply_override",
    "config_from_mapping",
    "load_config",
    "read_config_file",
    "resolve_config_path",
]
