from pathlib import Path
from typing import Literal

import pytest

from harness.arguments import coerce_arguments, parse_arg_string
from harness.errors import UserError


def test_parse_plain_and_quoted_values():
    assert parse_arg_string("a=1, b = two ,c=") == {"a": "1", "b": "two", "c": ""}
    assert parse_arg_string('caption="a cat, a dog",x=y=z') == {"caption": "a cat, a dog", "x": "y=z"}
    assert parse_arg_string("  ") == {}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("answer", "expected key=value"), ("=3", "expected key=value"), ("a=1,a=2", "given twice"), ('a="x', "quote")],
)
def test_malformed_argument_strings_name_the_problem(text, fragment):
    with pytest.raises(UserError, match=fragment):
        parse_arg_string(text)


def _target(
    count: int = 1,
    scale: float = 1.0,
    flag: bool = False,
    mode: Literal["a", "b"] = "a",
    path: Path | None = None,
    words: tuple[str, ...] = (),
) -> None: ...


def test_coercion_follows_annotations():
    raw = {"count": "3", "scale": "0.5", "flag": "true", "mode": "b", "path": "x/y", "words": "red; blue"}
    assert coerce_arguments(_target, raw, what="t") == {
        "count": 3,
        "scale": 0.5,
        "flag": True,
        "mode": "b",
        "path": Path("x/y"),
        "words": ("red", "blue"),
    }
    assert coerce_arguments(_target, {"path": "none"}, what="t") == {"path": None}


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ({"count": "three"}, "expected int"),
        ({"flag": "maybe"}, "expected true or false"),
        ({"mode": "c"}, "not one of a, b"),
        ({"colour": "red"}, "unknown argument 'colour'.*accepted: count, flag, mode, path, scale, words"),
    ],
)
def test_coercion_errors_name_the_argument(raw, fragment):
    with pytest.raises(UserError, match=fragment):
        coerce_arguments(_target, raw, what="model 'x'")
