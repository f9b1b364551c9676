"""Reconcile, step 5 (report): the full discrepancy table as a CSV in ``<data_dir>/reports``,
published as a Prefect table artifact (failed rows first, capped at ``TABLE_ROWS``) and a link
artifact to the file. The rows are built by the pure :mod:`tasks.core.diff_report` and
:mod:`tasks.reporting.reconcile_report`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd
from prefect import get_run_logger
from prefect.artifacts import create_link_artifact, create_table_artifact

from flows.reconcile_read import Comparison
from flows.reconcile_recovery import this_host
from flows.reconcile_repair import Repaired
from flows.reconcile_run import Started
from state.models import utcnow
from tasks.core.diff_report import discrepancy_rows, failed_first
from tasks.reporting.reconcile_report import (
    csv_link,
    invalid_rows,
    table_description,
    table_rows,
    unreadable_rows,
)
from tasks.runtime import Runtime

TABLE_ROWS = 200


@dataclass(frozen=True)
class Reported:
    """Where the report's CSV is and how many rows it has."""

    csv: str
    rows: int


def report(
    runtime: Runtime,
    run: Started,
    found: Comparison,
    repaired: Repaired,
    unreadable: Mapping[str, datetime],
) -> Reported:
    """Write the discrepancy CSV and publish it (table and link artifacts)."""
    dry_run = run.request.dry_run
    table = discrepancy_rows(
        found.result,
        found.orphans,
        repaired.failures,
        dry_run=dry_run,
        written=repaired.written_ids,
        stopped=repaired.stopped is not None,
    )
    extra = [invalid_rows(found.listing.invalid, dry_run=dry_run), unreadable_rows(unreadable)]
    frames = [frame for frame in (table, *extra) if not frame.empty]
    if frames:
        table = failed_first(pd.concat(frames, ignore_index=True))
    csv_path = write_csv(table, runtime.settings.data_dir / "reports", run.run_id)
    publish_report(table, csv_path, run.request.mode)
    return Reported(str(csv_path), len(table))


def write_csv(table: pd.DataFrame, directory: Path, run_id: int) -> Path:
    """The full discrepancy table as CSV in ``<data_dir>/reports``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"reconcile-{run_id}-{utcnow().strftime('%Y%m%dT%H%M%SZ')}.csv"
    table.to_csv(path, index=False)
    return path


def publish_report(table: pd.DataFrame, csv_path: Path, mode: str) -> None:
    """The discrepancy table and a link to its CSV as Prefect artifacts (best effort)."""
    rows = table_rows(table, TABLE_ROWS)
    try:
        if rows:
            create_table_artifact(
                rows,
                key=f"reconcile-discrepancies-{mode}",
                description=table_description(len(table), len(rows), str(csv_path)),
            )
        create_link_artifact(
            str(csv_link(str(csv_path))),
            link_text=f"{csv_path.name} ({len(table)} rows)",
            key=f"reconcile-report-csv-{mode}",
            description=f"The full discrepancy CSV, failed rows first, on {this_host()}: "
            f"`{csv_path}` (the link opens on that machine).",
        )
    except Exception:  # pragma: no cover - reporting never fails the run
        get_run_logger().warning("could not publish the reconcile discrepancy artifacts")
