"""What a reconcile run reports, the pure part: the window in the shop's terms, the summary as
markdown, and the rows of the published discrepancy table.

The Prefect artifacts are published by ``flows.reconcile_publish.report``; everything here is plain
data in, text or rows out, so it is unit-tested without a server.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from tasks.core.diff_report import REPORT_COLUMNS
from tasks.core.errors import InvalidOrder
from tasks.core.reconcile_window import READ_ALL_ORDERS_DAYS

STATUS_ROWS = ("in_sync", "missing", "drifted", "duplicate", "orphan")
STATUS_LABELS = {
    "in_sync": "in sync",
    "missing": "missing (no Opportunity)",
    "drifted": "drifted (an owned field differs)",
    "duplicate": "duplicate Opportunities (reported only)",
    "orphan": "orphan Opportunities, not in Shopify (reported only)",
}


def window_label(
    start: datetime, end: datetime, timezone: str | None, dates: tuple[date, date] | None = None
) -> str:
    """The window as the shop sees it: ``2026-11-15 … 2026-11-30 (America/New_York)``.

    ``dates`` are the shop dates that were asked for (a backfill; the end inclusive). Without
    them (the nightly window runs from a time to a time) both ends are the shop's local times,
    ``2026-11-30 03:30 … 2026-12-01 03:30 (America/New_York)``.
    """
    zone_name = timezone or "UTC"
    if dates is not None:
        return f"{dates[0].isoformat()} … {dates[1].isoformat()} ({zone_name})"
    zone = ZoneInfo(zone_name)
    first, last = start.astimezone(zone), end.astimezone(zone)
    return f"{first:%Y-%m-%d %H:%M} … {last:%Y-%m-%d %H:%M} ({zone_name})"


def shop_dates(start: datetime, end: datetime, timezone: str) -> tuple[date, date]:
    """The shop dates a ``[start, end)`` window touches (end inclusive)."""
    zone = ZoneInfo(timezone)
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    return start.astimezone(zone).date(), last


def run_title(mode: str) -> str:
    """``backfill`` for a run over dates that were asked for, else the mode."""
    return "backfill" if mode == "manual" else mode


def _count_rows(summary: Mapping[str, Any]) -> list[str]:
    counts = summary.get("counts") or {}
    return [f"| {STATUS_LABELS[name]} | {counts[name]} |" for name in STATUS_ROWS if name in counts]


def _outcome_rows(summary: Mapping[str, Any]) -> list[str]:
    plan = summary.get("plan") or {}
    if summary.get("dry_run"):
        return [
            f"| would create / would update (dry run) | {plan.get('create', 0)} / "
            f"{plan.get('update', 0)} |",
            "| repaired | 0 (dry run: nothing written) |",
        ]
    return [
        f"| repaired | {summary.get('repaired', 0)} |",
        f"| failed: dead-lettered | {summary.get('dead_lettered', 0)} |",
        f"| failed: left for the next run | {summary.get('retry_later', 0)} |",
    ]


def _drifted_records_line(summary: Mapping[str, Any]) -> str:
    """Drifted records per object, and the Accounts / Contacts read back to find them."""
    drifted = summary.get("drifted_records") or {}
    read = summary.get("customers_read") or {}
    return (
        f"| drifted records (Opportunity / Account / Contact) | {drifted.get('Opportunity', 0)} / "
        f"{drifted.get('Account', 0)} / {drifted.get('Contact', 0)} (Accounts / Contacts read "
        f"back: {read.get('Account', 0)} / {read.get('Contact', 0)}) |"
    )


def csv_link(path: str | None) -> str | None:
    """A ``file://`` link to the CSV (opens on the machine that ran the reconcile)."""
    return Path(path).resolve().as_uri() if path else None


