"""Shared test configuration: a hermetic environment for every test."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

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
