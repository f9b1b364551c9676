"""Cursors, reconcile runs, and the orders whose nightly repair keeps failing."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from state.base import StoreBase
from state.models import Cursor, ReconcileFailure, ReconcileRun, utcnow
from state.records import FailedRepair, RunRecord, as_record


class RunsMixin(StoreBase):
    """The reconcile's bookkeeping: where its windows start, its runs, its failed nights."""

    def get_cursor(self, name: str) -> datetime | None:
        """The cursor's value, or None when it was never set."""
        with self._tx() as s:
            row = s.get(Cursor, name)
            return None if row is None else row.value

    def advance_cursor(self, name: str, value: datetime) -> datetime:
        """Move the cursor forward to ``value``; an older value leaves it where it is.

        Returns the cursor's value after the call.
        """
        with self._tx() as s:
            row = s.get(Cursor, name)
            if row is None:
                s.add(Cursor(name=name, value=value, updated_at=utcnow()))
                return value
            if value > row.value:
                row.value = value
                row.updated_at = utcnow()
            return row.value

    def set_cursor(self, name: str, value: datetime, *, allow_backwards: bool = False) -> datetime:
        """An operator's move of the cursor to ``value`` (forward; back only when allowed).

        Moving forward skips orders the nightly has not proven (the operator's call); moving
        back only widens the next window. Raises ``ValueError`` for a move back not allowed.
        """
        with self._tx() as s:
            row = s.get(Cursor, name)
            if row is None:
                s.add(Cursor(name=name, value=value, updated_at=utcnow()))
                return value
            if value < row.value and not allow_backwards:
                raise ValueError(
                    f"the {name} cursor is at {row.value.isoformat()}; moving it back to "
                    f"{value.isoformat()} needs allow_backwards"
                )
            row.value = value
            row.updated_at = utcnow()
            return value

    # -- orders whose nightly repair keeps failing ---------------------------------------------

    def count_failed_night(self, failures: Iterable[FailedRepair]) -> dict[str, int]:
        """One more nightly run on which each of these orders' repair failed; returns the
        number of such runs per order (its reason is the latest failure's)."""
        now = utcnow()
        counts: dict[str, int] = {}
        with self._tx() as s:
            for failure in failures:
                row = s.get(ReconcileFailure, failure.order_id)
                if row is None:
                    row = ReconcileFailure(order_id=failure.order_id, nights=0, first_failed_at=now)
                    s.add(row)
                row.nights += 1
                row.stage, row.error_code, row.message = (
                    failure.stage,
                    failure.error_code,
                    failure.message,
                )
                row.last_failed_at = now
                counts[failure.order_id] = row.nights
        return counts

    def clear_failed_nights(self, order_ids: Iterable[str]) -> None:
        """Forget the failed nights of orders that are now repaired or dead-lettered."""
        ids = list(order_ids)
        with self._tx() as s:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                s.execute(delete(ReconcileFailure).where(ReconcileFailure.order_id.in_(chunk)))

    def failed_nights(self) -> dict[str, int]:
        """Orders whose nightly repair failed, and on how many nightly runs."""
        with self._tx() as s:
            return {r.order_id: r.nights for r in s.scalars(select(ReconcileFailure))}

    # -- reconcile runs ----------------------------------------------------------------------

    def start_run(
        self,
        mode: str,
        window_start: datetime,
        window_end: datetime,
        *,
        dry_run: bool = False,
        flow_run_id: str | None = None,
        host: str | None = None,
        pid: int | None = None,
    ) -> int:
        """Record the start of a reconcile run (and the host and process running it); its id."""
        with self._tx() as s:
            run = ReconcileRun(
                mode=mode,
                window_start=window_start,
                window_end=window_end,
                dry_run=dry_run,
                status="running",
                counts={},
                started_at=utcnow(),
                flow_run_id=flow_run_id,
                host=host,
                pid=pid,
            )
            s.add(run)
            s.flush()
            return run.id

    def finish_run(
        self, run_id: int, status: str, counts: dict[str, Any], error: str | None = None
    ) -> None:
        """Record a run's outcome."""
        with self._tx() as s:
            run = s.get_one(ReconcileRun, run_id)
            run.status = status
            run.counts = counts
            run.error = error
            run.finished_at = utcnow()

    def running_runs(self) -> list[RunRecord]:
        """Runs still marked running, oldest first."""
        with self._tx() as s:
            rows = s.scalars(
                select(ReconcileRun)
                .where(ReconcileRun.status == "running")
                .order_by(ReconcileRun.id)
            )
            return [_run_record(r) for r in rows]

    def recent_runs(self, limit: int = 10) -> list[RunRecord]:
        """The newest runs first."""
        with self._tx() as s:
            rows = s.scalars(select(ReconcileRun).order_by(ReconcileRun.id.desc()).limit(limit))
            return [_run_record(r) for r in rows]


def _run_record(row: ReconcileRun) -> RunRecord:
    return as_record(row, RunRecord)
