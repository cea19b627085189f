"""Parsing ``key=value,...`` argument strings and coercing them to a constructor's annotated types."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union

from harness.errors import UserError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_arg_string(text: str, *, flag: str = "--model-args") -> dict[str, str]:
    """Split ``"k=v,k2=v2"`` into a dict. Values may be double-quoted to contain commas or '='.

    Raises:
        UserError: an item without ``=``, an empty key, a duplicate key or an unclosed quote.
    """
    result: dict[str, str] = {}
    if not text.strip():
        return result
    items: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
            continue
        if char == "," and not quoted:
            items.append("".join(current))
            current = []
            continue
        current.append(char)
    if quoted:
        raise UserError(f"malformed {flag} {text!r}: a double quote is not closed")
    items.append("".join(current))
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"malformed {flag} {text!r}: expected key=value pairs separated by commas, got {item!r}")
        if key in result:
            raise UserError(f"malformed {flag} {text!r}: {key!r} is given twice")
        result[key] = value.strip()
    return result


def _coerce(value: str, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if value.lower() in {"none", "null", ""} and len(options) < len(typing.get_args(annotation)):
            return None
        errors = []
        for option in options:
            try:
                return _coerce(value, option, where)
            except UserError as error:
                errors.append(str(error))
        raise UserError(errors[0] if len(errors) == 1 else f"{where}: cannot read {value!r} as {annotation}")
    if origin is Literal:
        choices = typing.get_args(annotation)
        for choice in choices:
            if str(choice) == value:
                return choice
        raise UserError(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}")
    if origin in (tuple, list):
        parts = tuple(part.strip() for part in value.split(";") if part.strip())
        inner = typing.get_args(annotation)[:1] or (str,)
        return type(parts)(_coerce(part, inner[0], where) for part in parts)
    if annotation is bool:
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise UserError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float):
        try:
            return annotation(value)
        except ValueError:
            raise UserError(f"{where}: expected {annotation.__name__}, got {value!r}") from None
    if annotation is Path:
        return Path(value)
    if annotation in (str, Any, inspect.Parameter.empty):
        return value
    raise UserError(f"{where}: values of type {annotation} cannot be given on the command line")


def coerce_arguments(
    target: Callable[..., Any], raw: dict[str, str], *, what: str, skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Convert string values to the types annotated on ``target``'s keyword parameters.

    Raises:
        UserError: naming an unknown key (with the accepted keys) or a value of the wrong type.
    """
    hints = typing.get_type_hints(target)
    parameters = {
        name: parameter
        for name, parameter in inspect.signature(target).parameters.items()
        if name not in ("self", *skip)
        and parameter.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }
    coerced: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in parameters:
            accepted = ", ".join(sorted(parameters)) or "none"
            raise UserError(f"unknown argument {key!r} for {what}; accepted: {accepted}")
        coerced[key] = _coerce(value, hints.get(key, str), f"{what} argument {key!r}")
    return coerced


__all__ = ["coerce_arguments", "parse_arg_string"]
