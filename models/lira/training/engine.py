"""Model and optimizer behind a data-parallel strategy: forward, backward with accumulation, optimizer step,
and the state that a checkpoint must hold.

Strategies (`distributed.strategy`):

- `ddp`: `torch.nn.parallel.DistributedDataParallel` over the trainable parameters (plain module with one process);
  gradients are averaged over ranks on the last backward of each accumulation group (`no_sync` before it).
- `fsdp`: `torch.distributed.fsdp.FullyShardedDataParallel` with `SHARD_GRAD_OP` (gradients and optimizer state
  sharded, parameters gathered for the whole step: ZeRO-2's layout), one unit per decoder layer, `use_orig_params`
  (frozen and trainable parameters share units).
- `deepspeed`: `deepspeed.initialize` with the ZeRO-2 JSON of the original (`configs/deepspeed_zero2.json`), its
  `"auto"` values filled from the run's config. DeepSpeed's fp16/bf16 modes cast the whole module, which would take
  OMG-Seg out of float32, so they are switched off and mixed precision comes from `torch.autocast` as with the
  other strategies; `precision: float16` (which needs a loss scaler) is refused with DeepSpeed, use `bfloat16`.

Mixed precision: `torch.autocast` with `precision` (float16 adds a dynamic `GradScaler`, initial scale 2^16 as
`AmpOptimWrapper` and DeepSpeed's `initial_scale_power`); trainable parameters and the optimizer are float32.
AdamW, gradient clipping to `max_grad_norm` (after unscaling), learning rate set before every step.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from harness.errors import UserError
from models.lira.model import LiraModel, LiraTrainingOutput
from models.lira.training.config import TrainConfig
from models.lira.training.dataset import TrainingBatch
from models.lira.training.modeling import trainable_parameters
from models.lira.training.runtime import Runtime

TRAINABLE_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.pt"


def autocast_dtype(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` (`auto`: float16 on CUDA, none on CPU); None means float32."""
    precision = config.precision
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else None
    return {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}[precision]


