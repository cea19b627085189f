"""Golden results for CI: rerun deterministic evaluations and compare them with committed results.

The cases are listed in ``tests/golden/cases.json`` as ``{"cases": [{"name": ..., "args": [...]}]}``,
``args`` being ``run_eval.py run`` arguments (model, tasks, options; the output folder is added).
Each case's golden file ``tests/golden/<name>.json`` holds ``{"case": ..., "results": ...}``, the
results being ``harness.results.comparable(results.json)`` without ``git_commit`` (which changes with
every commit while the numbers must not). Any difference is a failure; regenerating is deliberate::

    python -m reports.golden regenerate [--only NAME ...]   # make golden: rewrite the golden files
    python -m reports.golden check [--only NAME ...]        # rerun and list every difference
    python -m reports.golden make-replay RUN_DIR OUT.jsonl  # derive replay predictions from a run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import harness
from harness import masks
from harness.errors import DataError
from harness.results import comparable, read_json, write_json
from reports.rundata import load_run

GOLDEN_DIR = Path("tests/golden")
NOT_COMPARED = ("git_commit",)
"""Top-level results keys left out of golden files besides `harness.results.VOLATILE_KEYS`."""


class GoldenError(RuntimeError):
    """A golden case could not be run."""


@dataclass(frozen=True)
class GoldenCase:
    """One deterministic evaluation: ``run_eval.py run ARGS``."""

    name: str
    args: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "args": list(self.args)}


def load_cases(path: Path) -> list[GoldenCase]:
    """Read the case list; `DataError` names the file and the entry that is malformed."""
    data = read_json(path, "golden case list")
    entries = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise DataError(f"golden case list {path}: expected {{'cases': [...]}}")
    cases = []
    for number, entry in enumerate(entries):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("name"), str)
            and entry["name"].replace("-", "").replace("_", "").isalnum()
            and isinstance(entry.get("args"), list)
            and all(isinstance(arg, str) for arg in entry["args"])
        ):
            raise DataError(f"golden case list {path}: case {number} needs a plain 'name' and a list of string 'args'")
        cases.append(GoldenCase(entry["name"], tuple(entry["args"])))
    names = [case.name for case in cases]
    if len(set(names)) != len(names):
        raise DataError(f"golden case list {path}: case names repeat: {names}")
    return cases


def normalise(results: dict[str, Any]) -> dict[str, Any]:
    """What a golden file stores and compares of a ``results.json``."""
    return {key: value for key, value in comparable(results).items() if key not in NOT_COMPARED}


def run_case(case: GoldenCase, output_dir: Path) -> dict[str, Any]:
    """Run ``case`` with the CLI, in a fresh process, into ``output_dir``; returns its normalised results.

    A separate process keeps the case independent of whatever the calling process registered.
    """
    command = [sys.executable, str(Path(harness.__file__).resolve().parent.parent / "run_eval.py"), "run"]
    command += [*case.args, "--output-dir", str(output_dir), "--no-progress"]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        raise GoldenError(
            f"golden case {case.name!r} failed: run_eval.py run {' '.join(case.args)} exited "
            f"{finished.returncode}:\n" + (finished.stdout + finished.stderr)[-2000:]
        )
    return normalise(read_json(output_dir / "results.json", "results file"))


def golden_path(case: GoldenCase, golden_dir: Path = GOLDEN_DIR) -> Path:
    return golden_dir / f"{case.name}.json"


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Every place where ``actual`` differs from ``expected`` (numbers compared exactly)."""
    where = path or "(top)"
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in expected:
            inner = f"{path}.{key}" if path else str(key)
            if key not in actual:
                found.append(f"{inner}: missing (expected {_short(expected[key])})")
            else:
                found += differences(expected[key], actual[key], inner)
        extra = [key for key in actual if key not in expected]
        found += [f"{path}.{key}: unexpected" if path else f"{key}: unexpected" for key in extra]
        return found
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: {len(actual)} items, expected {len(expected)}"]
        pairs = enumerate(zip(expected, actual, strict=True))
        return [item for n, (a, b) in pairs for item in differences(a, b, f"{path}[{n}]")]
    if type(expected) is not type(actual) or expected != actual:
        return [f"{where}: {_short(actual)}, expected {_short(expected)}"]
    return []


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def regenerate(cases: Sequence[GoldenCase], golden_dir: Path = GOLDEN_DIR) -> list[Path]:
    """Rerun every case and (re)write its golden file."""
    written = []
    with tempfile.TemporaryDirectory(prefix="attreval-golden-") as work:
        for case in cases:
            results = run_case(case, Path(work) / case.name)
            path = golden_path(case, golden_dir)
            write_json(path, {"case": case.to_dict(), "results": results})
            written.append(path)
    return written


