"""The evaluation loop: samples -> requests -> cached predictions -> metrics -> results folder."""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import platform
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import harness
from harness.cache import PredictionCache, prediction_key
from harness.distributed import Distributed
from harness.errors import SampleError, UserError
from harness.metrics.base import Metric
from harness.model import ModelAdapter
from harness.results import (
    SCHEMA_VERSION,
    ModelInfo,
    Results,
    TaskResult,
    clean_numbers,
    read_json,
    write_json,
    write_jsonl,
)
from harness.stats import bootstrap_intervals
from harness.task import Task, require_data
from harness.types import Prediction, Request, Sample, to_dict


class RunStopped(Exception):
    """A sample failed under ``--fail-fast``."""


@dataclass(frozen=True)
class RunSettings:
    """How to run: where data and outputs live, and the knobs of the loop."""

    data_root: Path
    output_dir: Path
    limit: int | None = None
    batch_size: int | None = None
    seed: int = 0
    fail_fast: bool = False
    bootstrap_iters: int = 1000
    progress: bool = True
    command: str = ""
    task_args: dict[str, str] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class PreparedTask:
    """A task with its samples loaded and its identity computed."""

    task: Task
    samples: list[Sample]
    data_hashes: dict[str, str]
    fingerprint: str
    keys: list[str]


# ---------------------------------------------------------------------------
# Preparation
# ---------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when loaded) torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def check_capabilities(adapter: ModelAdapter, tasks: Sequence[Task]) -> None:
    """Refuse, before any work, tasks whose request kind or needs the adapter cannot serve."""
    problems = []
    for task in tasks:
        if task.kind not in adapter.request_kinds:
            served = ", ".join(sorted(adapter.request_kinds)) or "none"
            problems.append(f"{task.name} asks for {task.kind} (model serves: {served})")
        elif not task.requires <= adapter.capabilities:
            lacking = ", ".join(sorted(task.requires - adapter.capabilities))
            problems.append(f"{task.name} needs {lacking}")
    if problems:
        raise UserError(f"model {adapter.name!r} cannot serve: " + "; ".join(problems))


def file_sha256(path: Path, memo: dict[str, Any]) -> str:
    """sha256 of a file's content, memoised on (path, size, mtime)."""
    stat = path.stat()
    entry = memo.get(str(path.resolve()))
    if entry and entry["size"] == stat.st_size and entry["mtime_ns"] == stat.st_mtime_ns:
        return entry["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    memo[str(path.resolve())] = {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": digest.hexdigest(),
    }
    return digest.hexdigest()


def prepare_tasks(tasks: Sequence[Task], settings: RunSettings, model_fingerprint: str) -> list[PreparedTask]:
    """Load samples, hash data files and compute every sample's cache key."""
    require_data(tasks, settings.data_root)
    memo_path = settings.output_dir / "cache" / "file_hashes.json"
    memo: dict[str, Any] = read_json(memo_path) if memo_path.exists() else {}
    prepared = []
    for task in tasks:
        samples = list(task.samples(settings.data_root))
        if settings.limit is not None:
            samples = samples[: settings.limit]
        ids = [sample.sample_id for sample in samples]
        if len(set(ids)) != len(ids):
            duplicate = next(item for item, count in Counter(ids).items() if count > 1)
            raise UserError(f"task {task.name!r} has duplicate sample_id {duplicate!r}")
        hashes = {role: file_sha256(path, memo) for role, path in sorted(task.data_files(settings.data_root).items())}
        fingerprint = task.fingerprint(hashes)
        keys = [prediction_key(model_fingerprint, fingerprint, sample_id) for sample_id in ids]
        prepared.append(PreparedTask(task, samples, hashes, fingerprint, keys))
    write_json(memo_path, memo)
    return prepared


# ---------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------


def _failure(error: BaseException) -> Prediction:
    return Prediction(error=f"{type(error).__name__}: {error}")