class TrainingEngine:
    """One strategy's forward / backward / step (see the module docstring)."""

    def __init__(self, model: LiraModel, config: TrainConfig, runtime: Runtime) -> None:
        self.model = model
        self.config = config
        self.runtime = runtime
        self.names = [name for name, _ in trainable_parameters(model)]
        self.strategy = config.distributed.strategy
        self.amp_dtype = autocast_dtype(config, runtime.device)
        optim = config.optim
        self.scaler = None
        if self.amp_dtype == torch.float16:
            if self.strategy == "deepspeed":
                raise UserError(
                    "precision float16 needs a loss scaler, which the deepspeed strategy does not use "
                    "here; use precision bfloat16 (or the ddp / fsdp strategies)"
                )
            self.scaler = torch.amp.GradScaler(runtime.device.type, init_scale=2.0**16)
        self.engine: Any = None
        if self.strategy == "deepspeed":
            self.module = self._deepspeed()
            self.optimizer = self.engine.optimizer
            return
        if self.strategy == "fsdp" and runtime.distributed:
            self.module = self._fsdp()
        elif runtime.distributed:
            device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
            self.module = nn.parallel.DistributedDataParallel(model, device_ids=device_ids, broadcast_buffers=False)
        else:
            self.module = model
        parameters = [p for p in self.module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            parameters, lr=optim.lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay
        )

    # --- wrapping -------------------------------------------------------------------------------------------------

    def _fsdp(self) -> nn.Module:
        from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy
        from torch.distributed.fsdp.wrap import ModuleWrapPolicy
        from transformers.models.llama.modeling_llama import LlamaDecoderLayer

        device = self.runtime.device
        return FullyShardedDataParallel(
            self.model,
            sharding_strategy=ShardingStrategy.SHARD_GRAD_OP,
            auto_wrap_policy=ModuleWrapPolicy({LlamaDecoderLayer}),
            use_orig_params=True,
            device_id=device if device.type == "cuda" else torch.device("cpu"),
            sync_module_states=False,
        )

    def _deepspeed(self) -> nn.Module:
        try:
            import deepspeed
        except ImportError:
            raise UserError("distributed.strategy deepspeed needs DeepSpeed: pip install deepspeed") from None
        path = Path(self.config.distributed.deepspeed_config)
        try:
            ds_config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise UserError(f"DeepSpeed config {path}: cannot be read ({error})") from None
        ds_config = fill_deepspeed_config(ds_config, self.config)
        parameters = [p for p in self.model.parameters() if p.requires_grad]
        optim = self.config.optim
        optimizer = torch.optim.AdamW(
            parameters, lr=optim.lr, betas=optim.betas, eps=optim.eps, weight_decay=optim.weight_decay
        )
        self.engine, _, _, _ = deepspeed.initialize(
            model=self.model, optimizer=optimizer, model_parameters=parameters, config=ds_config
        )
        return self.engine

    # --- one iteration --------------------------------------------------------------------------------------------

    def autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.runtime.device.type, dtype=self.amp_dtype)

    def _no_sync(self, sync: bool) -> contextlib.AbstractContextManager[None]:
        if sync or self.strategy == "deepspeed" or not self.runtime.distributed:
            return contextlib.nullcontext()
        return self.module.no_sync()  # type: ignore[operator]

    def forward_backward(
        self, batch: TrainingBatch, divisor: int, sync: bool, generator: torch.Generator, weight: float = 1.0
    ) -> LiraTrainingOutput:
        """Forward `batch`, backward `weight × loss / divisor`; gradients are averaged over ranks when `sync` (the last
        iteration before an optimizer step)."""
        with self._no_sync(sync):
            with self.autocast():
                output = self.module(**batch.model_inputs(), generator=generator)
            loss = output.loss.float() * weight
            if self.strategy == "deepspeed":
                self.engine.backward(loss)  # DeepSpeed divides by gradient_accumulation_steps itself
                self.engine.step()  # counts micro-steps; steps the optimizer at accumulation boundaries
            elif self.scaler is not None:
                self.scaler.scale(loss / divisor).backward()
            else:
                (loss / divisor).backward()
        return output

    def set_lr(self, lr: float) -> None:
        """The learning rate of the next optimizer step."""
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self) -> float | None:
        """Clip, step, clear the gradients; returns the gradient norm before clipping, or None when the float16 loss
        scaler skipped the step (inf/NaN gradients). With DeepSpeed the step already happened in the last backward."""
        max_norm = self.config.optim.max_grad_norm
        if self.strategy == "deepspeed":
            norm = self.engine.get_global_grad_norm()
            return None if norm is None else float(norm)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.strategy == "fsdp" and self.runtime.distributed:
            norm = self.module.clip_grad_norm_(max_norm)  # type: ignore[operator]
        else:
            parameters = [p for p in self.module.parameters() if p.requires_grad]
            norm = nn.utils.clip_grad_norm_(parameters, max_norm, error_if_nonfinite=False)
        if self.scaler is not None:
            scale = self.scaler.get_scale()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            skipped = self.scaler.get_scale() < scale
        else:
            self.optimizer.step()
            skipped = False
        self.optimizer.zero_grad(set_to_none=True)
        return None if skipped else float(norm)

    # --- state ----------------------------------------------------------------------------------------------------

    @property
    def _sharded(self) -> bool:
        return self.strategy == "fsdp" and self.runtime.distributed

    def _full_options(self, options_class: Any) -> Any:
        """Whole (unsharded) state dicts; on CUDA offloaded to rank 0's CPU (gloo on CPU crashes on that path)."""
        return options_class(full_state_dict=True, cpu_offload=self.runtime.device.type == "cuda")

    def trainable_state(self) -> dict[str, torch.Tensor] | None:
        """The trainable tensors (float32, CPU) on rank 0; None on the other ranks. Collective under FSDP."""
        if self._sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

            state = get_model_state_dict(self.module, options=self._full_options(StateDictOptions))
        elif self.runtime.is_main:
            state = dict(self.model.named_parameters())
        if not self.runtime.is_main:
            return None
        return {name: state[name].detach().float().cpu().clone() for name in self.names}

    def save(self, folder: Path) -> None:
        """Write the trainable tensors and the optimizer (and scaler) state into `folder`. Collective."""
        state = self.trainable_state()
        if self.strategy == "deepspeed":
            self.engine.save_checkpoint(str(folder / "deepspeed"), tag="state")
        elif self._sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

            options = self._full_options(StateDictOptions)
            optimizer_state = get_optimizer_state_dict(self.module, self.optimizer, options=options)
            if self.runtime.is_main:
                torch.save(optimizer_state, folder / OPTIMIZER_FILE)
        elif self.runtime.is_main:
            torch.save(self.optimizer.state_dict(), folder / OPTIMIZER_FILE)
        if state is not None:
            save_file(state, str(folder / TRAINABLE_FILE))
            extra = {"scaler": None if self.scaler is None else self.scaler.state_dict()}
            (folder / "engine.json").write_text(json.dumps(extra), encoding="utf-8")

    def load(self, folder: Path) -> None:
        """Restore the optimizer (and scaler) state that `save` wrote; the trainable tensors are loaded into the model
        before the engine wraps it (`load_trainable_state`). Collective."""
        if self.strategy == "deepspeed":
            self.engine.load_checkpoint(str(folder / "deepspeed"), tag="state")
            return
        if self._sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            main = self.runtime.is_main
            optimizer_state = torch.load(folder / OPTIMIZER_FILE, weights_only=True) if main else {}
            options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
            set_optimizer_state_dict(self.module, self.optimizer, optimizer_state, options=options)
        else:
            self.optimizer.load_state_dict(torch.load(folder / OPTIMIZER_FILE, map_location="cpu", weights_only=True))
        extra = json.loads((folder / "engine.json").read_text(encoding="utf-8"))
        if self.scaler is not None and extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])


