"""Leaderboards over several runs: one row per model, one column per task metric.

``write_leaderboard(run_dirs, out_dir)`` writes ``leaderboard.html`` (sortable), ``leaderboard.csv``,
``leaderboard.md`` and ``leaderboard.tex`` (booktabs). Every value is 100 x the fraction in
``results.json``; the best value of a column (by the metric's ``higher_is_better``) is bold when at
least two runs report it.
"""

from __future__ import annotations

import csv
import io
import os
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import harness
from reports.formatting import percent, scaled
from reports.rendering import environment, static
from reports.rundata import RunFolder, load_run

FORMATS = ("html", "csv", "md", "tex")


@dataclass(frozen=True)
class Column:
    """One metric of one task (or the mean of a task group)."""

    task: str
    metric: str
    higher_is_better: bool | None
    group: bool = False

    @property
    def key(self) -> str:
        return f"{self.task}/{self.metric}"


@dataclass
class Entry:
    """One run, as a leaderboard row."""

    label: str
    run: RunFolder
    values: dict[str, float | None] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.run.model_name

    @property
    def args(self) -> str:
        return self.run.results["model"].get("args", "")

    @property
    def fingerprint(self) -> str:
        return self.run.results["model"]["fingerprint"]


def _labels(runs: Sequence[RunFolder]) -> list[str]:
    """Model names, made unique with the model args, then the fingerprint, then the run folder."""
    labels = [run.model_name for run in runs]
    for extra in (
        lambda run: run.results["model"].get("args", ""),
        lambda run: run.results["model"]["fingerprint"][:10],
        lambda run: run.path.name,
    ):
        clashes = {label for label in labels if labels.count(label) > 1}
        if not clashes:
            break
        labels = [
            f"{label} ({extra(run)})" if label in clashes and extra(run) else label
            for label, run in zip(labels, runs, strict=True)
        ]
    seen: dict[str, int] = {}
    unique = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        unique.append(label if seen[label] == 1 else f"{label} #{seen[label]}")
    return unique


