"""Engine creation and automatic schema migration for the state store."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000
# Execution option: this transaction only reads (on SQLite it then takes no write lock).
READ_ONLY = "shopsync_read_only"
# Any constant: the PostgreSQL advisory lock that serialises migrations across processes.
MIGRATION_LOCK_KEY = 0x5305_5C01
# Alembic's context is process-global: two threads migrating at once break each other.
_MIGRATING = threading.Lock()


def sqlite_url(data_dir: Path) -> str:
    """The default database URL: ``shopsync.db`` in the data directory."""
    return f"sqlite+pysqlite:///{(data_dir / 'shopsync.db').resolve()}"


def create_state_engine(url: str) -> Engine:
    """Create an engine; for SQLite: WAL, a busy timeout, and write-locking transactions."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
    event.listen(engine, "connect", _configure_sqlite_connection)
    event.listen(engine, "begin", _begin_immediate)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from pysqlite so that BEGIN IMMEDIATE below is ours: a
    # transaction that reads and then writes must hold the write lock from its start, or two
    # writers deadlock on the upgrade and one of them fails with "database is locked".
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    # FULL: a delivery we acknowledged to Shopify survives a power loss, not only a crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    if connection.get_execution_options().get(READ_ONLY):
        # A read: a snapshot without the write lock (WAL readers never hold up the writer).
        connection.exec_driver_sql("BEGIN")
        return
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; a no-op when it is already there."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _MIGRATING, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several receivers and workers start at once against one empty database: the
            # first migrates, the others wait here and then find the schema at head.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
