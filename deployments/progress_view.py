"""How the CLI shows the progress the core reports (``tasks.reporting.progress``): ``rich``
progress bars when stdout is a terminal, plain lines on stderr otherwise (tests, CI, pipes), so
that stdout keeps only the command's summary line."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from tasks.reporting.progress import ProgressCallback, reporting_to

RECONCILE_STAGES = {
    "listing": "listing Shopify orders",
    "diff": "comparing with Salesforce",
    "repair": "repairing Salesforce",
}
DRY_RUN_STAGES = {**RECONCILE_STAGES, "repair": "planning the repair (dry run)"}


def _label(labels: Mapping[str, str], stage: str) -> str:
    return labels.get(stage, stage)


class PlainProgress:
    """Plain lines: one when a stage starts, one when it is complete (never one per step); a
    stage that starts over (``done`` goes back) is announced again."""

    def __init__(self, labels: Mapping[str, str], echo: Callable[[str], Any]) -> None:
        self.labels = labels
        self.echo = echo
        self.started: set[str] = set()
        self.finished: set[str] = set()
        self.last: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        label = _label(self.labels, stage)
        if done < self.last.get(stage, 0):  # the stage began again (another run, another pass)
            self.started.discard(stage)
            self.finished.discard(stage)
        self.last[stage] = done
        if stage not in self.started:
            self.started.add(stage)
            self.echo(f"{label} …")
        if total is not None and done >= total and stage not in self.finished:
            self.finished.add(stage)
            self.echo(f"{label}: done" if total == 1 else f"{label}: {done} of {total} done")


class RichProgress:
    """A ``rich`` progress bar per stage (a spinner and a count while the total is unknown)."""

    def __init__(self, labels: Mapping[str, str], console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.labels = labels
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        task = self.tasks.get(stage)
        if task is None:
            task = self.progress.add_task(_label(self.labels, stage), total=total)
            self.tasks[stage] = task
        self.progress.update(task, completed=done, total=total)


def _stderr_line(line: str) -> None:
    sys.stderr.write(f"{line}\n")
    sys.stderr.flush()


@contextmanager
def progress_display(
    labels: Mapping[str, str], *, tty: bool | None = None
) -> Iterator[ProgressCallback]:
    """Show the core's progress while the block runs: bars on a terminal, else plain lines."""
    on_terminal = sys.stdout.isatty() if tty is None else tty
    if not on_terminal:
        with reporting_to(PlainProgress(labels, _stderr_line)) as view:
            yield view
        return
    with RichProgress(labels) as bars, reporting_to(bars) as view:
        yield view
