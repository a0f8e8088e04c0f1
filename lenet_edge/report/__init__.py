"""The bundle's report: ``store`` keeps report.json and renders report.md from it; ``markdown`` renders each
section; ``advice`` computes what to deploy; ``targets`` merges a target's results. Imports the tables, the
records and the charts; never a runtime or TensorFlow."""

from __future__ import annotations

from .advice import costs_by_core, int8_pairs, recommendations
from .store import draw_chart, read_report, update_report
from .targets import record_target

__all__ = [
    "costs_by_core",
    "draw_chart",
    "int8_pairs",
    "read_report",
    "recommendations",
    "record_target",
    "update_report",
]
