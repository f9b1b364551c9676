"""Prefect artifacts of the runs, and the run id they and the state store record.

Small on purpose: each function renders one table or publishes one artifact, so a fuller run
artifact can be composed from them. Publishing is best effort: a run never fails because the
Prefect API could not take its report.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import get_run_context

from state import FieldWarning

TABLE_ROWS = 200


def current_flow_run_id() -> str | None:
    """The Prefect flow run this code runs in, if any."""
    try:
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]
    except Exception:
        return None


def field_warnings_markdown(warnings: Sequence[FieldWarning], *, limit: int = TABLE_ROWS) -> str:
    """A markdown table of field warnings, one row each (the first ``limit`` of them)."""
    lines = [
        f"# {len(warnings)} value(s) cut or left out, "
        f"in {len({w.order_id for w in warnings})} order(s)",
        "",
        "| order | object | field | what | length / limit | why |",
        "|---|---|---|---|---|---|",
    ]
    for w in warnings[:limit]:
        order = f"{w.order_name} ({w.order_id})" if w.order_name else w.order_id
        lengths = "" if w.limit is None else f"{w.original_length} / {w.limit}"
        lines.append(
            f"| {_cell(order)} | {w.object} | {w.field} | {w.kind} | {lengths} "
            f"| {_cell(w.reason or '')} |"
        )
    if len(warnings) > limit:
        lines += ["", f"… and {len(warnings) - limit} more: `shopsync warnings` lists them all."]
    return "\n".join(lines)


def publish_field_warnings(warnings: Sequence[FieldWarning], *, key: str) -> None:
    """A markdown artifact listing the run's field warnings (none when there are none)."""
    if not warnings:
        return
    try:
        create_markdown_artifact(
            field_warnings_markdown(warnings),
            key=key,
            description="Values cut to fit Salesforce, or left out",
        )
    except Exception:  # pragma: no cover - reporting never fails the run
        get_run_logger().warning("could not create the field warnings artifact")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
