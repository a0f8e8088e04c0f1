"""report.json, the bundle's one record of every section's data, and report.md rendered from it whole: each
step updates its own sections (and the charts it drew) without disturbing the others."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..console import log
from ..files import write_json, write_text
from ..manifest import REPORT_JSON, REPORT_MD, read_manifest, written_later
from .markdown import render_markdown


def read_report(bundle: str | Path) -> dict:
    """report.json's sections ({} when there is none, or it is not a report)."""
    try:
        report = json.loads((Path(bundle) / REPORT_JSON).read_text())
    except (FileNotFoundError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return report if isinstance(report, dict) else {}


def update_report(bundle: str | Path, sections: dict, charts: dict[str, bool] | None = None) -> dict:
    """Merge ``sections`` into report.json, and ``charts`` (chart file -> drawn by this step) into its
    ``charts``; re-render report.md; return the whole report."""
    bundle = Path(bundle)
    report = read_report(bundle)
    report.update(sections)
    if charts:
        report["charts"] = report.get("charts", {}) | charts
    write_json(bundle / REPORT_JSON, report)
    write_text(bundle / REPORT_MD, render_markdown(report, read_manifest(bundle)))
    return report


def draw_chart(plot: Callable[[Any, Path], object], data: Any, bundle: str | Path, name: str) -> dict[str, bool]:
    """Draw one chart into the bundle: {name: drawn}, for ``update_report``'s ``charts`` (report.md links a chart
    only when the last run of its section drew it). ``name`` must be one of the files the bundle's ownership
    check counts as its own (``manifest.WRITTEN_LATER``), so that a later run may replace it."""
    if not written_later(name):
        raise ValueError(f"{name}: not a file the bundle's ownership check knows; add it to manifest.WRITTEN_LATER")
    try:
        plot(data, Path(bundle) / name)
    except ImportError:
        log(f"(no matplotlib here: {name} not redrawn, and report.md no longer shows it)")
        return {name: False}
    return {name: True}
