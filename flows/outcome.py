"""How a shopsync run ends: its counts become Completed or Failed with one line an operator reads.

Every flow does all the work it can first, then returns ``final_state(...)``. A run that
dead-lettered or failed any order, or that was held (Salesforce refused the login, the API budget
is reserved), ends ``Failed`` with a message such as
``2 of 180 orders dead-lettered: FIELD_CUSTOM_VALIDATION_EXCEPTION ×2``; its result (the summary
dict) is kept all the same. The Prefect UI then shows the run red, and the alert automations
(``deployments/alerts.py``) fire on it. ``judge`` is pure; the rest is thin Prefect glue.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEAD_LETTERS_ADDED = "shopsync.dead-letters.added"
RUN_HELD = "shopsync.run.held"


@dataclass(frozen=True)
class RunOutcome:
    """What a run did, in the terms its final state is decided by."""

    kind: str  # drain, replay, reconcile, sync-order
    total: int  # orders the run handled (or looked at)
    done: Mapping[str, int] = field(default_factory=dict)  # e.g. {"updated": 170, "created": 8}
    failed: Mapping[str, int] = field(default_factory=dict)  # error code → orders that failed
    failed_verb: str = "dead-lettered"
    held: str | None = None  # why the run stopped early and left work pending
    note: str | None = None  # anything else the operator must read (e.g. a missing scope)
    dead_lettered: int = 0  # dead letters this run added (announced as an event)


@dataclass(frozen=True)
class Verdict:
    """The run's final state type and its one-line message."""

    ok: bool
    message: str


def judge(outcome: RunOutcome) -> Verdict:
    """Completed only when nothing failed, nothing was held and nothing needs a human."""
    parts: list[str] = []
    failures = sum(outcome.failed.values())
    if failures:
        codes = ", ".join(
            f"{code} ×{count}" for code, count in Counter(outcome.failed).most_common()
        )
        parts.append(f"{failures} of {outcome.total} orders {outcome.failed_verb}: {codes}")
    if outcome.held:
        parts.append(f"held: {outcome.held}; the rest stays pending for the next run")
    if outcome.note:
        parts.append(outcome.note)
    if parts:
        return Verdict(False, "; ".join(parts))
    done = ", ".join(f"{count} {what}" for what, count in outcome.done.items() if count)
    return Verdict(True, _orders(outcome.total) + (f": {done}" if done else ""))


def _orders(count: int) -> str:
    return f"{count} order" if count == 1 else f"{count} orders"


def final_state(outcome: RunOutcome, result: Any) -> Any:
    """The state a flow returns: Completed or Failed, carrying ``result`` either way.

    Also announces the run's dead letters and holds as Prefect events, which the alert
    automations listen to (best effort: reporting never breaks a run).
    """
    from prefect.states import Completed, Failed

    verdict = judge(outcome)
    _announce(outcome, verdict)
    _log(verdict)
    if verdict.ok:
        return Completed(message=verdict.message, data=result)
    return Failed(message=verdict.message, data=result)


def result_of(state: Any) -> Any:
    """A finished run's result, whether it ended Completed or Failed (for the CLI and tests).

    A run that raised has no result: its exception is raised here.
    """
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    return result


def run_flow(flow: Any, **parameters: Any) -> tuple[Any, Any]:
    """Call a flow in this process; return its final state and its result."""
    state = flow(**parameters, return_state=True)
    return state, result_of(state)


def _log(verdict: Verdict) -> None:
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        logger = get_run_logger()
    except MissingContextError:
        return
    (logger.info if verdict.ok else logger.error)("%s", verdict.message)


def _announce(outcome: RunOutcome, verdict: Verdict) -> None:
    try:
        from prefect.events import emit_event
        from prefect.runtime import flow_run

        resource = {
            "prefect.resource.id": f"shopsync.run.{flow_run.id or 'local'}",
            "prefect.resource.name": flow_run.name or outcome.kind,
            "shopsync.kind": outcome.kind,
        }
        if outcome.dead_lettered:
            emit_event(
                DEAD_LETTERS_ADDED,
                resource=resource,
                payload={"count": outcome.dead_lettered, "message": verdict.message},
            )
        if outcome.held:
            emit_event(RUN_HELD, resource=resource, payload={"reason": outcome.held})
    except Exception:  # noqa: S110 - alerts are reporting, never a failure of the run
        pass
