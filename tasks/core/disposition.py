"""What to do with an order after a sync attempt: the one place that decides.

Every flow that syncs orders (the drain, its batch path, sync-order, replay, reconcile's repair)
asks :func:`dispose` what an outcome means, instead of catching error classes itself. The error
was classified once, by the adapter that saw it (``tasks.salesforce.errors``,
``tasks.shopify.client``); this module turns that class, the attempts so far and the backoff
policy into a decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from tasks.core.errors import AuthError, BudgetExhausted, RateLimited, RetryableError, SyncError

Kind = Literal["done", "retry", "hold", "dead_letter"]

HOLD_AFTER_AUTH = timedelta(minutes=5)
HOLD_WHEN_RATE_LIMITED = timedelta(seconds=60)  # when the remote system sends no Retry-After
NIGHT = timedelta(days=1)


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

    @classmethod
    def nightly(cls, max_failed_nights: int) -> BackoffPolicy:
        """Reconcile's repair: a transient failure is tried again by the next nightly run, and
        dead-lettered once it failed on ``max_failed_nights`` nightly runs
        (``SHOPSYNC_RECONCILE_MAX_FAILED_NIGHTS``)."""
        return cls(retry_seconds=(NIGHT.total_seconds(),) * max(0, max_failed_nights - 1))


# A flow with nobody to try again later (sync-order, replay): Prefect's task retries were the
# retries, so a transient failure that outlived them is dead-lettered (and can be replayed).
AFTER_TASK_RETRIES = BackoffPolicy(retry_seconds=())


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
        attempts: Failed attempts so far, this one included (0: a run that does not count its
            failures, such as a manual reconcile: a transient failure is left for later).
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
    if is_transient(error) and attempts <= len(policy.retry_seconds):
        return Disposition("retry", now + _wait(policy, attempts), error=error)
    return Disposition("dead_letter", error=error)


def _wait(policy: BackoffPolicy, attempts: int) -> timedelta:
    waits = policy.retry_seconds
    if not waits:
        return timedelta(0)
    return timedelta(seconds=waits[min(max(attempts, 1), len(waits)) - 1])


def is_transient(error: BaseException) -> bool:
    """A failed attempt that may succeed later (5xx, locked rows, timeouts): it counts as an
    attempt and is retried while the policy has waits left. A rate limit is not one: it holds."""
    return isinstance(error, RetryableError) and not isinstance(error, RateLimited)


def retry_in_task(error: BaseException) -> bool:
    """Whether Prefect's task retries (seconds apart) should try again at once.

    A transient failure, or a rate limit that only slows this call (Shopify's); never a
    permanent or auth failure, nor a rate limit that stops the run (Salesforce's: the order is
    held for its Retry-After instead of probing the limit again in a few seconds).
    """
    if isinstance(error, RateLimited):
        return not error.stop_run
    return is_transient(error)


def stops_run(error: SyncError) -> bool:
    """Whether a failure is the whole org's: the run holds the rest of its work and fails."""
    return isinstance(error, (AuthError, BudgetExhausted)) or (
        isinstance(error, RateLimited) and error.stop_run
    )
