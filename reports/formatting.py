"""Small shared helpers: number formatting, safe file names, JSON that is safe inside HTML and scripts."""

from __future__ import annotations

import json
import re
from typing import Any

SCALE = 100.0
"""Reports show every value of ``results.json`` multiplied by 100 (fractions become percentages)."""


def scaled(value: float | None) -> float | None:
    """``value`` on the display scale, ``None`` when undefined."""
    return None if value is None else SCALE * value


def percent(value: float | None, digits: int = 2) -> str:
    """A results value as shown in tables: ``0.8312`` -> ``"83.12"``; ``None`` -> ``"n/a"``."""
    return "n/a" if value is None else f"{SCALE * value:.{digits}f}"


def sample_number(value: float | None) -> str:
    """A per-sample value as stored in its record (not rescaled): integers stay integers."""
    if value is None:
        return ""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.3f}"


def slugify(name: str, taken: set[str]) -> str:
    """A file-name-safe, unique version of ``name`` (``refcoco+_val`` -> ``refcoco_val``, then ``..._2``)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "task"
    slug, number = base, 2
    while slug.lower() in taken:
        slug, number = f"{base}_{number}", number + 1
    taken.add(slug.lower())
    return slug


_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def safe_json(value: Any) -> str:
    """JSON that can sit inside an HTML ``<script>`` element or a script file without ending it early.

    ``<``, ``>`` and ``&`` become ``\\u`` escapes, so model text such as ``</script><img onerror=...>``
    stays a JSON string and is later inserted into the page as text only.
    """
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda match: _UNSAFE[match.group()], text)


def normalised_name(name: str) -> str:
    """Lower-case letters and digits only: ``"CHAIR_i"`` -> ``"chairi"``, ``"gIoU"`` -> ``"giou"``."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


__all__ = ["SCALE", "normalised_name", "percent", "safe_json", "sample_number", "scaled", "slugify"]
