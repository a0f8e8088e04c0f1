"""A target's results in the report: verify, cost and bench runs merged into report.json's ``targets`` (by target,
then by job), and the instruction-count chart of every emulated core measured."""

from __future__ import annotations

from pathlib import Path

from ..manifest import TARGETS_PNG
from ..plots import plot_instruction_counts
from .advice import costs_by_core
from .store import draw_chart, read_report, update_report


def record_target(bundle: str | Path, target: str, job: str, result: dict) -> None:
    """Merge one job's ``result`` (verify, cost or bench) on ``target`` into report.json's ``targets``; a bench
    result is kept per profile, and a cost result redraws the chart of every core's instruction counts."""
    targets = read_report(bundle).get("targets", {})
    entry = targets.setdefault(target, {})
    entry["identity"] = result["identity"]
    if job == "bench":
        entry.setdefault("bench", {})[result["info"]["profile"]] = result
    else:
        entry[job] = result
    charts = draw_chart(plot_instruction_counts, costs_by_core(targets), bundle, TARGETS_PNG) if job == "cost" else {}
    update_report(bundle, {"targets": targets}, charts)
