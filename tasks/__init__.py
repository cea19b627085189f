"""Benchmark tasks. Built-ins are declared here as lazy entries; plugins use the ``attreval.tasks`` group."""

from __future__ import annotations

import sys
from pathlib import Path

from harness.task import TASKS, TaskGroup

_REFER = "tasks.refcoco:ReferringSegmentationTask"
for _dataset, _splits in (
    ("refcoco", ("val", "testA", "testB")),
    ("refcoco+", ("val", "testA", "testB")),
    ("refcocog", ("val", "test")),
):
    for _split in _splits:
        TASKS.register_lazy(f"{_dataset}_{_split}", _REFER, dataset=_dataset, split=_split)
    TASKS.register(_dataset, TaskGroup(tuple(f"{_dataset}_{split}" for split in _splits)))

for _split in ("val", "test"):
    TASKS.register_lazy(f"gcg_{_split}", "tasks.gcg:GcgTask", split=_split)
TASKS.register("gcg", TaskGroup(("gcg_val", "gcg_test")))

_SETTINGS = ("random", "popular", "adversarial")
for _source, _prefix in (("coco", "pope"), ("aokvqa", "pope_aokvqa"), ("gqa", "pope_gqa")):
    for _setting in _SETTINGS:
        TASKS.register_lazy(f"{_prefix}_{_setting}", "tasks.pope:PopeTask", source=_source, setting=_setting)
    TASKS.register(_prefix, TaskGroup(tuple(f"{_prefix}_{setting}" for setting in _SETTINGS)))

TASKS.register_lazy("chair", "tasks.chair:ChairTask")
TASKS.register_lazy("attreval_qa", "tasks.attreval:AttrEvalQATask")


def ensure_default_data_root(path: Path) -> Path:
    """The data root used when ``--data-root`` is not given: the bundled mini benchmark.

    Builds it (a few seconds) when the folder is missing, and rebuilds a folder this builder made when
    its build stamp no longer matches the committed annotations. A folder without a stamp is the
    user's own and is left alone.
    """
    from dataset_builders.mini import build, is_current

    if path.exists() and is_current(path) is not False:
        return path
    print(f"building the bundled mini benchmark into {path} ...", file=sys.stderr)
    build(path)
    return path


__all__ = ["ensure_default_data_root"]
