"""What ``shopsync status`` and ``shopsync reconcile`` print for people: ``rich`` tables and one
summary line (scripts keep ``--json``)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from state.store import DeadLetterRecord, RunRecord
from tasks.reporting.dead_letter_board import order_name
from tasks.reporting.reconcile_report import summary_line


def console() -> Console:
    """A console as wide as the terminal; off a terminal (a pipe, a file, a test) wide enough that
    no cell is cut, whatever ``COLUMNS`` says."""
    width = shutil.get_terminal_size((140, 24)).columns if sys.stdout.isatty() else 240
    return Console(width=width, highlight=False)


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def inbox_table(counts: Mapping[str, int]) -> Table:
    """The webhook inbox by status."""
    table = _table("inbox", "status", "deliveries")
    for status, count in sorted(counts.items()):
        table.add_row(status, str(count))
    return table


def dead_letter_table(letters: Iterable[DeadLetterRecord]) -> Table:
    """Open dead letters with their order names, newest first."""
    table = _table("open dead letters", "#", "order", "order id", "stage", "error", "attempts")
    for letter in letters:
        error = f"{letter.error_code}: {letter.message}" if letter.error_code else letter.message
        table.add_row(
            str(letter.id),
            order_name(letter) or "-",
            letter.order_id,
            letter.stage,
            error,
            str(letter.attempts),
        )
    return table


def run_outcome(run: RunRecord) -> str:
    """A run's counts as a few words: what it found and repaired."""
    counts = run.counts.get("counts", {}) if isinstance(run.counts.get("counts"), dict) else {}
    parts = [
        f"{run.counts[name]} {label}"
        for name, label in (
            ("shopify_orders", "orders"),
            ("discrepancies", "discrepancies"),
            ("repaired", "repaired"),
            ("dead_lettered", "dead-lettered"),
        )
        if isinstance(run.counts.get(name), int)
    ]
    if not parts and counts:
        parts = [f"{value} {name}" for name, value in counts.items()]
    return ", ".join(parts) or "-"


def runs_table(runs: Iterable[RunRecord]) -> Table:
    """Recent reconcile runs with their outcome and message."""
    table = _table("recent reconcile runs", "run", "mode", "window", "status", "outcome", "message")
    for run in runs:
        message = run.error or run.counts.get("message") or ""
        table.add_row(
            f"#{run.id}",
            run.mode + (" (dry run)" if run.dry_run else ""),
            f"{run.window_start:%Y-%m-%d}…{run.window_end:%Y-%m-%d}",
            run.status,
            run_outcome(run),
            str(message),
        )
    return table


def reconcile_line(result: Mapping[str, Any]) -> str:
    """One human line for a finished reconcile run."""
    return summary_line(result)


def sync_order_line(result: Mapping[str, Any]) -> str:
    """One human line for a ``sync-order`` run that did not dead-letter its order."""
    name = f"{result['order_name']} " if result.get("order_name") else ""
    line = f"order {name}({result.get('order_id')}): {result.get('action')}"
    if result.get("reason"):
        line += f" ({result['reason']})"
    if result.get("opportunity_id"):
        line += f", Opportunity {result['opportunity_id']}"
    warnings = int(result.get("field_warnings") or 0)
    if warnings:
        line += f"; {warnings} value(s) cut or left out (`shopsync warnings`)"
    return line
