"""The engine and the transaction helper every part of the state store builds on."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from state.db import migrate


class StoreBase:
    """An engine on the state database (migrated unless told not to) and short transactions."""

    def __init__(self, engine: Engine, *, auto_migrate: bool = True):
        self.engine = engine
        if auto_migrate:
            migrate(engine)
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        with self._sessions.begin() as session:
            yield session
