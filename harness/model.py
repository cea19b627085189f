"""The model adapter contract: a list of requests in, one prediction per request out."""

from __future__ import annotations

import abc
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.arguments import coerce_arguments, parse_arg_string
from harness.errors import UserError
from harness.registry import Registry
from harness.types import Capability, Prediction, Request, RequestKind


class ModelAdapter(abc.ABC):
    """Base of every model adapter.

    Subclasses declare what they can serve, take their options as typed keyword arguments and pass
    them on to ``super().__init__(**options)`` so they enter the fingerprint, and implement `predict`.
    Batching is the adapter's business: `predict` may receive any number of requests.

    Attributes:
        capabilities: what predictions can carry (``text``, ``masks``, ``probes``, ``reference``).
        request_kinds: the request kinds this adapter answers; other tasks are refused up front.
        preferred_batch_size: batch size used when the user gives none.
        prompt_templates: task family -> prompt template that replaces the task's default.
    """

    capabilities: ClassVar[frozenset[Capability]] = frozenset({"text"})
    request_kinds: ClassVar[frozenset[RequestKind]] = frozenset()
    preferred_batch_size: int = 1
    prompt_templates: ClassVar[Mapping[str, str]] = {}

    def __init__(self, **options: Any) -> None:
        self.name: str = type(self).__name__
        self.options: dict[str, Any] = options

    @classmethod
    def from_arguments(
        cls,
        arguments: str | Mapping[str, str] = "",
        *,
        preset: Mapping[str, Any] | None = None,
        label: str | None = None,
    ) -> ModelAdapter:
        """Build the adapter from a ``--model-args`` string (or mapping of strings) on top of ``preset``.

        Raises:
            UserError: malformed arguments, an unknown key, a wrong type, or a key the preset fixes.
        """
        what = f"model {label or cls.__name__!r}"
        raw = parse_arg_string(arguments) if isinstance(arguments, str) else dict(arguments)
        preset = dict(preset or {})
        fixed = sorted(set(preset) & set(raw))
        if fixed:
            raise UserError(f"{what} fixes {', '.join(fixed)}; it cannot be overridden")
        return cls(**preset, **coerce_arguments(cls.__init__, raw, what=what))

    @abc.abstractmethod
    def predict(self, requests: Sequence[Request]) -> list[Prediction]:
        """Answer ``requests`` in order; raise on failure (the runner then retries one by one)."""

    def weight_files(self) -> list[Path]:
        """Files whose contents determine the predictions (hashed into the fingerprint)."""
        return []

    def fingerprint(self) -> str:
        """sha256 of the adapter class, its name, its options and the identities of its weight files."""
        payload = {
            "adapter": f"{type(self).__module__}.{type(self).__qualname__}",
            "name": self.name,
            "options": {key: str(value) for key, value in sorted(self.options.items())},
            "weights": [file_identity(path) for path in self.weight_files()],
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def file_identity(path: Path, chunk: int = 1 << 20) -> dict[str, Any]:
    """A cheap, content-based identity of a (possibly huge) file: size and sha256 of its first and last MiB."""
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        digest.update(handle.read(chunk))
        if size > chunk:
            handle.seek(max(chunk, size - chunk))
            digest.update(handle.read(chunk))
    return {"name": path.name, "size": size, "sha256_ends": digest.hexdigest()}


def _validate_adapter(name: str, obj: Any) -> None:
    if not (isinstance(obj, type) and issubclass(obj, ModelAdapter)):
        raise TypeError(f"model {name!r} must be a ModelAdapter subclass, got {obj!r}")


MODELS: Registry[type[ModelAdapter]] = Registry("model", _validate_adapter, "attreval.models", builtins="models")


def register_model(name: str) -> Any:
    """Class decorator registering a `ModelAdapter` subclass under ``name``."""
    return MODELS.register(name)


def get_model(name: str, arguments: str | Mapping[str, str] = "") -> ModelAdapter:
    """Instantiate the registered adapter ``name`` with ``--model-args``-style arguments."""
    adapter = MODELS.get(name).from_arguments(arguments, preset=MODELS.kwargs(name), label=name)
    adapter.name = name
    return adapter


__all__ = ["MODELS", "ModelAdapter", "file_identity", "get_model", "register_model"]
