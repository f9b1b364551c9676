"""A lingering drain's "alive until" mark (issue 16).

A drain that found the inbox empty keeps claiming for a while (``flows/sync_pending.py``), but it
holds no claims then, so the receiver's nudger would take it for gone and ask Prefect for a run
the deployment's concurrency limit cancels. While it lingers the drain keeps a mark, "drain
``owner`` claims again until ``T``", in the ``cursors`` table (a named timestamp: no new table, no
migration), under the name ``drain-live:<owner>``. The drain deletes its mark before its last
claim; a killed drain's mark simply runs out at ``T`` (bounded by the linger window), after
which the nudger asks for a drain again. Nothing else reads or lists these rows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, insert, select

from state.db import READ_ONLY
from state.models import Cursor, utcnow
from state.store import StateStore

PREFIX = "drain-live:"


def mark_drain_live(store: StateStore, owner: str, until: datetime) -> None:
    """Say that drain ``owner`` claims again until ``until`` (and drop marks that ran out)."""
    now = utcnow()
    with store.engine.begin() as connection:
        connection.execute(
            delete(Cursor).where(Cursor.name.startswith(PREFIX), Cursor.value <= now)
        )
        name = f"{PREFIX}{owner}"
        connection.execute(delete(Cursor).where(Cursor.name == name))
        connection.execute(insert(Cursor).values(name=name, value=until, updated_at=now))


def clear_drain_mark(store: StateStore, owner: str) -> None:
    """Drain ``owner`` no longer lingers (it makes one last claim after this)."""
    with store.engine.begin() as connection:
        connection.execute(delete(Cursor).where(Cursor.name == f"{PREFIX}{owner}"))


def drain_live_until(store: StateStore, now: datetime) -> datetime | None:
    """Until when some lingering drain will claim new work, if one does after ``now``.

    A read in a snapshot without the write lock (the receiver's commits need it).
    """
    with store.engine.connect() as connection:
        read = connection.execution_options(**{READ_ONLY: True})
        until = read.execute(
            select(func.max(Cursor.value)).where(Cursor.name.startswith(PREFIX), Cursor.value > now)
        ).scalar()
    return until