def _call(adapter: ModelAdapter, requests: list[Request], fail_fast: bool) -> tuple[list[Prediction], float]:
    """Predict a batch; on an exception retry the requests one by one and record what still fails."""
    start = time.perf_counter()
    try:
        predictions = adapter.predict(requests)
        if len(predictions) != len(requests):
            raise RuntimeError(f"adapter returned {len(predictions)} predictions for {len(requests)} requests")
    except Exception as error:
        if fail_fast:
            raise RunStopped(f"{requests[0].task} sample {requests[0].sample_id!r}: {_failure(error).error}") from error
        if len(requests) == 1:
            return [_failure(error)], time.perf_counter() - start
        results = [_call(adapter, [request], fail_fast)[0][0] for request in requests]
        return results, time.perf_counter() - start
    elapsed = time.perf_counter() - start
    share = elapsed / len(requests)
    predictions = [p if p.latency_s is not None else dataclasses.replace(p, latency_s=share) for p in predictions]
    if fail_fast:
        for request, prediction in zip(requests, predictions, strict=True):
            if prediction.error is not None:
                raise RunStopped(f"{request.task} sample {request.sample_id!r}: {prediction.error}")
    return predictions, elapsed


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict_missing(
    adapter: ModelAdapter,
    prepared: Sequence[PreparedTask],
    cache: PredictionCache,
    settings: RunSettings,
    distributed: Distributed,
) -> tuple[dict[str, float], dict[str, Prediction]]:
    """Predict this rank's samples that the cache lacks, storing each batch as soon as it returns.

    Returns the adapter's seconds per task, and every outcome of this rank's samples by cache key
    (cached predictions, new predictions and new failures).
    """
    wants_reference = "reference" in adapter.capabilities
    batch_size = max(1, settings.batch_size or adapter.preferred_batch_size)
    model_seconds: dict[str, float] = {}
    outcomes: dict[str, Prediction] = {}
    pending: list[tuple[PreparedTask, list[int]]] = []
    total = cached_count = 0
    for item in prepared:
        mine = list(distributed.shard(len(item.samples)))
        cached = cache.get_many([item.keys[i] for i in mine])
        outcomes.update(cached)
        todo = [i for i in mine if item.keys[i] not in cached]
        pending.append((item, todo))
        total += len(mine)
        cached_count += len(mine) - len(todo)
    bar = tqdm(
        total=total,
        initial=cached_count,
        desc="predict",
        unit="sample",
        disable=not (settings.progress and distributed.is_main),
        dynamic_ncols=True,
    )
    with bar:
        for item, todo in pending:
            bar.set_postfix_str(item.task.name)
            seconds = 0.0
            for chunk in _batches(todo, batch_size):
                results: dict[int, Prediction] = {}
                requests: list[tuple[int, Request]] = []
                for index in chunk:
                    sample = item.samples[index]
                    if not Path(sample.image).is_file():
                        results[index] = Prediction(error=f"ImageNotFound: {sample.image}")
                        continue
                    request = item.task.request(sample)
                    if wants_reference:
                        request = dataclasses.replace(request, reference=item.task.reference(sample))
                    requests.append((index, request))
                if not requests and settings.fail_fast:
                    raise RunStopped(f"{item.task.name}: {results[chunk[0]].error}")
                if requests:
                    predictions, elapsed = _call(adapter, [r for _, r in requests], settings.fail_fast)
                    seconds += elapsed
                    results.update({index: p for (index, _), p in zip(requests, predictions, strict=True)})
                cache.put_many((item.keys[i], item.task.name, item.samples[i].sample_id, results[i]) for i in chunk)
                outcomes.update((item.keys[i], results[i]) for i in chunk)
                bar.update(len(chunk))
            model_seconds[item.task.name] = seconds
    return model_seconds, outcomes


def cached_outcomes(
    prepared: Sequence[PreparedTask], cache: PredictionCache, distributed: Distributed
) -> dict[str, Prediction]:
    """This rank's cached predictions and recorded failures, by cache key (for re-scoring without a model)."""
    keys = [item.keys[i] for item in prepared for i in distributed.shard(len(item.samples))]
    outcomes = cache.get_many(keys)
    failures = cache.failures([key for key in keys if key not in outcomes])
    outcomes.update((key, Prediction(error=error)) for key, error in failures.items())
    return outcomes


