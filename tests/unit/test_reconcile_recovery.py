"""Which runs still marked running a new reconcile treats as abandoned, and which spools go."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from flows.reconcile_recovery import ABANDONED_AFTER, is_abandoned, orphan_spools
from state.store import RunRecord

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def run(*, host: str | None, pid: int | None, age: timedelta = timedelta(minutes=5)) -> RunRecord:
    return RunRecord(
        id=1, mode="nightly", window_start=NOW, window_end=NOW, dry_run=False, status="running",
        counts={}, started_at=NOW - age, finished_at=None, error=None, host=host, pid=pid,
    )  # fmt: skip


def test_a_run_on_this_host_is_abandoned_exactly_when_its_process_is_gone() -> None:
    assert is_abandoned(run(host="a", pid=7), host="a", now=NOW, alive=lambda pid: False)
    assert not is_abandoned(run(host="a", pid=7), host="a", now=NOW, alive=lambda pid: True)


def test_a_run_on_another_host_is_left_alone_until_it_is_too_old_to_be_running() -> None:
    dead = lambda pid: False  # noqa: E731  (another host's pid says nothing here)
    assert not is_abandoned(run(host="b", pid=7), host="a", now=NOW, alive=dead)
    old = ABANDONED_AFTER + timedelta(minutes=1)
    assert is_abandoned(run(host="b", pid=7, age=old), host="a", now=NOW, alive=dead)
    assert is_abandoned(run(host=None, pid=None, age=old), host="a", now=NOW, alive=dead)
    assert not is_abandoned(run(host=None, pid=None), host="a", now=NOW, alive=dead)


def test_only_spools_of_live_runs_are_kept(tmp_path: Path) -> None:
    for name in ("run-1.jsonl", "run-2.jsonl", "run-3.jsonl.part", "notes.txt"):
        (tmp_path / name).write_text("")
    orphans = orphan_spools(tmp_path, [2])
    assert [path.name for path in orphans] == ["run-1.jsonl", "run-3.jsonl.part"]
    assert orphan_spools(tmp_path / "missing", []) == []
