"""Start-up of ``shopsync serve`` after a crash: the runs a killed serve left "Running" are
marked Crashed, which also frees their deployment concurrency slots, so the webhook path resumes
at once instead of after Prefect's slot lease runs out.

A serve notes who it is in ``<data dir>/prefect/serve.json`` (process, host, start time, Prefect
URL) and removes the note when it stops. A note whose process is gone is a serve that was killed.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

SERVE_NOTE = "serve.json"
FLOWS = ("sync-pending-orders", "reconcile", "sync-order", "replay-dead-letters")


@dataclass(frozen=True)
class ServeNote:
    """Who is (or was) serving, and where its Prefect server is."""

    url: str
    pid: int
    host: str
    started: str  # ISO 8601, UTC

    def is_alive(self) -> bool:
        """Is the serve process still running (on this host)?"""
        return self.host != socket.gethostname() or _alive(self.pid)


def note_path(data_dir: Path) -> Path:
    """Where serve writes its note."""
    return data_dir / "prefect" / SERVE_NOTE


def read_note(data_dir: Path) -> ServeNote | None:
    """The last serve's note, if there is a readable one."""
    try:
        return ServeNote(**json.loads(note_path(data_dir).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_note(data_dir: Path, url: str) -> ServeNote:
    """Note this process as the serve, with its Prefect API URL."""
    note = ServeNote(url, os.getpid(), socket.gethostname(), datetime.now(UTC).isoformat())
    path = note_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(note)))
    return note


def remove_note(data_dir: Path) -> None:
    """This serve stopped cleanly."""
    note = read_note(data_dir)
    if note is not None and note.pid == os.getpid():
        note_path(data_dir).unlink(missing_ok=True)


def crash_runs_of(dead: ServeNote) -> list[str]:
    """Mark Crashed every run of ours that the dead serve left pending, running or cancelling
    (it entered that state after the dead serve started): its deployment runs and its warm
    drains (tagged ``warm``: they ran inside it, ``deployments/warm_drain.py``); returns their
    names.

    ``force=True`` skips orchestration rules, but Prefect still releases the run's deployment
    concurrency slot on leaving Running (``ReleaseFlowConcurrencySlots`` is in its minimal
    policy), which is what unblocks the next drain.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    from deployments.warm_drain import WARM_TAG

    since = datetime.fromisoformat(dead.started)
    alive = [StateType.PENDING, StateType.RUNNING, StateType.CANCELLING]
    crashed = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=list(FLOWS))),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=alive)),
            ),
        )
        for run in runs:
            if run.state is None or run.state.timestamp < since:
                continue
            if run.deployment_id is None and WARM_TAG not in run.tags:
                continue  # a flow called by another process (a CLI command): not the serve's
            message = f"shopsync serve (pid {dead.pid}) stopped while this run was active"
            client.set_flow_run_state(run.id, Crashed(message=message), force=True)
            crashed.append(run.name)
    return crashed


def running_server(data_dir: Path) -> str | None:
    """The Prefect API URL of a live ``shopsync serve`` using this data directory, if any."""
    from deployments.local import is_prefect_server

    note = read_note(data_dir)
    if note is None or not note.is_alive() or not is_prefect_server(note.url):
        return None
    return note.url


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