# ---------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------


def _check_metric_names(task: Task, metrics: Sequence[Metric]) -> None:
    names = [metric.name for metric in metrics]
    if len(set(names)) != len(names):
        raise ValueError(f"task {task.name!r} declares metrics with the same name: {names}")


def score_shard(item: PreparedTask, outcomes: dict[str, Prediction], distributed: Distributed) -> dict[str, Any]:
    """Score this rank's samples of one task: metric states plus the per-sample log rows."""
    metrics = item.task.metrics()
    _check_metric_names(item.task, metrics)
    rows = []
    for index in distributed.shard(len(item.samples)):
        sample, key = item.samples[index], item.keys[index]
        outcome = outcomes.get(key)
        prediction = None if outcome is None or outcome.error is not None else outcome
        row: dict[str, Any] = {
            "index": index,
            "sample_id": sample.sample_id,
            "image": sample.image,
            "prompt": item.task.request(sample).prompt,
            "target": sample.target,
            "prediction": None if prediction is None else to_dict(prediction),
            "scores": {},
            "error": None,
        }
        if outcome is None:
            row["error"] = "NotPredicted: no prediction is cached for this sample"
        elif prediction is None:
            row["error"] = outcome.error
        else:
            try:
                records = {metric.name: metric.score(sample, prediction) for metric in metrics}
            except SampleError as error:
                row["error"] = f"ScoringError: {error}"
            else:
                for metric in metrics:
                    metric.add(index, records[metric.name])
                row["scores"] = records
        rows.append(row)
    return {"states": [metric.state() for metric in metrics], "rows": rows}


def _reason(error: str) -> str:
    return error.split(":", 1)[0].strip() or "Error"


def summarise_task(
    item: PreparedTask, shards: Sequence[dict[str, Any]], settings: RunSettings
) -> tuple[TaskResult, list[dict[str, Any]]]:
    """Merge every rank's states and rows of one task into its result and its sorted samples log."""
    metrics = item.task.metrics()
    for shard in shards:
        for metric, state in zip(metrics, shard["states"], strict=True):
            metric.load_state(state)
    values: dict[str, float | None] = {}
    intervals: dict[str, list[float]] = {}
    definitions: dict[str, str] = {}
    directions: dict[str, bool] = {}
    for metric in metrics:
        computed = metric.compute()
        clash = set(computed) & set(values)
        if clash:
            raise ValueError(f"task {item.task.name!r}: metrics report the same value names {sorted(clash)}")
        values.update(computed)
        intervals.update(
            bootstrap_intervals(metric, metric.records(), iterations=settings.bootstrap_iters, seed=settings.seed)
        )
        definitions.update({k: v for k, v in metric.definitions.items() if k in computed})
        directions.update({k: v for k, v in metric.higher_is_better.items() if k in computed})
    rows = sorted((row for shard in shards for row in shard["rows"]), key=lambda row: row["index"])
    errors = [row["error"] for row in rows if row["error"] is not None]
    result = TaskResult(
        metrics=values,
        intervals=intervals,
        n_samples=len(item.samples),
        n_failed=len(errors),
        failures=dict(sorted(Counter(_reason(e) for e in errors).items())),
        config=item.task.config(),
        data_hashes=item.data_hashes,
        fingerprint=item.fingerprint,
        definitions=definitions,
        higher_is_better=directions,
    )
    return result, rows


