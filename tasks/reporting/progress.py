"""Progress of long operations, reported through a callback so the core never draws anything.

The reconcile core calls :func:`report` with a stage (``listing``, ``diff``, ``repair``), how far
it got and, when known, how far it will go. Nothing listens by default. The CLI installs a
callback with :func:`reporting_to` (a ``rich`` progress bar on a terminal, plain lines
otherwise: ``deployments/progress_view.py``); a listener that raises is dropped, so reporting
never breaks the work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


class ProgressCallback(Protocol):
    """Told how far a stage got: ``done`` of ``total`` (``None``: not known in advance)."""

    def __call__(self, stage: str, done: int, total: int | None) -> None: ...


_listeners: list[ProgressCallback] = []


def report(stage: str, done: int, total: int | None = None) -> None:
    """Tell every installed listener how far ``stage`` got."""
    for listener in list(_listeners):
        try:
            listener(stage, done, total)
        except Exception:
            _listeners.remove(listener)  # a broken display never stops the work


@contextmanager
def reporting_to(listener: ProgressCallback) -> Iterator[ProgressCallback]:
    """Send progress to ``listener`` while the block runs."""
    _listeners.append(listener)
    try:
        yield listener
    finally:
        if listener in _listeners:
            _listeners.remove(listener)
