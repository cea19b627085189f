"""A strict little HTML reader for tests: every non-void element must be closed in order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str | None]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text() for child in self.children)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str, **attrs: str) -> list[Node]:
        wanted = {key.rstrip("_").replace("_", "-"): value for key, value in attrs.items()}
        return [
            node
            for node in self.iter()
            if node.tag == tag and all(node.attrs.get(key) == value for key, value in wanted.items())
        ]

    def find(self, tag: str, **attrs: str) -> Node:
        found = self.find_all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]

    def rows(self) -> list[list[str]]:
        """Cell texts of every ``tr`` under this node (a table)."""
        return [
            [cell.text().strip() for cell in row.children if isinstance(cell, Node) and cell.tag in ("td", "th")]
            for row in self.find_all("tr")
        ]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, dict(attrs))
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        open_tag = self.stack[-1].tag
        assert open_tag == tag, f"</{tag}> closes <{open_tag}> (line {self.getpos()[0]})"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(text: str) -> Node:
    """Parse ``text``; AssertionError when an element is closed out of order or left open."""
    builder = _Builder()
    builder.feed(text)
    builder.close()
    assert len(builder.stack) == 1, f"unclosed elements: {[node.tag for node in builder.stack[1:]]}"
    return builder.root


def read_script_call(path: Path, function: str) -> list[Any]:
    """The JSON arguments of a data script ``function(arg, ...);`` written by the report."""
    text = path.read_text(encoding="utf-8").strip()
    assert text.startswith(function + "(") and text.endswith(");"), f"{path} is not a {function}(...) call"
    return json.loads("[" + text[len(function) + 1 : -2] + "]")


__all__ = ["Node", "parse", "read_script_call"]
