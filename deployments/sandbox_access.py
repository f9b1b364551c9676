"""Find the local sandboxes (``sandbox/``), which ship with the repository, not the wheel.

The wheel installs the product only (flows, tasks, state, webhooks, deployments). The commands
that run the emulators — ``shopsync serve --sandbox``, ``shopsync demo``, ``shopsync sandbox …`` —
need ``sandbox/`` from a clone: an editable install (``make``) finds it beside the product's own
source; an installed wheel does not have it, and these commands then say so in one line.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

CLONE = Path(__file__).resolve().parents[1]


class SandboxUnavailable(Exception):
    """The sandbox package is not importable here; the message says what to do."""


def sandbox_available() -> bool:
    """Whether ``import sandbox`` works, adding the clone's root to ``sys.path`` if it must."""
    if importlib.util.find_spec("sandbox") is not None:
        return True
    if (
        not (CLONE / "sandbox" / "__init__.py").is_file()
        or not (CLONE / "pyproject.toml").is_file()
    ):
        return False
    sys.path.insert(0, str(CLONE))
    importlib.invalidate_caches()
    return importlib.util.find_spec("sandbox") is not None


def require_sandbox(command: str) -> None:
    """Make ``import sandbox`` work, or raise :class:`SandboxUnavailable` naming the fix."""
    if not sandbox_available():
        raise SandboxUnavailable(
            f"{command} needs the local sandboxes, which ship with the shopsync repository, not "
            "with the installed package: run it from a clone (`make .venv/.installed`, then "
            f"`.venv/bin/{command}`)"
        )