def group_means(groups: dict[str, list[str]], tasks: dict[str, TaskResult]) -> dict[str, dict[str, float | None]]:
    """Mean of each metric that every member task of a group reports."""
    means: dict[str, dict[str, float | None]] = {}
    for group, members in groups.items():
        present = [tasks[name]["metrics"] for name in members if name in tasks]
        if len(present) < 2:
            continue
        shared = [key for key in present[0] if all(key in metrics for metrics in present[1:])]
        means[group] = {}
        for key in shared:
            numbers = [metrics[key] for metrics in present]
            means[group][key] = None if any(n is None for n in numbers) else float(np.mean(numbers))
    return means


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def git_commit() -> str | None:
    """The commit of the harness checkout, when it is one."""
    try:
        output = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(harness.__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return output.stdout.strip() or None


def evaluate(
    adapter: ModelAdapter | None,
    tasks: Sequence[Task],
    settings: RunSettings,
    *,
    model_info: ModelInfo,
    distributed: Distributed | None = None,
) -> Results | None:
    """Run (or, with ``adapter=None``, only re-score) ``tasks`` and write the run folder.

    Returns the results on rank 0 and ``None`` on the other ranks.
    """
    distributed = distributed or Distributed()
    started = time.perf_counter()
    seed_everything(settings.seed)
    if adapter is not None:
        check_capabilities(adapter, tasks)
        tasks = [
            task.with_prompt(adapter.prompt_templates[task.family]) if task.family in adapter.prompt_templates else task
            for task in tasks
        ]
    prepared = prepare_tasks(tasks, settings, model_info["fingerprint"])
    load_seconds = time.perf_counter() - started
    if distributed.is_main:
        write_json(settings.output_dir / "run.json", _run_record(tasks, settings, model_info))
    cache = PredictionCache(settings.output_dir / "cache", rank=distributed.rank)
    try:
        model_seconds: dict[str, float] = {}
        if adapter is not None:
            model_seconds, outcomes = predict_missing(adapter, prepared, cache, settings, distributed)
        else:
            outcomes = cached_outcomes(prepared, cache, distributed)
        scoring_start = time.perf_counter()
        local = {item.task.name: score_shard(item, outcomes, distributed) for item in prepared}
    finally:
        cache.close()
    gathered = distributed.gather({"scores": local, "model_seconds": model_seconds})
    if not distributed.is_main:
        return None
    assert gathered is not None
    task_results: dict[str, TaskResult] = {}
    for item in prepared:
        result, rows = summarise_task(item, [rank["scores"][item.task.name] for rank in gathered], settings)
        task_results[item.task.name] = result
        write_jsonl(settings.output_dir / "samples" / f"{item.task.name}.jsonl", rows)
    scoring_seconds = time.perf_counter() - scoring_start
    results = Results(
        schema_version=SCHEMA_VERSION,
        harness_version=harness.__version__,
        git_commit=git_commit(),
        seed=settings.seed,
        limit=settings.limit,
        model=model_info,
        tasks=task_results,
        groups=group_means(settings.groups, task_results),
        runtime={
            "command": settings.command,
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "world_size": distributed.world_size,
            "batch_size": settings.batch_size,
            "data_root": str(settings.data_root),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "timings": {
                "total_s": time.perf_counter() - started,
                "load_s": load_seconds,
                "scoring_s": scoring_seconds,
                "model_s": {
                    name: sum(rank["model_seconds"].get(name, 0.0) for rank in gathered) for name in task_results
                },
            },
        },
    )
    write_json(settings.output_dir / "results.json", results)
    return clean_numbers(results)


def _run_record(tasks: Sequence[Task], settings: RunSettings, model_info: ModelInfo) -> dict[str, Any]:
    """What `run_eval.py score` needs to rebuild the run without the model."""
    return {
        "model": model_info,
        "tasks": [task.name for task in tasks],
        "task_args": {task.name: settings.task_args.get(task.name, "") for task in tasks},
        "prompt_templates": {task.name: task.prompt_template for task in tasks},
        "groups": settings.groups,
        "data_root": str(settings.data_root),
        "limit": settings.limit,
        "seed": settings.seed,
        "bootstrap_iters": settings.bootstrap_iters,
    }


__all__ = [
    "PreparedTask",
    "RunSettings",
    "RunStopped",
    "check_capabilities",
    "evaluate",
    "git_commit",
    "prepare_tasks",
]
