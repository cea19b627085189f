"""The task contract: load samples from a data root, turn each into a request, score with metric objects."""

from __future__ import annotations

import abc
import copy
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.arguments import coerce_arguments, parse_arg_string
from harness.errors import DataError, UnknownNameError, UserError
from harness.metrics.base import Metric
from harness.registry import Registry
from harness.types import Capability, GenerationSettings, Prediction, Request, RequestKind, Sample, to_dict


class Task(abc.ABC):
    """Base of every benchmark task.

    Subclasses set the class attributes, take their options (protocol variants, path overrides) as
    typed keyword arguments passed on to ``super().__init__(name, **options)``, and implement
    `data_files`, `samples`, `metrics` and `reference`.

    Attributes:
        family: benchmark family shared by a task's splits (``"refcoco"``, ``"pope"``, ...).
        kind: the request kind every sample of this task produces.
        requires: adapter capabilities the task needs (e.g. ``masks`` for referring segmentation).
        prompt_template: `str.format` template filled from `Sample.inputs`.
        generation: decoding settings of every request.
    """

    family: ClassVar[str]
    kind: ClassVar[RequestKind]
    requires: ClassVar[frozenset[Capability]] = frozenset({"text"})
    prompt_template: str = "{question}"
    generation: GenerationSettings = GenerationSettings()
    retry_prompts: tuple[str, ...] = ()
    want_probes: bool = False

    def __init__(self, name: str, **options: Any) -> None:
        self.name = name
        self.options: dict[str, Any] = options

    # -- data -----------------------------------------------------------------------------------

    @abc.abstractmethod
    def data_files(self, data_root: Path) -> dict[str, Path]:
        """Annotation files this task reads, by role (e.g. ``{"refs": .../refs(unc).p}``); they are hashed."""

    @abc.abstractmethod
    def samples(self, data_root: Path) -> Sequence[Sample]:
        """All samples in a stable order. Raise `DataError` naming the file and field on malformed data."""

    def missing_files(self, data_root: Path) -> list[Path]:
        """Annotation files that do not exist."""
        return [path for path in self.data_files(data_root).values() if not path.exists()]

    # -- requests -------------------------------------------------------------------------------

    def with_prompt(self, template: str) -> Task:
        """A copy of this task with another prompt template (models may override prompts per family)."""
        clone = copy.copy(self)
        clone.prompt_template = template
        return clone

    def request(self, sample: Sample) -> Request:
        """The request for one sample."""
        try:
            prompt = self.prompt_template.format(**sample.inputs)
        except KeyError as error:
            raise UserError(
                f"prompt template {self.prompt_template!r} of task {self.name!r} uses {error}, "
                f"but samples only provide {sorted(sample.inputs)}"
            ) from None
        return Request(
            task=self.name,
            task_family=self.family,
            sample_id=sample.sample_id,
            kind=self.kind,
            image=sample.image,
            prompt=prompt,
            generation=self.generation,
            retry_prompts=self.retry_prompts,
            want_probes=self.want_probes,
            image_size=sample.image_size,
        )

    @abc.abstractmethod
    def reference(self, sample: Sample) -> Prediction:
        """The prediction that scores perfectly on ``sample`` (served by the ``oracle`` adapter)."""

    # -- scoring --------------------------------------------------------------------------------

    @abc.abstractmethod
    def metrics(self) -> list[Metric]:
        """Fresh metric objects for one evaluation of this task."""

    # -- identity -------------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """Everything that defines this task's requests and scores, as recorded in ``results.json``."""
        return {
            "family": self.family,
            "kind": self.kind,
            "prompt_template": self.prompt_template,
            "retry_prompts": list(self.retry_prompts),
            "generation": to_dict(self.generation),
            "want_probes": self.want_probes,
            "options": {key: str(value) for key, value in sorted(self.options.items())},
            "metrics": [metric.config() for metric in self.metrics()],
        }

    def fingerprint(self, data_hashes: Mapping[str, str]) -> str:
        """sha256 of the prompt template, generation settings and data file hashes.

        Metric options are left out on purpose: changing a protocol re-scores cached predictions
        instead of recomputing them.
        """
        config = self.config()
        payload = {
            "task": self.name,
            "request": {key: config[key] for key in ("kind", "prompt_template", "retry_prompts", "generation")},
            "want_probes": self.want_probes,
            "data": dict(sorted(data_hashes.items())),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------
# Registry and groups
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskGroup:
    """A name that expands to several tasks (or other groups)."""

    members: tuple[str, ...]


def _validate_task(name: str, obj: Any) -> None:
    if isinstance(obj, TaskGroup):
        return
    if not (isinstance(obj, type) and issubclass(obj, Task)):
        raise TypeError(f"task {name!r} must be a Task subclass or a TaskGroup, got {obj!r}")


TASKS: Registry[type[Task] | TaskGroup] = Registry("task", _validate_task, "attreval.tasks", builtins="tasks")


def task_names() -> list[str]:
    """Every registered task and group name."""
    return TASKS.names()


def expand_task_names(spec: str | Iterable[str]) -> list[str]:
    """Expand ``"attreval,refcoco"`` (groups, ``all``) into task names, in order, without duplicates."""
    names = [part.strip() for part in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [name for name in names if name]
    if not names:
        raise UserError("no task given: pass --tasks NAME[,NAME...] (see `run_eval.py list tasks`)")
    result: list[str] = []

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in trail:
            raise UserError(f"task group cycle: {' -> '.join((*trail, name))}")
        if name == "all" and "all" not in TASKS:
            for member in TASKS.names():
                if not isinstance(TASKS.get(member), TaskGroup):
                    visit(member, (*trail, name))
            return
        entry = TASKS.get(name)
        if isinstance(entry, TaskGroup):
            for member in entry.members:
                visit(member, (*trail, name))
        elif name not in result:
            result.append(name)

    for name in names:
        visit(name, ())
    return result


def get_task(name: str, arguments: str | Mapping[str, str] = "") -> Task:
    """Instantiate the registered task ``name`` with ``key=value`` options."""
    entry = TASKS.get(name)
    if isinstance(entry, TaskGroup):
        raise UserError(f"{name!r} is a task group; expand it with expand_task_names first")
    raw = parse_arg_string(arguments, flag="--task-args") if isinstance(arguments, str) else dict(arguments)
    preset = TASKS.kwargs(name)
    fixed = sorted(set(preset) & set(raw))
    if fixed:
        raise UserError(f"task {name!r} fixes {', '.join(fixed)}; it cannot be overridden")
    options = coerce_arguments(entry.__init__, raw, what=f"task {name!r}", skip=("name",))
    return entry(name, **preset, **options)


def split_task_arguments(spec: str, task_names_: Sequence[str], families: Mapping[str, str]) -> dict[str, str]:
    """Route ``--task-args`` items ``TARGET.key=value`` to tasks; TARGET is a task name or a family.

    Returns task name -> its own ``key=value,...`` string.
    """
    routed: dict[str, list[str]] = {name: [] for name in task_names_}
    for key, value in parse_arg_string(spec, flag="--task-args").items():
        target, dot, option = key.rpartition(".")
        if not dot or not target or not option:
            raise UserError(f"--task-args item {key!r} must look like TASK_OR_FAMILY.option=value")
        matched = [name for name in task_names_ if target in (name, families[name])]
        if not matched:
            raise UnknownNameError("task", target, [*task_names_, *set(families.values())])
        for name in matched:
            routed[name].append(f'{option}="{value}"')
    return {name: ",".join(items) for name, items in routed.items()}


def require_data(tasks_: Sequence[Task], data_root: Path) -> None:
    """Raise one `DataError` listing, per task, the annotation files missing under ``data_root``."""
    if not data_root.exists():
        expected = "; ".join(
            f"{task.name}: {', '.join(str(p) for p in task.data_files(data_root).values())}" for task in tasks_
        )
        raise DataError(f"data root {data_root} does not exist (expected {expected})")
    problems = []
    for task in tasks_:
        missing = task.missing_files(data_root)
        if missing:
            problems.append(f"{task.name} needs {', '.join(str(p) for p in missing)}")
    if problems:
        raise DataError(f"missing data under {data_root}: " + "; ".join(problems) + " (see README, 'Data layout')")


__all__ = [
    "TASKS",
    "Task",
    "TaskGroup",
    "expand_task_names",
    "get_task",
    "require_data",
    "split_task_arguments",
    "task_names",
]
