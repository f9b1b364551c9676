"""Shared test configuration: a hermetic environment for every test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _fixtures_dir() -> Path:
    for candidate in (
        REPO.parent / "shared" / "fixtures" / "shopify",
        REPO / "shared" / "fixtures",
    ):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("shared/fixtures/shopify not found beside the repository")


SHOPIFY_FIXTURES = _fixtures_dir()

_PREFIXES = ("SHOPIFY_", "SALESFORCE_", "SHOPSYNC_")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's credentials or settings."""
    for name in list(os.environ):
        if name.startswith(_PREFIXES):
            monkeypatch.delenv(name, raising=False)
