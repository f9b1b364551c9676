"""A throwaway PostgreSQL server for tests and benchmarks: ``initdb`` into a temporary directory,
``pg_ctl`` on a free loopback port, removed again on ``stop()``.

Needs the PostgreSQL server binaries (Debian: ``apt-get install postgresql``); ``find_bin_dir``
looks on ``PATH`` and under ``/usr/lib/postgresql/<version>/bin``. ``initdb`` refuses to run as
root, so as root the cluster is created and run by an unprivileged user (``postgres`` from the
Debian package, else ``nobody``) through ``runuser``. Loopback TCP only, no Unix socket, trust
authentication for one superuser: it is a test server and nothing else may reach it.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sandbox.server import LOOPBACK, free_port

SUPERUSER = "shopsync"
DEBIAN_BIN_DIRS = "/usr/lib/postgresql"
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, newest Debian version first, or None."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    versions = sorted(
        Path(DEBIAN_BIN_DIRS).glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in versions:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    return None


def _run_as() -> str | None:
    """The unprivileged account to run the server as when we are root; None when we are not."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


@dataclass
class PostgresServer:
    """One throwaway cluster; ``with`` starts and stops it. ``url(db)`` gives SQLAlchemy URLs."""

    bin_dir: Path
    port: int = 0
    max_connections: int = 300
    root: Path | None = None
    _user: str | None = field(default=None, init=False, repr=False)

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "data"

    def url(self, database: str = "postgres", driver: str = "psycopg") -> str:
        """A SQLAlchemy URL for ``database`` (``driver``: psycopg for shopsync, asyncpg for
        Prefect's server)."""
        return f"postgresql+{driver}://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"

    def start(self) -> PostgresServer:
        """initdb and start; returns once the server accepts connections."""
        self._user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="shopsync-pg-"))
        if self._user is not None:
            entry = pwd.getpwnam(self._user)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.port = self.port or free_port()
        self._pg(
            "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "-A", "trust",
            "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip
        options = " ".join(
            [
                f"-c listen_addresses={LOOPBACK}",
                f"-p {self.port}",
                "-c unix_socket_directories=''",
                f"-c max_connections={self.max_connections}",
                # A throwaway cluster: crash safety of the server itself is not under test.
                "-c fsync=off -c full_page_writes=off",
            ]
        )
        self._pg(
            "pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory."""
        if self.root is None:
            return
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._pg("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its name (a fresh random one by default)."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        if not _NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self._admin(f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still in it."""
        if not _NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for failure messages."""
        assert self.root is not None
        log = self.root / "server.log"
        return log.read_text(errors="replace")[-chars:] if log.exists() else ""

    def _admin(self, sql: str) -> None:
        import psycopg

        dsn = f"host={LOOPBACK} port={self.port} user={SUPERUSER} dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def _pg(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        result = subprocess.run(  # noqa: S603
            command, capture_output=True, text=True, timeout=120, cwd=self.root, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({result.returncode}): {result.stderr or result.stdout}"
                f"\n{self.log_tail() if program == 'pg_ctl' else ''}"
            )

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
