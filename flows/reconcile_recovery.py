"""Runs a killed ``shopsync reconcile`` left behind: marked interrupted, spool files removed.

A run records the host and process id that run it. At the start of the next run, a run still
marked ``running`` counts as abandoned when

* it ran on this host and its process is gone (checked with signal 0), or
* it ran elsewhere (or before runs recorded their owner) and started more than
  :data:`ABANDONED_AFTER` ago: another machine's processes cannot be checked from here, and no
  reconcile run takes that long, so a fresh run on another machine is never touched.

Spool files (``data/reconcile/run-<id>.jsonl``) that no live run owns are removed.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path

from state import StateStore
from state.store import RunRecord

ABANDONED_AFTER = timedelta(hours=24)
INTERRUPTED = "interrupted"
_SPOOL = re.compile(r"^run-(\d+)\.")


def this_host() -> str:
    """The name this machine records on the runs it starts."""
    return socket.gethostname()


def process_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


def is_abandoned(
    run: RunRecord, *, host: str, now: datetime, alive: Callable[[int], bool] = process_alive
) -> bool:
    """Whether a run marked running can no longer finish (see the module docstring)."""
    if run.host == host and run.pid is not None:
        return not alive(run.pid)
    return now - run.started_at > ABANDONED_AFTER


def interrupted_message(run: RunRecord) -> str:
    """What ``shopsync status`` shows for a run that was killed."""
    where = f"process {run.pid} on {run.host}" if run.host else "its process"
    return f"interrupted: {where} ended before the run finished; the next run cleaned up"


def orphan_spools(directory: Path, live_run_ids: Iterable[int]) -> list[Path]:
    """Spool files in ``directory`` whose run is not live."""
    if not directory.is_dir():
        return []
    live = set(live_run_ids)
    orphans = []
    for path in sorted(directory.iterdir()):
        match = _SPOOL.match(path.name)
        if match and int(match.group(1)) not in live:
            orphans.append(path)
    return orphans


def recover_abandoned_runs(store: StateStore, spool_dir: Path, now: datetime) -> list[int]:
    """Mark abandoned runs interrupted and remove spool files no live run owns; their ids."""
    host = this_host()
    live: list[int] = []
    interrupted: list[int] = []
    for run in store.running_runs():
        if is_abandoned(run, host=host, now=now):
            store.finish_run(run.id, INTERRUPTED, run.counts, error=interrupted_message(run))
            interrupted.append(run.id)
        else:
            live.append(run.id)
    for path in orphan_spools(spool_dir, live):
        path.unlink(missing_ok=True)
    return interrupted
