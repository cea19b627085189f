"""Exceptions that the CLI turns into one-line messages instead of tracebacks."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """Bad input from the user (flags, files, data). The CLI prints the message and exits with code 2."""


class DataError(UserError):
    """A data or prediction file is missing or malformed; the message names the file and what was expected."""


class SampleError(Exception):
    """One sample cannot be predicted or scored; it is recorded with this message and the run goes on."""


class UnknownNameError(UserError, KeyError):
    """A registry lookup missed; the message suggests close names."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = f" Run `run_eval.py list {kind}s` to see all {len(known)}."
        super().__init__(f"unknown {kind} {name!r}.{hint}{listing}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


__all__ = ["DataError", "SampleError", "UnknownNameError", "UserError"]