def check(case: GoldenCase, golden_dir: Path = GOLDEN_DIR, work_dir: Path | None = None) -> list[str]:
    """Rerun ``case`` and list its differences from the golden file (empty: identical)."""
    path = golden_path(case, golden_dir)
    golden = read_json(path, "golden file")
    if golden.get("case") != case.to_dict():
        return [f"{path}: recorded for {golden.get('case')}, but the case is now {case.to_dict()}; run `make golden`"]
    with tempfile.TemporaryDirectory(prefix="attreval-golden-", dir=work_dir) as work:
        return differences(golden["results"], run_case(case, Path(work) / case.name))


# ---------------------------------------------------------------------------
# Replay predictions derived from a run
# ---------------------------------------------------------------------------


def _shift(rle: dict[str, Any]) -> dict[str, Any]:
    """The mask moved right by a twentieth of the width (at least 1 pixel), background filling in."""
    pixels = masks.decode(masks.validate(rle))
    step = max(1, pixels.shape[1] // 20)
    moved = np.zeros_like(pixels)
    moved[:, step:] = pixels[:, :-step]
    return dict(masks.encode(moved))


def degrade(kind: str, position: int, prediction: dict[str, Any]) -> dict[str, Any]:
    """A deterministic, partly wrong version of a (good) prediction, so that replay scores are not trivial.

    Every 3rd sample (position % 3 == 1): a yes/no answer flips, another answer becomes "unknown", and
    masks move right by 1/20 of the width. Every 5th (position % 5 == 2): masks and phrases are dropped.
    Every 4th (position % 4 == 3): captions lose their second half.
    """
    text, found, phrases = prediction.get("text", ""), list(prediction.get("masks", [])), prediction.get("phrases", [])
    if kind == "vqa" and position % 3 == 1:
        answer = text.strip().lower()
        text = {"yes": "no", "no": "yes"}.get(answer, "unknown")
    if kind in ("caption", "grounded_caption") and position % 4 == 3:
        words = text.split(" ")
        text = " ".join(words[: max(1, len(words) // 2)])
    if position % 3 == 1:
        found = [_shift(mask) for mask in found]
    if position % 5 == 2 and found:
        found, phrases = [], []
    return {"text": text, "masks": found, "phrases": list(phrases), "probes": prediction.get("probes", [])}


def make_replay(run_dir: Path, out_path: Path) -> int:
    """Write attreval replay predictions derived (with `degrade`) from every sample of a run; returns the count."""
    run = load_run(run_dir)
    lines = []
    for task, result in run.tasks.items():
        kind = str(result["config"].get("kind", ""))
        for position, row in enumerate(run.samples(task)):
            if row.get("prediction") is None:
                continue
            changed = degrade(kind, position, row["prediction"])
            lines.append({"task": task, "sample_id": row["sample_id"], **changed})
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines), encoding="utf-8")
    return len(lines)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.golden", description="Golden results for CI.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("regenerate", "rerun the cases and rewrite their golden files"), ("check", "rerun and diff")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--cases", type=Path, default=GOLDEN_DIR / "cases.json")
        command.add_argument("--golden-dir", type=Path, default=GOLDEN_DIR)
        command.add_argument("--only", nargs="+", default=None, metavar="NAME")
    replay = commands.add_parser("make-replay", help="derive replay predictions from a run's samples logs")
    replay.add_argument("run_dir", type=Path)
    replay.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "make-replay":
            print(f"{make_replay(args.run_dir, args.out)} predictions written to {args.out}")
            return 0
        cases = load_cases(args.cases)
        if args.only:
            unknown = sorted(set(args.only) - {case.name for case in cases})
            if unknown:
                raise DataError(f"no golden case named {', '.join(unknown)} in {args.cases}")
            cases = [case for case in cases if case.name in args.only]
        if args.command == "regenerate":
            for path in regenerate(cases, args.golden_dir):
                print(f"wrote {path}")
            return 0
        failed = 0
        for case in cases:
            found = check(case, args.golden_dir)
            failed += bool(found)
            print(f"{case.name}: {'OK' if not found else f'{len(found)} difference(s)'}")
            for line in found[:50]:
                print(f"  {line}")
        return 1 if failed else 0
    except (DataError, GoldenError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


__all__ = [
    "GOLDEN_DIR",
    "GoldenCase",
    "GoldenError",
    "check",
    "degrade",
    "differences",
    "load_cases",
    "make_replay",
    "normalise",
    "regenerate",
    "run_case",
]


if __name__ == "__main__":
    sys.exit(main())