def markdown_report(summary: Mapping[str, Any]) -> str:
    """The run summary as the markdown artifact: one row per measure, ``repaired`` once."""
    plan = summary.get("plan") or {}
    dry = " — dry run, nothing written" if summary.get("dry_run") else ""
    window = summary.get("window") or f"{summary['window_start']} … {summary['window_end']}"
    lines = [
        f"# Reconcile {run_title(str(summary['mode']))} — {summary['status']}",
        "",
        f"**Window:** {window}{dry}",
        "",
        f"UTC: `{summary['window_start']}` → `{summary['window_end']}` (end excluded)",
        "",
    ]
    if summary.get("message"):
        lines += [f"> {summary['message']}", ""]
    lines += [
        "| measure | value |",
        "|---|---|",
        f"| Shopify orders in window | {summary['shopify_orders']} ({summary['listing']}) |",
        *_count_rows(summary),
        f"| skipped / invalid | {summary.get('skipped', 0)} / {summary.get('invalid', 0)} |",
        f"| planned writes (Account / Contact / Opportunity) | {plan.get('accounts', 0)} / "
        f"{plan.get('contacts', 0)} / {plan.get('opportunities', 0)} |",
        _drifted_records_line(summary),
        *_outcome_rows(summary),
        f"| written by the webhook path during the run | {summary.get('superseded', 0)} |",
        f"| values cut or left out (`shopsync warnings`) | {summary.get('field_warnings', 0)} |",
        f"| Salesforce API calls | {summary.get('salesforce_api_calls')} |",
        f"| Shopify calls | {summary.get('shopify_calls')} |",
        f"| duration (s) | {summary.get('duration_seconds')} |",
    ]
    if summary.get("report_csv"):
        rows = summary.get("report_rows")
        size = f" ({rows} rows)" if rows is not None else ""
        lines += [
            "",
            f"Every discrepancy, failed rows first, with the outcome of each: the "
            f"`reconcile-discrepancies-{summary['mode']}` table artifact, and the full CSV"
            f"{size}: [{Path(summary['report_csv']).name}]({csv_link(summary['report_csv'])}) "
            f"(`{summary['report_csv']}`).",
        ]
    if summary.get("cursor_advanced_to"):
        lines += ["", f"Nightly cursor advanced to `{summary['cursor_advanced_to']}`."]
    return "\n".join(lines)


def table_rows(table: pd.DataFrame, limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` rows of the discrepancy table as JSON-ready dicts (blanks as None)."""
    head = table.head(limit).astype(object)
    return head.where(head.notna(), None).to_dict(orient="records")


def table_description(rows: int, shown: int, csv_path: str) -> str:
    """What the discrepancy table artifact holds, and where the rest is."""
    what = f"{rows} discrepancies, failed rows first" if rows else "no discrepancies"
    if shown < rows:
        what += f"; the first {shown} shown, all of them in the CSV"
    return f"{what}. Full CSV: {csv_path}"


def summary_line(result: Mapping[str, Any]) -> str:
    """One human line for a finished reconcile run."""
    window = result.get("window") or (
        f"{str(result.get('window_start', ''))[:10]} … {str(result.get('window_end', ''))[:10]}"
    )
    dry = " (dry run: nothing written)" if result.get("dry_run") else ""
    line = (
        f"reconcile run #{result.get('run_id')} {result.get('mode')} {window}: "
        f"{result.get('status')}{dry} — {result.get('shopify_orders', 0)} Shopify orders, "
        f"{result.get('discrepancies', 0)} discrepancies, {result.get('repaired', 0)} repaired, "
        f"{result.get('dead_lettered', 0)} dead-lettered, {result.get('retry_later', 0)} to retry"
    )
    message = result.get("message")
    return f"{line}; {message}" if message else line


def invalid_rows(invalid: Mapping[str, InvalidOrder], *, dry_run: bool) -> pd.DataFrame:
    """Report rows for the orders that cannot be mapped (a real run dead-letters them)."""
    return pd.DataFrame(
        {
            "order_id": list(invalid),
            "status": ["invalid"] * len(invalid),
            "outcome": ["would fail: cannot be mapped" if dry_run else "failed"] * len(invalid),
            "error": [f"map: {exc}" for exc in invalid.values()],
        },
        columns=list(REPORT_COLUMNS),
    ).astype(object)


def unreadable_rows(unreadable: Mapping[str, datetime]) -> pd.DataFrame:
    """Report rows for the orders of the window Shopify hides from this app."""
    return pd.DataFrame(
        {
            "order_id": list(unreadable),
            "status": ["unreadable"] * len(unreadable),
            "outcome": ["not checked: Shopify hides it from this app"] * len(unreadable),
            "detail": [
                f"updated in the window but created {created:%Y-%m-%d}, more than "
                f"{READ_ALL_ORDERS_DAYS} days ago: Shopify hides it without read_all_orders"
                for created in unreadable.values()
            ],
        },
        columns=list(REPORT_COLUMNS),
    ).astype(object)
