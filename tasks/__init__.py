"""Benchmark tasks. Built-ins are declared here as lazy entries; plugins use the ``attreval.tasks`` group.

Tasks: ``refcoco_{val,testA,testB}``, ``refcoco+_{val,testA,testB}``, ``refcocog_{val,test}``,
``gcg_{val,test}``, ``pope_{random,popular,adversarial}`` and their ``pope_aokvqa_*`` / ``pope_gqa_*``
variants, ``chair``, ``attreval_qa`` and ``attreval_seg`` (built by `dataset_builders.attreval`),
``attreval_qa_lira`` (LIRA's released questions). Groups: ``refcoco``, ``refcoco+``, ``refcocog``, ``gcg``,
``pope`` (COCO), ``pope_aokvqa``, ``pope_gqa``, ``attreval``. Where each task's files live: `tasks.layout`
and the README.
"""

from __future__ import annotations

import fcntl
import sys
from pathlib import Path

from harness.task import TASKS, TaskGroup

POPE_SETTINGS = ("random", "popular", "adversarial")


def _register_builtins() -> None:
    for dataset, splits in (
        ("refcoco", ("val", "testA", "testB")),
        ("refcoco+", ("val", "testA", "testB")),
        ("refcocog", ("val", "test")),
    ):
        for split in splits:
            TASKS.register_lazy(
                f"{dataset}_{split}", "tasks.refcoco:ReferringSegmentationTask", dataset=dataset, split=split
            )
        TASKS.register(dataset, TaskGroup(tuple(f"{dataset}_{split}" for split in splits)))
    for split in ("val", "test"):
        TASKS.register_lazy(f"gcg_{split}", "tasks.gcg:GcgTask", split=split)
    TASKS.register("gcg", TaskGroup(("gcg_val", "gcg_test")))
    for source, prefix in (("coco", "pope"), ("aokvqa", "pope_aokvqa"), ("gqa", "pope_gqa")):
        for setting in POPE_SETTINGS:
            TASKS.register_lazy(f"{prefix}_{setting}", "tasks.pope:PopeTask", source=source, setting=setting)
        TASKS.register(prefix, TaskGroup(tuple(f"{prefix}_{setting}" for setting in POPE_SETTINGS)))
    TASKS.register_lazy("chair", "tasks.chair:ChairTask")
    TASKS.register_lazy("attreval_qa", "tasks.attreval:BuiltAttrEvalQATask")
    TASKS.register_lazy("attreval_seg", "tasks.attreval:AttrEvalSegTask")
    TASKS.register("attreval", TaskGroup(("attreval_qa", "attreval_seg")))
    TASKS.register_lazy("attreval_qa_lira", "tasks.attreval:AttrEvalQATask")


_register_builtins()


def ensure_default_data_root(path: Path) -> Path:
    """The data root used when ``--data-root`` is not given: the bundled mini benchmark.

    Builds it (a few seconds) when the folder is missing, and rebuilds a folder this builder made when
    its build stamp no longer matches the committed annotations. A folder without a stamp is the
    user's own and is left alone. A file lock beside the folder makes concurrent callers (torchrun
    ranks) build it once.
    """
    from dataset_builders.mini import build, is_current

    if path.exists() and is_current(path) is not False:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path.exists() and is_current(path) is not False):  # another process may have built it
            print(f"building the bundled mini benchmark into {path} ...", file=sys.stderr)
            build(path)
    return path


__all__ = ["POPE_SETTINGS", "ensure_default_data_root"]
