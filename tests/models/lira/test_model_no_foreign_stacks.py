"""LIRA runs on torch + transformers only: no OpenMMLab/xtuner stack, no timm/torchvision, no remote code.

The source tree is parsed (not grepped as text), so that docstrings that *mention* these names do not count and
every real `import`, `importlib.import_module(...)` / `__import__(...)` and `trust_remote_code=...` call does.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FORBIDDEN = frozenset({"mmcv", "mmdet", "mmengine", "xtuner", "timm", "torchvision"})


def python_files() -> list[Path]:
    skip = {".git", ".venv", "venv", "data", "runs", "node_modules", "__pycache__"}
    return [p for p in ROOT.rglob("*.py") if not skip & set(p.relative_to(ROOT).parts)]


def offences(source: str) -> list[str]:
    """Forbidden imports and remote-code switches in one module's code."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in FORBIDDEN]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in FORBIDDEN:
            found.append(f"from {node.module} import ...")
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            first = node.args[0] if node.args else None
            if (
                name in ("import_module", "__import__")
                and isinstance(first, ast.Constant)
                and str(first.value).split(".")[0] in FORBIDDEN
            ):
                found.append(f"{name}({first.value!r})")
            for keyword in node.keywords:
                is_false = isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                if keyword.arg == "trust_remote_code" and not is_false:
                    found.append(f"{name}(trust_remote_code=...)")
    return found


def test_the_checker_catches_what_it_must() -> None:
    code = (
        '"""Docs may say mmcv and trust_remote_code=True."""\n'
        "import mmcv.ops\n"
        "from torchvision import transforms\n"
        "import timmy\n"
        "importlib.import_module('xtuner.model')\n"
        "AutoModel.from_pretrained(path, trust_remote_code=True)\n"
        "AutoModel.from_pretrained(path, trust_remote_code=False)\n"
        "def f():\n    import mmdet\n"
    )
    assert offences(code) == [
        "import mmcv.ops",
        "from torchvision import ...",
        "import_module('xtuner.model')",
        "from_pretrained(trust_remote_code=...)",
        "import mmdet",
    ]


def test_no_forbidden_import_or_remote_code_in_the_source_tree() -> None:
    files = python_files()
    assert ROOT / "models" / "lira" / "model.py" in files  # the walk sees the sources
    found = [f"{p.relative_to(ROOT)}: {o}" for p in files for o in offences(p.read_text(encoding="utf-8"))]
    assert found == []


def test_no_forbidden_dependency_declared() -> None:
    declared = (ROOT / "pyproject.toml").read_text()
    assert not [name for name in FORBIDDEN if re.search(rf'"{name}\b', declared)]


def test_loading_the_model_imports_none_of_them() -> None:
    import models.lira.checkpoint.lira
    import models.lira.model  # noqa: F401

    assert sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN) == []
