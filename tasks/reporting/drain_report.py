"""The drain run's report in the Prefect UI: what it synced, held and dead-lettered, and why.

``drain_markdown`` is pure; ``publish_drain_report`` posts it as a markdown artifact under the
key ``shopsync-drain`` (one version per run, so the Artifacts page keeps the history). The drain
appends the values it cut or left out (``tasks.reporting.artifacts.field_warnings_markdown``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ARTIFACT_KEY = "shopsync-drain"
MAX_ORDER_ROWS = 200  # orders that did not sync, listed one per row with the reason
MAX_NAMES_CHARS = 4000  # the names of the synced orders, per outcome, as ranges
DONE = frozenset({"created", "updated", "recreated", "unchanged", "stale", "skipped", "deleted"})


@dataclass(frozen=True)
class OrderNote:
    """One order the operator should read about: dead-lettered, with the reason."""

    order: str  # "#1001" or the order id
    detail: str


def drain_markdown(
    verdict: str,
    outcomes: Mapping[str, int],
    held: str | None,
    dead_lettered: Sequence[OrderNote],
    orders: Sequence[OrderNote] = (),
) -> str:
    """The report: the run's one-line verdict, counts, hold, dead letters with reasons, and
    what happened to each order (:func:`order_rows`)."""
    lines = [f"# Drain: {verdict}", ""]
    if outcomes:
        lines += ["| outcome | orders |", "|---|---|"]
        lines += [f"| {name} | {count} |" for name, count in sorted(outcomes.items())]
    else:
        lines.append("Nothing was pending.")
    if held:
        lines += ["", f"**Held:** {held}. The rest stays pending; the next run continues."]
    if dead_lettered:
        lines += ["", "## Dead-lettered", "", "| order | reason |", "|---|---|"]
        lines += [f"| {note.order} | {_cell(note.detail)} |" for note in dead_lettered]
        lines += [
            "",
            "Each is in the `shopsync-dead-letters` table with what to do; after fixing the "
            "cause, run `replay-dead-letters/manual` with the order names.",
        ]
    if orders:
        lines += ["", "## Orders", "", "| order | outcome |", "|---|---|", *order_rows(orders)]
    return "\n".join(lines)


def order_rows(orders: Sequence[OrderNote], limit: int = MAX_ORDER_ROWS) -> list[str]:
    """Table rows for what happened to each order: every order that did not sync on a row of
    its own with the reason (up to ``limit``), then one row per outcome of the others with
    their names, runs of consecutive numbers written as ranges (``#1001–#1800``)."""
    problems = [n for n in orders if _action(n) not in DONE]
    rows = [f"| {note.order} | {_cell(note.detail)} |" for note in problems[:limit]]
    if len(problems) > limit:
        rows.append(f"| … | {len(problems) - limit} more, counted above |")
    done: dict[str, list[str]] = {}
    for note in orders:
        if _action(note) in DONE:
            done.setdefault(_action(note), []).append(note.order)
    for action, names in done.items():
        rows.append(f"| {_cell(_ranges(names))} | {action} ({len(names)}) |")
    return rows


def _action(note: OrderNote) -> str:
    return note.detail.split(":")[0]


def _ranges(names: Sequence[str], max_chars: int = MAX_NAMES_CHARS) -> str:
    """``#1001–#1003, #1007, 5551234`` (numbers in order, consecutive ones as a range)."""
    numbers = sorted({int(n[1:]) for n in names if n.startswith("#") and n[1:].isdigit()})
    others = sorted({n for n in names if not (n.startswith("#") and n[1:].isdigit())})
    parts: list[str] = []
    start = previous = None
    for number in [*numbers, None]:
        if number is not None and previous is not None and number == previous + 1:
            previous = number
            continue
        if start is not None:
            parts.append(f"#{start}" if start == previous else f"#{start}–#{previous}")
        start = previous = number
    parts += others
    text = ", ".join(parts)
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars].rsplit(", ", 1)[0]
    return f"{cut}, … ({len(parts) - len(cut.split(', '))} more runs)"


def publish_drain_report(markdown: str, verdict: str) -> None:
    """Post the report as the run's ``shopsync-drain`` artifact (best effort)."""
    from prefect.artifacts import create_markdown_artifact

    with contextlib.suppress(Exception):  # reporting never fails the run
        create_markdown_artifact(markdown, key=ARTIFACT_KEY, description=verdict)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
