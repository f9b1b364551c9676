"""Shared test configuration: a hermetic environment for every test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from state import StateStore
    from tasks.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHOPIFY_FIXTURES = REPO / "tests" / "fixtures" / "shopify"
"""The Shopify payloads the tests read: written for this repository in the documented shapes."""


def shopify_fixture(name: str) -> Any:
    """The parsed JSON of ``tests/fixtures/shopify/<name>``."""
    return json.loads((SHOPIFY_FIXTURES / name).read_text(encoding="utf-8"))


_PREFIXES = ("SHOPIFY_", "SALESFORCE_", "SHOPSYNC_")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's credentials or settings."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def store(product: Settings) -> Iterator[StateStore]:
    """The product's state store (the same database its runtime uses); closed afterwards.

    ``product`` is the settings fixture of the tier asking (integration, e2e, reliability); the
    unit tests that need a store open their own database.
    """
    from state import StateStore

    s = StateStore.open(product.state_url)
    yield s
    s.close()


# -- PostgreSQL tier ------------------------------------------------------------------------------


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """A throwaway PostgreSQL server for the session (``sandbox.postgres``).

    Without the server binaries the PostgreSQL tests skip with the reason; in CI (``CI=true``,
    where ``.ci/run`` installs them) they fail instead, so the tier never silently disappears.
    """
    from sandbox.postgres import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        reason = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or under "
            "/usr/lib/postgresql/*/bin; install Debian's 'postgresql' package"
        )
        if _in_ci():
            pytest.fail(reason)
        pytest.skip(reason)
    with PostgresServer(bin_dir) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: Any) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server (psycopg URL)."""
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    postgres_server.drop_database(name)