def load_trainable_state(model: nn.Module, folder: Path) -> None:
    """Copy a checkpoint's trainable tensors into `model` (unwrapped); they must be exactly its trainable ones.

    Raises:
        UserError: tensors missing from or unknown to the model.
    """
    state = load_file(str(folder / TRAINABLE_FILE))
    parameters = dict(trainable_parameters(model))
    missing, unexpected = sorted(set(parameters) - set(state)), sorted(set(state) - set(parameters))
    if missing or unexpected:
        raise UserError(
            f"checkpoint {folder}: its trainable tensors differ from the model's (missing {missing}, "
            f"unexpected {unexpected})"
        )
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.copy_(state[name])


def fill_deepspeed_config(ds_config: dict[str, Any], config: TrainConfig) -> dict[str, Any]:
    """The DeepSpeed JSON with its `"auto"` values set from `config` (as xtuner's DeepSpeed strategy fills them)."""
    filled = json.loads(json.dumps(ds_config))
    values = {
        "gradient_accumulation_steps": config.batch.accumulation,
        "train_micro_batch_size_per_gpu": config.batch.per_device,
        "gradient_clipping": config.optim.max_grad_norm,
    }
    for key, value in values.items():
        if filled.get(key, "auto") == "auto":
            filled[key] = value
    for key in ("fp16", "bf16"):
        if key in filled and filled[key].get("enabled") == "auto":
            filled[key]["enabled"] = False  # mixed precision comes from torch.autocast (module docstring)
    return filled


__all__ = [
    "OPTIMIZER_FILE",
    "TRAINABLE_FILE",
    "TrainingEngine",
    "autocast_dtype",
    "fill_deepspeed_config",
    "load_trainable_state",
]
