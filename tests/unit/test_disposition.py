"""The one disposition function: classified error + attempts + policy → decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.core.disposition import (
    AFTER_TASK_RETRIES,
    BackoffPolicy,
    dispose,
    is_transient,
    retry_in_task,
    stops_run,
)
from tasks.core.errors import (
    AuthError,
    BudgetExhausted,
    InvalidOrder,
    PermanentError,
    RateLimited,
    RetryableError,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
POLICY = BackoffPolicy(retry_seconds=(30, 120))


@pytest.mark.parametrize(
    ("error", "attempts", "kind", "wait", "stop"),
    [
        (None, 1, "done", None, False),
        (RetryableError("UNABLE_TO_LOCK_ROW"), 1, "retry", 30, False),
        (RetryableError("UNABLE_TO_LOCK_ROW"), 2, "retry", 120, False),
        (RetryableError("UNABLE_TO_LOCK_ROW"), 3, "dead_letter", None, False),
        (PermanentError("bad"), 1, "dead_letter", None, False),
        (InvalidOrder("FIELD_CUSTOM_VALIDATION_EXCEPTION"), 1, "dead_letter", None, False),
        (RateLimited("slow down", retry_after=7), 9, "hold", 7, False),
        (RateLimited("org limit", stop_run=True), 1, "hold", 60, True),
        (AuthError("refused"), 1, "hold", 300, True),
        (BudgetExhausted(90, 100, 90), 1, "hold", 300, True),
    ],
)
def test_dispose(error, attempts, kind, wait, stop):
    decision = dispose(error, attempts, NOW, POLICY)
    assert decision.kind == kind
    assert decision.at == (NOW + timedelta(seconds=wait) if wait is not None else None)
    assert decision.stop_run is stop
    if error is not None:
        assert stops_run(error) is stop
        assert decision.reason == str(error)


@pytest.mark.parametrize(
    ("limit", "nights", "kind"),
    [
        (3, 0, "retry"),  # a manual run counts no nights: left for a later run
        (3, 1, "retry"),
        (3, 2, "retry"),
        (3, 3, "dead_letter"),
        (1, 0, "retry"),
        (1, 1, "dead_letter"),
    ],
)
def test_nightly_policy_dead_letters_after_max_failed_nights(limit, nights, kind):
    decision = dispose(RetryableError("lock"), nights, NOW, BackoffPolicy.nightly(limit))
    assert decision.kind == kind
    if kind == "retry":  # the next nightly run; with one night allowed, a manual run's "later"
        assert decision.at == NOW + (timedelta(days=1) if limit > 1 else timedelta(0))


def test_nightly_policy_still_dead_letters_permanent_failures_at_once():
    policy = BackoffPolicy.nightly(3)
    assert dispose(InvalidOrder("bad"), 1, NOW, policy).kind == "dead_letter"
    assert dispose(AuthError("refused"), 1, NOW, policy).kind == "hold"


def test_after_task_retries_a_transient_failure_is_dead_lettered():
    assert dispose(RetryableError("5xx"), 1, NOW, AFTER_TASK_RETRIES).kind == "dead_letter"
    assert dispose(RateLimited("org", stop_run=True), 1, NOW, AFTER_TASK_RETRIES).kind == "hold"


@pytest.mark.parametrize(
    ("error", "transient", "in_task"),
    [
        (RetryableError("5xx"), True, True),
        (RateLimited("shopify throttle"), False, True),
        (RateLimited("org limit", stop_run=True), False, False),
        (AuthError("refused"), False, False),
        (BudgetExhausted(90, 100, 90), False, False),
        (PermanentError("bad"), False, False),
        (ValueError("not ours"), False, False),
    ],
)
def test_transient_and_task_retry_rules(error, transient, in_task):
    assert is_transient(error) is transient
    assert retry_in_task(error) is in_task
