"""Name -> object registries with lazy ``"module:attr"`` entries and entry-point plugins.

Built-in models and tasks are declared as lazy entries in one manifest per kind (`models/__init__.py`,
`tasks/__init__.py`), so heavy modules are imported only when selected. Third-party packages add
entries through the entry-point groups ``attreval.models`` and ``attreval.tasks`` without editing
this code.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from harness.errors import UnknownNameError, UserError

T = TypeVar("T")


@dataclass(frozen=True)
class LazyEntry:
    """A registry entry imported on first use: ``target`` is ``"package.module:attribute"``."""

    target: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        module_name, _, attribute = self.target.partition(":")
        if not attribute:
            raise ValueError(f"lazy entry {self.target!r} must look like 'package.module:attribute'")
        module = importlib.import_module(module_name)
        return getattr(module, attribute)


class Registry(Generic[T]):
    """A named collection of objects of one kind.

    Args:
        kind: what the registry holds, used in messages (``"model"``, ``"task"``).
        validate: called on every object at registration and after lazy loading; raises on a wrong type.
        entry_point_group: plugin group scanned once, on first lookup.
        builtins: module whose import registers the built-in manifest, imported on first lookup.
    """

    def __init__(
        self,
        kind: str,
        validate: Callable[[str, Any], None],
        entry_point_group: str | None = None,
        builtins: str | None = None,
    ) -> None:
        self.kind = kind
        self._validate = validate
        self._group = entry_point_group
        self._entries: dict[str, T | LazyEntry] = {}
        self._origins: dict[str, str] = {}
        self._builtins = builtins
        self._plugins_loaded = False

    def register(self, name: str, obj: T | None = None) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator."""
        if obj is None:

            def decorator(target: T) -> T:
                self.register(name, target)
                return target

            return decorator
        self._validate(name, obj)
        self._add(name, obj, origin=f"{getattr(obj, '__module__', '?')}")
        return obj

    def register_lazy(self, name: str, target: str, **kwargs: Any) -> None:
        """Register a ``"module:attr"`` placeholder, imported on first `get`."""
        self._add(name, LazyEntry(target, kwargs), origin=target)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (e.g. a test's temporary registration)."""
        self._load_plugins()
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self._entries)
        del self._entries[name], self._origins[name]

    def _add(self, name: str, entry: T | LazyEntry, origin: str) -> None:
        if name in self._entries:
            raise ValueError(
                f"{self.kind} {name!r} is already registered (from {self._origins[name]}); "
                f"cannot register it again from {origin}"
            )
        self._entries[name] = entry
        self._origins[name] = origin

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        if self._builtins is not None:
            importlib.import_module(self._builtins)
        if self._group is None:
            return
        for point in entry_points(group=self._group):
            if point.name in self._entries:
                raise UserError(
                    f"plugin {point.value!r} registers {self.kind} {point.name!r}, which already exists "
                    f"(from {self._origins[point.name]})"
                )
            self._add(point.name, LazyEntry(point.value), origin=f"entry point {point.value}")

    def get(self, name: str) -> T:
        """The object registered under ``name``; raises `UnknownNameError` with suggestions on a miss."""
        self._load_plugins()
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self._entries)
        entry = self._entries[name]
        if isinstance(entry, LazyEntry):
            loaded = entry.load()
            self._validate(name, loaded)
            return loaded
        return entry

    def kwargs(self, name: str) -> dict[str, Any]:
        """Constructor arguments stored with a lazy entry (empty for direct registrations)."""
        self._load_plugins()
        entry = self._entries.get(name)
        return dict(entry.kwargs) if isinstance(entry, LazyEntry) else {}

    def origin(self, name: str) -> str:
        """Where ``name`` was registered from."""
        self._load_plugins()
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self._entries)
        return self._origins[name]

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


__all__ = ["LazyEntry", "Registry"]
