"""Reports over run folders: the per-run HTML report, leaderboards, and run-to-run comparisons.

Reports read only what a run wrote to disk (``results.json``, ``samples/<task>.jsonl``), never
in-memory harness objects, so they work on any finished run folder.
"""

from __future__ import annotations

from reports.compare import Comparison, compare_runs, parse_tolerances
from reports.leaderboard import Leaderboard, write_leaderboard
from reports.run_report import write_run_report
from reports.rundata import RunFolder, load_run

__all__ = [
    "Comparison",
    "Leaderboard",
    "RunFolder",
    "compare_runs",
    "load_run",
    "parse_tolerances",
    "write_leaderboard",
    "write_run_report",
]
