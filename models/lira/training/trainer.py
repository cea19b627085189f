"""The training loop: data → iterations with gradient accumulation → optimizer steps → checkpoints → export.

One iteration is one batch per rank (mmengine's iteration). Each iteration first reseeds torch's generator and a
device generator for the loss point sampling from (seed, epoch, position of its first sample in the epoch's global
order), so the random draws of a sample do not depend on which rank trains it or whether the run was resumed.

A batch whose samples all failed to load is replaced by the run's first good batch with loss weight 0, so that every
rank still takes part in the gradient all-reduce; the failures are counted by reason (`load_skipped` in `run.json` and
in the report). Samples left out when the data were read are counted by the dataset.

Rank 0 writes `metrics.jsonl`, the progress bar, `run.json`, `report.html` and, at the end, the trained weights in
the official LIRA `.pth` layout (`export_name`), rebuilt from the final checkpoint.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from harness.errors import UserError
from models.lira.training.checkpointing import (
    latest_checkpoint,
    load_rng,
    read_checkpoint_state,
    save_checkpoint,
)
from models.lira.training.config import TrainConfig
from models.lira.training.dataset import TrainingBatch, TrainingDataset, TrainingExample, collate
from models.lira.training.engine import TrainingEngine, autocast_dtype, load_trainable_state
from models.lira.training.export import export_checkpoint
from models.lira.training.logbook import LOSS_KEYS, MetricsLog, Progress, StepAccumulator
from models.lira.training.modeling import build_training_model, lira_config_for, load_training_tokenizer
from models.lira.training.report import RUN_FILE, write_training_report
from models.lira.training.runtime import Runtime
from models.lira.training.sampler import TrainingSampler
from models.lira.training.schedule import Schedule

log = logging.getLogger("models.lira.training")


def iteration_seed(seed: int, epoch: int, position: int) -> int:
    """The random seed of the iteration whose first sample is at `position` of the epoch's global order."""
    digest = hashlib.sha256(f"{seed}/{epoch}/{position}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass(frozen=True)
class TrainResult:
    """What a finished (or stopped) run left behind."""

    output_dir: Path
    steps: int
    total_steps: int
    checkpoint: Path | None
    export: Path | None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


class Trainer:
    """One training run (see the module docstring); `run()` trains and returns the result."""

    def __init__(self, config: TrainConfig, runtime: Runtime, *, resume: bool | str = False, command: str = "") -> None:
        self.config = config
        self.runtime = runtime
        self.output_dir = Path(config.output_dir)
        if runtime.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        runtime.barrier()
        self.resume_from = self._resume_folder(resume)
        state = read_checkpoint_state(self.resume_from) if self.resume_from else None
        if state is not None:
            self._check_resumable(state)

        lira_config = lira_config_for(config)
        tokenizer = load_training_tokenizer(config, lira_config)
        self.dataset = TrainingDataset(config, tokenizer, lira_config)
        self.pad_token_id = tokenizer.pad_token_id or 0
        model, notes = build_training_model(config, runtime.device)
        if self.resume_from is not None:
            load_trainable_state(model, self.resume_from)
        self.model = model
        self.engine = TrainingEngine(model, config, runtime)
        if self.resume_from is not None:
            self.engine.load(self.resume_from)
            load_rng(self.resume_from, runtime.rank)

        batch = config.batch
        self.sampler = TrainingSampler(
            self.dataset.lengths,
            per_device_batch_size=batch.per_device * batch.accumulation,
            rank=runtime.rank,
            world_size=runtime.world_size,
            seed=config.seed,
            group_by_length=config.sampler.group_by_length,
            mega_batch_mult=config.sampler.mega_batch_mult,
        )
        self.iterations_per_epoch = -(-self.sampler.num_samples // batch.per_device)
        self.schedule = Schedule.build(
            base_lr=config.optim.lr,
            iterations_per_epoch=self.iterations_per_epoch,
            epochs=config.schedule.epochs,
            warmup_ratio=config.schedule.warmup_ratio,
            warmup_start_factor=config.schedule.warmup_start_factor,
            eta_min=config.schedule.eta_min,
            accumulation=batch.accumulation,
            world_size=runtime.world_size,
        )
        self.step = state["step"] if state else 0
        self.iteration = state["iteration"] if state else 0
        self.load_skipped: Counter[str] = Counter(state["load_skipped"] if state and runtime.is_main else {})
        self.filler: TrainingBatch | None = None
        self.metrics = (
            MetricsLog(self.output_dir / "metrics.jsonl", self.step if state else None) if runtime.is_main else None
        )
        amp = autocast_dtype(config, runtime.device)
        self.run_info: dict[str, Any] = {
            "status": "running",
            "command": command,
            "started": _now(),
            "finished": None,
            "device": str(runtime.device),
            "world_size": runtime.world_size,
            "precision": "float32" if amp is None else str(amp).removeprefix("torch."),
            "total_steps": self.total_steps,
            "fingerprint": config.fingerprint(),
            "config": config.to_dict(),
            "data": self.dataset.describe(),
            "load_skipped": dict(self.load_skipped),
            "resumed_from": None if self.resume_from is None else str(self.resume_from),
            "export": None,
            "notes": notes,
        }
        self._write_run_info()
        log.info(
            "training %s (%s): %d samples, %d indices per epoch, %d iterations per rank, %d optimizer steps%s",
            config.model.preset,
            config.stage,
            len(self.dataset.samples),
            len(self.dataset),
            self.schedule.total_iterations,
            self.total_steps,
            f"; resuming at step {self.step}" if state else "",
        )

    # --- setup helpers ------------------------------------------------------------------------------------------------

    @property
    def total_steps(self) -> int:
        steps = self.schedule.total_steps
        return steps if self.config.max_steps is None else min(steps, self.config.max_steps)

    def _resume_folder(self, resume: bool | str) -> Path | None:
        if isinstance(resume, str):
            folder = Path(resume)
            if not (folder / "state.json").is_file():
                raise UserError(f"--resume {resume}: not a training checkpoint folder (no state.json)")
            return folder
        found = latest_checkpoint(self.output_dir)
        if found is not None and not resume:
            raise UserError(
                f"{self.output_dir} already holds training checkpoints ({found.name}); pass --resume to continue that "
                "run, or choose another --output-dir"
            )
        return found if resume else None

    def _check_resumable(self, state: dict[str, Any]) -> None:
        if state.get("fingerprint") != self.config.fingerprint():
            saved, now = state.get("config", {}), self.config.to_dict()
            differing = sorted(
                key
                for key in set(saved) | set(now)
                if key not in ("output_dir", "log_every_steps", "max_steps", "checkpoint")
                and saved.get(key) != now.get(key)
            )
            raise UserError(
                f"checkpoint {self.resume_from} was written with another configuration (sections differing: "
                f"{differing}); resume with the same config and --set overrides"
            )
        if state.get("world_size") != self.runtime.world_size:
            raise UserError(
                f"checkpoint {self.resume_from} was written by {state.get('world_size')} processes; resume with the "
                f"same number (now {self.runtime.world_size})"
            )

    def _write_run_info(self) -> None:
        if self.runtime.is_main:
            path = self.output_dir / RUN_FILE
            path.write_text(json.dumps(self.run_info, indent=1, default=str), encoding="utf-8")

    def _loader(self, epoch: int, start_iteration: int) -> DataLoader:
        self.sampler.set_epoch(epoch, start_iteration * self.config.batch.per_device)
        workers = self.config.data.num_workers
        return DataLoader(
            self.dataset,
            batch_size=self.config.batch.per_device,
            sampler=self.sampler,
            num_workers=workers,
            collate_fn=partial(collate, pad_token_id=self.pad_token_id),
            pin_memory=self.runtime.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=2 if workers else None,
        )

    def _filler(self) -> TrainingBatch:
        if self.filler is None:
            for index in range(len(self.dataset)):
                item = self.dataset[index]
                if isinstance(item, TrainingExample):
                    self.filler = collate([item], self.pad_token_id)
                    break
            else:
                raise UserError("no training sample can be loaded (every image or mask failed)")
        return self.filler

    # --- the loop -----------------------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        config, runtime, schedule = self.config, self.runtime, self.schedule
        progress = Progress(self.total_steps, self.step, enabled=runtime.is_main)
        accumulator = StepAccumulator()
        step_started = time.perf_counter()
        last_saved = self.step if self.resume_from is not None else None
        checkpoint = self.resume_from
        stopped = self.step >= self.total_steps
        while not stopped and self.iteration < schedule.total_iterations:
            epoch, within = divmod(self.iteration, self.iterations_per_epoch)
            for local, batch in enumerate(self._loader(epoch, within), start=within):
                iteration = epoch * self.iterations_per_epoch + local
                position = local * config.batch.per_device * runtime.world_size + runtime.rank
                seed = iteration_seed(config.seed, epoch, position)
                skipped_here = len(batch.skipped)
                for skipped in batch.skipped:
                    self.load_skipped[skipped.reason] += 1
                    log.warning("sample %d left out: %s (%s)", skipped.index, skipped.reason, skipped.detail)
                weight = 1.0
                if batch.empty:
                    batch, weight = self._filler(), 0.0
                elif self.filler is None:
                    self.filler = batch
                torch.manual_seed(seed)
                generator = torch.Generator(device=runtime.device).manual_seed(seed)
                self.engine.set_lr(schedule.lr(iteration))
                output = self.engine.forward_backward(
                    batch.to(runtime.device),
                    divisor=schedule.loss_divisor(iteration),
                    sync=schedule.is_update(iteration),
                    generator=generator,
                    weight=weight,
                )
                if weight and output.seg_status.mismatched:
                    self.load_skipped["batch with [SEG]/mask mismatch (mask losses zeroed)"] += 1
                losses = (output.loss, output.lm_loss, output.dice_loss, output.mask_loss, output.projection_loss)
                values = dict(zip(LOSS_KEYS, torch.stack([x.detach().float() for x in losses]).tolist(), strict=True))
                samples = 0 if weight == 0 else len(batch.indices)
                tokens = 0 if weight == 0 else batch.text_tokens
                accumulator.add(values, samples, tokens, skipped_here)
                self.iteration = iteration + 1
                if not schedule.is_update(iteration):
                    continue
                grad_norm = self.engine.step()
                self.step += 1
                summed = runtime.sum(accumulator.as_list())
                seconds = time.perf_counter() - step_started
                row = {"step": self.step, "iteration": self.iteration, "epoch": epoch, "lr": schedule.lr(iteration)}
                row |= StepAccumulator.row(summed)
                row |= {"grad_norm": grad_norm, "seconds": seconds, "tokens_per_second": row["text_tokens"] / seconds}
                if self.metrics is not None:
                    self.metrics.write(row)
                    progress.update(row)
                    if self.step % config.log_every_steps == 0:
                        log.info("step %d/%d %s", self.step, self.total_steps, json.dumps(row))
                accumulator = StepAccumulator()
                stopped = self.step >= self.total_steps
                every = config.checkpoint.every_steps
                if stopped or (every and self.step % every == 0):
                    checkpoint = self._save(epoch)
                    last_saved = self.step
                step_started = time.perf_counter()
                if stopped:
                    break
        progress.close()
        if last_saved != self.step:
            checkpoint = self._save(self.iteration // self.iterations_per_epoch)
        export = self._finish(checkpoint)
        return TrainResult(self.output_dir, self.step, self.total_steps, checkpoint, export)

    def _gathered_skips(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counts in self.runtime.gather_objects(dict(self.load_skipped)):
            total.update(counts)  # type: ignore[arg-type]
        return total

    def _save(self, epoch: int) -> Path:
        skipped = self._gathered_skips()
        state = {
            "step": self.step,
            "iteration": self.iteration,
            "epoch": epoch,
            "world_size": self.runtime.world_size,
            "fingerprint": self.config.fingerprint(),
            "config": self.config.to_dict(),
            "load_skipped": dict(skipped),
            "saved": _now(),
        }
        folder = save_checkpoint(self.output_dir, self.engine, self.runtime, state, self.config.checkpoint.keep)
        if self.runtime.is_main:
            self.run_info["load_skipped"] = dict(skipped)
            self._write_run_info()
            write_training_report(self.output_dir)
            log.info("checkpoint %s", folder)
        return folder

    def _finish(self, checkpoint: Path | None) -> Path | None:
        export = None
        if self.runtime.is_main:
            complete = self.step >= self.schedule.total_steps
            if checkpoint is not None:
                export = self.output_dir / self.config.export_name
                export_checkpoint(self.config, checkpoint, export)
                log.info("exported %s", export)
            self.run_info.update(
                status="finished" if complete else f"stopped after step {self.step} (max_steps)",
                finished=_now(),
                export=None if export is None else str(export),
            )
            self._write_run_info()
            write_training_report(self.output_dir)
        self.runtime.barrier()
        return export


def run_training(config: TrainConfig, *, resume: bool | str = False, command: str = "") -> TrainResult:
    """Train under the launcher's rank layout (one process without one); the process group is left at the end."""
    runtime = Runtime.start(config)
    try:
        return Trainer(config, runtime, resume=resume, command=command).run()
    finally:
        runtime.stop()


__all__ = ["TrainResult", "Trainer", "iteration_seed", "run_training"]
