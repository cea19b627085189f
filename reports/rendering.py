"""The jinja2 environment shared by the HTML pages: autoescaping on, CSS and JavaScript inlined."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

PACKAGE = Path(__file__).parent


@cache
def environment() -> Environment:
    """Templates from ``reports/templates``; every ``{{ value }}`` is HTML-escaped."""
    return Environment(
        loader=FileSystemLoader(PACKAGE / "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "j2"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def static(name: str) -> Markup:
    """A file of ``reports/static`` to inline in a page (our own CSS or JavaScript, trusted)."""
    text = (PACKAGE / "static" / name).read_text(encoding="utf-8")
    if "</" + "script" in text.lower() or "</" + "style" in text.lower():
        raise ValueError(f"static file {name} must not contain a closing script or style tag")
    return Markup(text)


__all__ = ["environment", "static"]
