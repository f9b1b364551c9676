"""What to do with an order after a sync attempt: the one place that decides.

Every flow that syncs orders (the drain, its batch path, sync-order, replay, reconcile's repair)
asks :func:`dispose` what an outcome means, instead of catching error classes itself. The error
was classified once, by the adapter that saw it (``tasks.salesforce.errors``,
``tasks.shopify``); this module turns that class, the attempts so far and the backoff policy into
a decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from tasks.errors import AuthError, BudgetExhausted, RateLimited, RetryableError, SyncError

Kind = Literal["done", "retry", "hold", "dead_letter"]

HOLD_AFTER_AUTH = timedelta(minutes=5)
HOLD_WHEN_RATE_LIMITED = timedelta(seconds=60)  # when the remote system sends no Retry-After


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How long to wait before trying an order again.

    ``retry_seconds``: the inbox's waits after a transient failure outlived Prefect's task
    retries (``SHOPSYNC_INBOX_BACKOFF_SECONDS``); once they are used up the order is
    dead-lettered.
    """

    retry_seconds: Sequence[float] = (30, 120, 600, 1800, 3600, 7200, 14400)
    hold_after_auth: timedelta = HOLD_AFTER_AUTH
    hold_when_rate_limited: timedelta = HOLD_WHEN_RATE_LIMITED


@dataclass(frozen=True, slots=True)
class Disposition:
    """The decision for one order.

    - ``done``: nothing failed.
    - ``retry``: a transient failure; try again at ``at`` (counts as a failed attempt).
    - ``hold``: nothing is wrong with the order (a refused login, the API budget, a rate limit);
      leave it pending until ``at`` without counting an attempt.
    - ``dead_letter``: retrying cannot help, or the retries are used up.

    ``stop_run``: the cause is the whole org's or the credentials' (a refused login, Salesforce's
    request limit, our API reserve): the run holds the rest of its work and ends failed.
    """

    kind: Kind
    at: datetime | None = None
    stop_run: bool = False
    error: SyncError | None = field(default=None, compare=False)

    @property
    def reason(self) -> str:
        """One line for the inbox row, the dead letter or the run's message."""
        return str(self.error) if self.error is not None else ""


def dispose(
    error: SyncError | None, attempts: int, now: datetime, policy: BackoffPolicy
) -> Disposition:
    """Decide what happens to an order whose latest attempt ended with ``error``.

    Args:
        error: The classified failure, or None when the order synced.
        attempts: Failed attempts so far, this one included.
        now: The time of the decision (timezone-aware UTC).
        policy: The backoff and hold durations.
    """
    if error is None:
        return Disposition("done")
    if isinstance(error, RateLimited):
        wait = (
            timedelta(seconds=error.retry_after)
            if error.retry_after
            else policy.hold_when_rate_limited
        )
        return Disposition("hold", now + wait, stop_run=error.stop_run, error=error)
    if isinstance(error, (AuthError, BudgetExhausted)):
        return Disposition("hold", now + policy.hold_after_auth, stop_run=True, error=error)
    if isinstance(error, RetryableError) and attempts <= len(policy.retry_seconds):
        wait = timedelta(seconds=policy.retry_seconds[max(0, attempts - 1)])
        return Disposition("retry", now + wait, error=error)
    return Disposition("dead_letter", error=error)


def stops_run(error: SyncError) -> bool:
    """Whether a failure is the whole org's: the run holds the rest of its work and fails."""
    return isinstance(error, (AuthError, BudgetExhausted)) or (
        isinstance(error, RateLimited) and error.stop_run
    )
