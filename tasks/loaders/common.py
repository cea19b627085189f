"""Readers shared by the task loaders: safe pickles, JSON / JSON Lines, field checks, image paths, memoisation.

Every reader raises `harness.errors.DataError` naming the file, the record and what was expected.
"""

from __future__ import annotations

import io
import json
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from harness.errors import DataError
from harness.results import read_json

T = TypeVar("T")

_KIND_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    list: "a list",
    dict: "an object",
    bool: "a boolean",
}


def describe_kinds(kinds: type | tuple[type, ...]) -> str:
    """``(int, str)`` -> ``"an integer or a string"``."""
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(_KIND_NAMES.get(kind, kind.__name__) for kind in kinds)


def _matches(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in kinds:
        return False  # True is an int to Python, never to a data file
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


def field(record: Any, name: str, kinds: type | tuple[type, ...], where: str) -> Any:
    """``record[name]``, checked to be of ``kinds``; `DataError` names ``where`` and what was expected."""
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if name not in record:
        raise DataError(f"{where}: missing field {name!r} (expected {describe_kinds(kinds)})")
    value = record[name]
    if not _matches(value, kinds):
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        raise DataError(f"{where}: field {name!r} must be {describe_kinds(kinds)}, got {type(value).__name__} {shown}")
    return value


def list_field(record: Any, name: str, where: str) -> list[Any]:
    """``record[name]`` checked to be a list."""
    return field(record, name, list, where)


def read_json_object(path: Path, what: str, keys: Sequence[str] = ()) -> dict[str, Any]:
    """A JSON file whose top level is an object holding ``keys`` (each a list)."""
    data = read_json(path, what)
    if not isinstance(data, dict):
        raise DataError(f"{what} {path}: expected a JSON object at the top level, got {type(data).__name__}")
    for key in keys:
        list_field(data, key, f"{what} {path}")
    return data


def read_values(path: Path, what: str) -> list[tuple[str, Any]]:
    """Values of a JSON array or a JSON Lines file, each with its location (``"line 3"`` / ``"item 3"``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{what} {path} cannot be read: {error}") from None
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{what} {path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
            ) from None
        return [(f"item {number}", item) for number, item in enumerate(items, start=1)]
    values = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as error:
            raise DataError(f"{what} {path} line {number} is not valid JSON ({error.msg})") from None
    return values


def read_records(path: Path, what: str) -> list[tuple[str, dict[str, Any]]]:
    """Objects of a JSON Lines file or a JSON array (POPE ships both under ``.json``), in file order, each
    with its location for messages."""
    records = []
    for location, row in read_values(path, what):
        if not isinstance(row, dict):
            raise DataError(f"{what} {path} {location}: expected a JSON object, got {type(row).__name__}")
        records.append((location, row))
    return records


# ---------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------

_ALLOWED_GLOBALS = {("builtins", "set"), ("builtins", "frozenset")}


class PlainUnpickler(pickle.Unpickler):
    """Unpickles only plain containers, strings and numbers; any other global is refused.

    Pickles rebuild objects by importing callables (``find_class``); a REFER pickle needs none, so
    a pickle that names one is refused before anything is called.
    """

    def __init__(self, stream: io.BufferedIOBase, path: Path) -> None:
        super().__init__(stream, encoding="utf-8")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise DataError(
            f"pickle {self.path} tries to import {module}.{name}; refused: refs pickles may hold only "
            "plain containers (list, dict, tuple, set), strings and numbers"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"pickle {self.path} uses persistent ids; refused: expected plain data only")


def load_plain_pickle(path: Path, what: str) -> Any:
    """Load a pickle of plain data through `PlainUnpickler`; `DataError` for anything else."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            return PlainUnpickler(stream, path).load()
    except FileNotFoundError:
        raise DataError(f"{what} {path} does not exist") from None
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as error:
        reason = "it ends early (truncated?)" if isinstance(error, EOFError) else f"{type(error).__name__}: {error}"
        raise DataError(f"{what} {path} is not a readable pickle: {reason}") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{what} {path} holds a byte string that is not UTF-8 text: {error}") from None
    except OSError as error:
        raise DataError(f"{what} {path} cannot be read: {error}") from None


# ---------------------------------------------------------------------------
# Memoisation of parsed files (RefCOCO's three splits share one pickle and one instances file)
# ---------------------------------------------------------------------------

_MEMO: dict[tuple[str, str, int, int], Any] = {}
_MEMO_LIMIT = 8


def memoised(kind: str, path: Path, load: Callable[[Path], T]) -> T:
    """``load(path)``, reused while the file's size and modification time are unchanged."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        return load(path)
    key = (kind, str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _MEMO:
        if len(_MEMO) >= _MEMO_LIMIT:
            _MEMO.pop(next(iter(_MEMO)))
        _MEMO[key] = load(path)
    return _MEMO[key]


# ---------------------------------------------------------------------------
# Image paths
# ---------------------------------------------------------------------------


def resolve_image(given: str, bases: Sequence[Path]) -> str:
    """The first of ``base / given`` that exists (``given`` as is when absolute), else under the first base.

    A missing image is not an error here: the runner records that sample as failed and goes on.
    """
    cleaned = given[2:] if given.startswith("./") else given
    candidate = Path(cleaned)
    if candidate.is_absolute():
        return str(candidate)
    for base in bases:
        if (base / candidate).is_file():
            return str(base / candidate)
    return str(bases[0] / candidate)


__all__ = [
    "PlainUnpickler",
    "describe_kinds",
    "field",
    "list_field",
    "load_plain_pickle",
    "memoised",
    "read_json_object",
    "read_records",
    "read_values",
    "resolve_image",
]
