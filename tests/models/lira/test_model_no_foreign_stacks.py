"""LIRA runs on torch + transformers only: no OpenMMLab/xtuner stack, no timm/torchvision, no remote code."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = ("mmcv", "mmdet", "mmengine", "xtuner", "timm", "torchvision")
IMPORT = re.compile(rf"^\s*(?:import|from)\s+({'|'.join(FORBIDDEN)})\b", re.MULTILINE)
DYNAMIC_IMPORT = re.compile(rf"""(?:import_module|__import__)\(\s*["']({"|".join(FORBIDDEN)})\b""")
REMOTE_CODE = re.compile(r"trust_remote_code\s*=\s*True")


def python_files() -> list[Path]:
    skip = {".git", ".venv", "venv", "data", "runs", "node_modules", "__pycache__"}
    this = Path(__file__).resolve()  # holds the patterns' own examples
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts) and p != this]


def test_no_forbidden_import_or_remote_code_in_the_source_tree() -> None:
    files = python_files()
    assert any(p.name == "model.py" and p.parent.name == "lira" for p in files)  # the walk sees the sources
    offenders = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for pattern in (IMPORT, DYNAMIC_IMPORT, REMOTE_CODE):
            offenders += [f"{path.relative_to(ROOT)}: {m.group(0).strip()}" for m in pattern.finditer(text)]
    assert offenders == []


def test_the_patterns_catch_what_they_must() -> None:
    assert IMPORT.search("import mmcv.ops\n") and IMPORT.search("    from torchvision import transforms\n")
    assert not IMPORT.search("import timmy\n") and not IMPORT.search("# no mmdet here\n")
    assert DYNAMIC_IMPORT.search('importlib.import_module("xtuner.model")')
    assert REMOTE_CODE.search("AutoModel.from_pretrained(p, trust_remote_code = True)")


def test_no_forbidden_dependency_declared() -> None:
    declared = (ROOT / "pyproject.toml").read_text()
    assert not [name for name in FORBIDDEN if re.search(rf'"{name}\b', declared)]


def test_loading_the_model_imports_none_of_them() -> None:
    import models.lira.checkpoint.lira
    import models.lira.model  # noqa: F401

    assert sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN) == []
