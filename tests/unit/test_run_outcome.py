"""Runs tell the truth (issue 14): counts → final state and message; the dead-letter board;
the forms' wording; the safety net's decision. Pure functions, no server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from deployments.alerts import alert_specs
from deployments.serve import cron_in_words
from flows.outcome import RunOutcome, judge
from flows.reconcile import summary_outcome
from state import DeadLetterRecord
from tasks.reporting.dead_letter_board import UnknownDeadLetters, advice, board_rows, choose
from tasks.reporting.drain_report import OrderNote, drain_markdown
from webhooks.serve import due_work_waiting

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def letter(
    id_: int, order_id: str, name: str | None, code: str = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
):
    payload = json.dumps({"id": int(order_id), "name": name}).encode() if name else None
    return DeadLetterRecord(
        id=id_,
        order_id=order_id,
        source="webhook",
        stage="opportunity",
        error_code=code,
        message="Amount must be positive",
        fields=["Amount"],
        payload=payload,
        first_seen=NOW - timedelta(hours=2),
        last_seen=NOW,
        attempts=2,
        resolved_at=None,
        resolution=None,
    )


def test_a_drain_that_dead_lettered_two_orders_fails_with_the_codes() -> None:
    verdict = judge(
        RunOutcome(
            "drain",
            180,
            done={"updated": 170, "created": 8},
            failed={"FIELD_CUSTOM_VALIDATION_EXCEPTION": 2},
        )
    )
    assert not verdict.ok
    assert verdict.message == "2 of 180 orders dead-lettered: FIELD_CUSTOM_VALIDATION_EXCEPTION ×2"


def test_a_clean_run_completes_with_its_counts() -> None:
    verdict = judge(RunOutcome("drain", 3, done={"created": 2, "updated": 1, "unchanged": 0}))
    assert verdict.ok
    assert verdict.message == "3 orders: 2 created, 1 updated"


def test_a_held_run_is_not_green_even_with_nothing_dead_lettered() -> None:
    verdict = judge(RunOutcome("drain", 10, held="INVALID_SESSION_ID: login refused"))
    assert not verdict.ok
    assert verdict.message.startswith("held: INVALID_SESSION_ID: login refused")


def test_most_common_codes_come_first() -> None:
    verdict = judge(RunOutcome("replay", 5, failed={"A": 1, "B": 3}, failed_verb="still failing"))
    assert verdict.message == "4 of 5 orders still failing: B ×3, A ×1"


def test_a_reconcile_that_repaired_with_failures_fails() -> None:
    summary = {
        "status": "repaired_with_failures",
        "shopify_orders": 180,
        "dry_run": False,
        "counts": {"in_sync": 170},
        "repaired": 8,
        "dead_lettered": 1,
        "retry_later": 1,
    }
    verdict = judge(summary_outcome(summary))
    assert not verdict.ok
    assert verdict.message.startswith("2 of 180 orders failed: ")
    ok = {**summary, "status": "ok", "dead_lettered": 0, "retry_later": 0}
    assert judge(summary_outcome(ok)).ok


def test_a_reconcile_without_the_scope_is_not_green() -> None:
    summary = {
        "status": "incomplete_scope",
        "message": "grant read_all_orders",
        "shopify_orders": 0,
    }
    verdict = judge(summary_outcome(summary))
    assert not verdict.ok
    assert "read_all_orders" in verdict.message


def test_the_board_names_the_order_its_error_and_what_to_do() -> None:
    [row] = board_rows([letter(7, "5001", "#1301")])
    assert row["order"] == "#1301"
    assert row["order_id"] == "5001"
    assert row["dead_letter_id"] == 7
    assert row["error"] == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: Amount must be positive [fields: Amount]"
    )
    assert row["attempts"] == 2
    assert "'#1301'" in row["what_to_do"]
    assert "replay-dead-letters/manual" in row["what_to_do"]


def test_the_board_shows_every_error_salesforce_reported() -> None:
    from dataclasses import replace

    both = replace(
        letter(7, "5001", "#1301"),
        errors=[
            {
                "code": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                "message": "Amount must be positive",
                "fields": ["Amount"],
            },
            {
                "code": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [Region__c]",
                "fields": ["Region__c"],
            },
        ],
    )
    [row] = board_rows([both])
    assert row["error"] == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: Amount must be positive [fields: Amount] · "
        "REQUIRED_FIELD_MISSING: Required fields are missing: [Region__c] [fields: Region__c]"
    )


def test_an_order_gone_from_shopify_is_resolved_by_hand() -> None:
    assert "shopsync dlq resolve 3" in advice(letter(3, "5003", None, code="ORDER_NOT_FOUND"))


def test_a_salesforce_code_gets_the_advice_of_its_cause() -> None:
    rule = advice(letter(4, "5004", "#1304", code="FIELD_CUSTOM_VALIDATION_EXCEPTION"))
    assert rule.startswith("a Salesforce validation rule rejected it")
    assert "'#1304'" in rule
    assert "widen the field" in advice(letter(5, "5005", None, code="STRING_TOO_LONG"))
    other = advice(letter(6, "5006", None, code="UNABLE_TO_LOCK_ROW"))
    assert other.startswith("fix the cause named in the error")


def test_replay_chooses_by_name_order_id_or_dead_letter_id() -> None:
    letters = [letter(7, "5001", "#1301"), letter(8, "5002", "#1302"), letter(9, "5003", None)]
    assert [x.id for x in choose(letters, ["#1302"])] == [8]
    assert [x.id for x in choose(letters, ["5003"])] == [9]
    assert [x.id for x in choose(letters, ["7", " 1302 "])] == [7, 8]
    assert [x.id for x in choose(letters, None)] == [7, 8, 9]
    assert [x.id for x in choose(letters, [""])] == [7, 8, 9]


def test_replay_refuses_a_reference_that_matches_nothing() -> None:
    with pytest.raises(UnknownDeadLetters, match="#9999"):
        choose([letter(7, "5001", "#1301")], ["#1301", "#9999"])


def test_the_nightly_schedule_in_words() -> None:
    assert cron_in_words("30 3 * * *", "America/New_York") == "03:30 America/New_York every day"
    assert "*/5 * * * *" in cron_in_words("*/5 * * * *", "UTC")


def test_the_safety_net_starts_a_drain_only_for_due_work_nobody_is_doing() -> None:
    assert due_work_waiting(NOW - timedelta(seconds=1), 0, NOW)
    assert not due_work_waiting(None, 0, NOW)  # empty inbox: no run
    assert not due_work_waiting(NOW + timedelta(minutes=5), 0, NOW)  # backoff not over
    assert not due_work_waiting(NOW - timedelta(minutes=5), 3, NOW)  # a drain is at work
    assert due_work_waiting((NOW - timedelta(seconds=1)).replace(tzinfo=None), 0, NOW)


def test_the_alerts_cover_failures_dead_letters_holds_and_a_missed_nightly() -> None:
    specs = {spec.name: spec for spec in alert_specs(timedelta(hours=26))}
    assert set(specs) == {
        "shopsync: run failed",
        "shopsync: dead letters added",
        "shopsync: run held",
        "shopsync: nightly reconcile missed",
    }
    missed = specs["shopsync: nightly reconcile missed"].trigger
    assert missed["posture"] == "Proactive"
    assert missed["within"] == timedelta(hours=26)
    assert specs["shopsync: run failed"].trigger["expect"] == {
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
    }


def test_the_drain_report_lists_what_was_synced_held_and_dead_lettered() -> None:
    markdown = drain_markdown(
        "1 of 3 orders dead-lettered: FIELD_CUSTOM_VALIDATION_EXCEPTION ×1",
        {"created": 2, "dead_letter": 1},
        "INVALID_SESSION_ID: login refused",
        [OrderNote("#1002", "FIELD_CUSTOM_VALIDATION_EXCEPTION: Amount | must be positive")],
    )
    assert markdown.startswith("# Drain: 1 of 3 orders dead-lettered")
    assert "| created | 2 |" in markdown
    assert "**Held:** INVALID_SESSION_ID: login refused" in markdown
    assert "| #1002 | FIELD_CUSTOM_VALIDATION_EXCEPTION: Amount \\| must be positive |" in markdown


def test_an_empty_drain_says_so() -> None:
    assert "Nothing was pending." in drain_markdown("0 orders", {}, None, [])
