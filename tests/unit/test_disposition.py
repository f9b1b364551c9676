"""The one disposition function: classified error + attempts + policy → decision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tasks.disposition import BackoffPolicy, dispose, stops_run
from tasks.errors import (
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
