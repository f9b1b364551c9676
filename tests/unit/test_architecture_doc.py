"""ARCHITECTURE.md and README's Layout name files and folders that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PATH = re.compile(
    r"`((?:flows|tasks|state|webhooks|deployments|sandbox|bench|tests|docs)/[\w./-]*)`"
)


def named_paths(text: str) -> set[str]:
    """Every `package/...` path written in backticks (a trailing '/' names a folder)."""
    return {m.group(1) for m in PATH.finditer(text)}


@pytest.mark.parametrize("document", ["ARCHITECTURE.md", "README.md"])
def test_every_path_the_document_names_exists(document: str) -> None:
    paths = named_paths((REPO / document).read_text(encoding="utf-8"))
    assert paths
    missing = sorted(p for p in paths if not (REPO / p).exists())
    assert missing == []


def test_the_architecture_describes_every_product_package() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for package in ("flows", "tasks", "state", "webhooks", "deployments"):
        assert f"**`{package}/`**" in text
        for sub in sorted((REPO / package).glob("*/__init__.py")):
            assert f"`{sub.parent.name}/`" in text, sub.parent
