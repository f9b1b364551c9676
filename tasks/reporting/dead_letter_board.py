"""The open dead letters as one always-current table in the Prefect UI, and choosing them by name.

The table artifact has the fixed key ``shopsync-dead-letters``: every run that adds or resolves a
dead letter publishes a new version, so the Artifacts page always shows what is open now (order
name, order id, dead-letter id, stage, the error with its code and fields, attempts, first and
last seen, and what to do). ``choose`` lets the replay form take what that table shows: order names
(``#1301``), order ids or dead-letter ids.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from state import DeadLetterRecord, StateStore
from tasks.salesforce.errors import cause_of

ARTIFACT_KEY = "shopsync-dead-letters"
REPLAY = "run replay-dead-letters/manual with {ref} (or `shopsync dlq replay {ref}`)"

# What an operator does about a failure, by its cause (``tasks.salesforce.errors.cause_of``)
# or our own error code (anything else: fix the cause, replay).
ADVICE = {
    "validation_rule": "a Salesforce validation rule rejected it: fix the order in Shopify or the "
    "rule in Salesforce, then {replay}",
    "required_field": "Salesforce requires a field the mapping leaves empty: fill it in Shopify "
    "or map it (SHOPSYNC_MAPPING), then {replay}",
    "unknown_field": "the field mapping names a field the org lacks: run `shopsync doctor`, fix "
    "the mapping or the org, then {replay}",
    "duplicate_rule": "a Salesforce duplicate rule blocked it: merge the duplicates or relax the "
    "rule, then {replay}",
    "too_long": "a value is longer than the Salesforce field: shorten it or widen the field, "
    "then {replay}",
    "ORDER_NOT_FOUND": "Shopify no longer has the order (deleted, or older than 60 days without "
    "read_all_orders): close it with `shopsync dlq resolve {id}`",
    "INVALID_ORDER": "the order cannot be mapped (see the message): fix it in Shopify, then "
    "{replay}",
}


def payload_order_name(payload: bytes | None) -> str | None:
    """The order's name (``#1301``) from a webhook payload, when it has one."""
    if not payload:
        return None
    try:
        name = json.loads(payload).get("name")
    except (ValueError, AttributeError):
        return None
    return str(name) if name else None


def order_name(letter: DeadLetterRecord) -> str | None:
    """The order's name (``#1301``): recorded with the dead letter (sync-order, reconcile), else
    read from the webhook payload kept with it."""
    return letter.order_name or payload_order_name(letter.payload)


def advice(letter: DeadLetterRecord) -> str:
    """The next step for one dead letter."""
    ref = order_name(letter) or letter.order_id
    key = cause_of(letter.error_code) or letter.error_code or ""
    template = ADVICE.get(key, "fix the cause named in the error, then {replay}")
    return template.format(replay=REPLAY.format(ref=f"'{ref}'"), id=letter.id)


def _error_text(code: str | None, message: str, fields: Sequence[str] | None) -> str:
    prefix = f"{code}: " if code else ""
    suffix = f" [fields: {', '.join(fields)}]" if fields else ""
    return f"{prefix}{message}{suffix}"


def errors_text(letter: DeadLetterRecord) -> str:
    """Every error the remote system reported for a dead letter, one after another.

    Salesforce can reject a record for several reasons at once (two validation rules, a missing
    field); the board shows them all, not only the first.
    """
    if not letter.errors:
        return _error_text(letter.error_code, letter.message, letter.fields)
    return " · ".join(
        _error_text(e.get("code"), str(e.get("message", "")), e.get("fields"))
        for e in letter.errors
    )


def board_rows(letters: Iterable[DeadLetterRecord]) -> list[dict[str, Any]]:
    """One table row per open dead letter, oldest problems last seen first."""
    rows = []
    for letter in sorted(letters, key=lambda item: item.last_seen, reverse=True):
        rows.append(
            {
                "order": order_name(letter) or "",
                "order_id": letter.order_id,
                "dead_letter_id": letter.id,
                "stage": letter.stage,
                "error": errors_text(letter),
                "attempts": letter.attempts,
                "first_seen": f"{letter.first_seen:%Y-%m-%d %H:%M}Z",
                "last_seen": f"{letter.last_seen:%Y-%m-%d %H:%M}Z",
                "what_to_do": advice(letter),
            }
        )
    return rows


def publish_board(store: StateStore) -> None:
    """Publish the open dead letters as the ``shopsync-dead-letters`` table (best effort)."""
    from prefect.artifacts import create_table_artifact

    letters = store.dead_letters()
    rows = board_rows(letters) or [{"order": "no open dead letters"}]
    with contextlib.suppress(Exception):  # the UI table is reporting, never a failure
        create_table_artifact(
            rows,
            key=ARTIFACT_KEY,
            description=f"{len(letters)} open dead letter(s): each row says what to do. Replay "
            "with replay-dead-letters/manual (order names like #1301, order ids or dead-letter "
            "ids; empty = all).",
        )


class UnknownDeadLetters(ValueError):
    """Some of the requested references match no open dead letter."""


def choose(
    letters: Sequence[DeadLetterRecord], refs: Sequence[str] | None
) -> list[DeadLetterRecord]:
    """The open dead letters that ``refs`` name: ``#1301``, an order id or a dead-letter id.

    No refs means all of them. A ref that matches nothing is an error naming it, so a typo in the
    form never silently replays nothing.
    """
    cleaned = [str(ref).strip() for ref in refs or [] if str(ref).strip()]
    if not cleaned:
        return list(letters)
    chosen: dict[int, DeadLetterRecord] = {}
    unknown = []
    for ref in cleaned:
        matches = [letter for letter in letters if _matches(letter, ref)]
        if not matches:
            unknown.append(ref)
        chosen.update((letter.id, letter) for letter in matches)
    if unknown:
        open_refs = ", ".join(order_name(letter) or letter.order_id for letter in letters[:20])
        raise UnknownDeadLetters(
            f"no open dead letter matches {', '.join(unknown)} "
            f"(open: {open_refs or 'none'}); use an order name like #1301, an order id or a "
            "dead-letter id"
        )
    return [letter for letter in letters if letter.id in chosen]


def _matches(letter: DeadLetterRecord, ref: str) -> bool:
    if ref.startswith("#"):
        return order_name(letter) == ref
    if ref.isdigit() and (ref == letter.order_id or int(ref) == letter.id):
        return True
    return order_name(letter) in {ref, f"#{ref}"}