@dataclass
class Leaderboard:
    """The table: columns in first-seen order over the runs, rows in the order the runs were given."""

    columns: list[Column]
    rows: list[Entry]

    @classmethod
    def from_runs(cls, runs: Sequence[RunFolder]) -> Leaderboard:
        columns: dict[str, Column] = {}
        directions: dict[str, bool] = {}
        for run in runs:
            for task, result in run.tasks.items():
                for metric in result["metrics"]:
                    direction = result["higher_is_better"].get(metric)
                    if direction is not None:
                        directions.setdefault(metric, direction)
                    columns.setdefault(f"{task}/{metric}", Column(task, metric, direction))
        for run in runs:
            for group, values in run.results.get("groups", {}).items():
                for metric in values:
                    name = f"{group} (mean)"
                    columns.setdefault(f"{name}/{metric}", Column(name, metric, directions.get(metric), group=True))
        rows = []
        for label, run in zip(_labels(runs), runs, strict=True):
            entry = Entry(label, run)
            for column in columns.values():
                if column.group:
                    values = run.results.get("groups", {}).get(column.task.removesuffix(" (mean)"), {})
                else:
                    values = run.tasks.get(column.task, {}).get("metrics", {})
                if column.metric in values:
                    entry.values[column.key] = values[column.metric]
            rows.append(entry)
        return cls(list(columns.values()), rows)

    def best(self, column: Column) -> set[int]:
        """Positions of the rows holding the column's best value (empty with fewer than two values)."""
        present = [(position, row.values.get(column.key)) for position, row in enumerate(self.rows)]
        numbers = [(position, value) for position, value in present if value is not None]
        if column.higher_is_better is None or len(numbers) < 2:
            return set()
        target = (max if column.higher_is_better else min)(value for _, value in numbers)
        return {position for position, value in numbers if value == target}

    def task_spans(self) -> list[tuple[str, int]]:
        """Consecutive columns of the same task: (task, count)."""
        spans: list[tuple[str, int]] = []
        for column in self.columns:
            if spans and spans[-1][0] == column.task:
                spans[-1] = (column.task, spans[-1][1] + 1)
            else:
                spans.append((column.task, 1))
        return spans

    # -- formats ---------------------------------------------------------------------------------

    def to_csv(self) -> str:
        """Columns ``model, model_args, fingerprint, run`` then one ``task/metric`` column per metric."""
        stream = io.StringIO()
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["model", "model_args", "fingerprint", "run", *(column.key for column in self.columns)])
        for row in self.rows:
            values = [row.values.get(column.key) for column in self.columns]
            writer.writerow(
                [row.label, row.args, row.fingerprint, str(row.run.path)]
                + ["" if value is None else f"{scaled(value):.4f}" for value in values]
            )
        return stream.getvalue()

    def to_markdown(self) -> str:
        def cell(text: str) -> str:
            return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

        header = ["model", *(f"{column.key} {_arrow(column)}".strip() for column in self.columns)]
        lines = [
            "| " + " | ".join(cell(text) for text in header) + " |",
            "|" + "---|" + "---:|" * len(self.columns),
        ]
        best = [self.best(column) for column in self.columns]
        for position, row in enumerate(self.rows):
            cells = [cell(row.label)]
            for column, winners in zip(self.columns, best, strict=True):
                value = row.values.get(column.key)
                text = "–" if value is None else percent(value)
                cells.append(f"**{text}**" if position in winners else text)
            lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            "Values are percentages (100 × results.json); best per column in bold; ↑/↓: higher/lower is better.",
        ]
        return "\n".join(lines) + "\n"

    def to_latex(self) -> str:
        best = [self.best(column) for column in self.columns]
        lines = [
            "% attreval leaderboard: percentages (100 x results.json); best value per column in bold.",
            "% Needs \\usepackage{booktabs}.",
            "\\begin{tabular}{l" + "r" * len(self.columns) + "}",
            "\\toprule",
        ]
        spans = self.task_spans()
        headers, rules, first = [""], [], 2
        for task, count in spans:
            headers.append(f"\\multicolumn{{{count}}}{{c}}{{{latex_escape(task)}}}")
            rules.append(f"\\cmidrule(lr){{{first}-{first + count - 1}}}")
            first += count
        lines.append(" & ".join(headers) + " \\\\")
        lines.append(" ".join(rules))
        metric_names = [f"{latex_escape(column.metric)}{_latex_arrow(column)}" for column in self.columns]
        lines.append(" & ".join(["Model", *metric_names]) + " \\\\")
        lines.append("\\midrule")
        for position, row in enumerate(self.rows):
            cells = [latex_escape(row.label)]
            for column, winners in zip(self.columns, best, strict=True):
                value = row.values.get(column.key)
                text = "--" if value is None else percent(value)
                cells.append(f"\\textbf{{{text}}}" if position in winners else text)
            lines.append(" & ".join(cells) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(lines) + "\n"

    def to_html(self, out_dir: Path) -> str:
        best = [self.best(column) for column in self.columns]
        rows = []
        for position, row in enumerate(self.rows):
            report = row.run.path / "report.html"
            link = None
            if report.is_file():
                link = urllib.parse.quote(Path(os.path.relpath(report.resolve(), out_dir.resolve())).as_posix())
            cells = []
            for column, winners in zip(self.columns, best, strict=True):
                value = row.values.get(column.key)
                cells.append(
                    {
                        "text": "–" if value is None else percent(value),
                        "sort": "" if value is None else repr(scaled(value)),
                        "best": position in winners,
                    }
                )
            rows.append({"entry": row, "link": link, "cells": cells})
        definitions: dict[str, str] = {}
        for row in self.rows:
            for task, result in row.run.tasks.items():
                for metric, text in result["definitions"].items():
                    definitions.setdefault(f"{task}/{metric}", text)
        return (
            environment()
            .get_template("leaderboard.html.j2")
            .render(
                harness_version=harness.__version__,
                columns=self.columns,
                spans=self.task_spans(),
                rows=rows,
                definitions=[
                    (column.key, definitions[column.key]) for column in self.columns if column.key in definitions
                ],
                css=static("report.css"),
                script=static("leaderboard.js"),
            )
        )


def _arrow(column: Column) -> str:
    return {True: "↑", False: "↓", None: ""}[column.higher_is_better]


def _latex_arrow(column: Column) -> str:
    return {True: " $\\uparrow$", False: " $\\downarrow$", None: ""}[column.higher_is_better]


_LATEX_SPECIAL = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def write_leaderboard(run_dirs: Sequence[Path], out_dir: Path) -> dict[str, Path]:
    """Write ``leaderboard.{html,csv,md,tex}`` for ``run_dirs`` into ``out_dir``; returns format -> path."""
    if not run_dirs:
        raise ValueError("a leaderboard needs at least one run folder")
    board = Leaderboard.from_runs([load_run(path) for path in run_dirs])
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {
        "html": board.to_html(out_dir),
        "csv": board.to_csv(),
        "md": board.to_markdown(),
        "tex": board.to_latex(),
    }
    written = {}
    for extension, text in texts.items():
        path = out_dir / f"leaderboard.{extension}"
        path.write_text(text, encoding="utf-8")
        written[extension] = path
    return written


__all__ = ["FORMATS", "Column", "Entry", "Leaderboard", "latex_escape", "write_leaderboard"]
