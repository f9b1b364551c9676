"""The drain run's report in the Prefect UI: what it synced, held and dead-lettered, and why.

``drain_markdown`` is pure; ``publish_drain_report`` posts it as a markdown artifact under the
key ``shopsync-drain`` (one version per run, so the Artifacts page keeps the history). The drain
appends the values it cut or left out (``tasks.artifacts.field_warnings_markdown``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ARTIFACT_KEY = "shopsync-drain"
MAX_ORDER_ROWS = 200  # a 2,000-order drain lists its problems and the first of the rest
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
    """One table row per order, those that did not sync first; past ``limit`` rows, one line
    says how many more there are."""
    problems = [n for n in orders if n.detail.split(":")[0] not in DONE]
    rest = [n for n in orders if n.detail.split(":")[0] in DONE]
    shown = (problems + rest)[:limit]
    rows = [f"| {note.order} | {_cell(note.detail)} |" for note in shown]
    if len(orders) > len(shown):
        rows.append(f"| … | {len(orders) - len(shown)} more orders, counted above |")
    return rows


def publish_drain_report(markdown: str, verdict: str) -> None:
    """Post the report as the run's ``shopsync-drain`` artifact (best effort)."""
    from prefect.artifacts import create_markdown_artifact

    with contextlib.suppress(Exception):  # reporting never fails the run
        create_markdown_artifact(markdown, key=ARTIFACT_KEY, description=verdict)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
