"""Claims and leases on the inbox: who drains which order, until when, and how it ends."""

from __future__ import annotations

import os
import socket
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, or_, select, text, update
from sqlalchemy.orm import Session

from state.base import StoreBase
from state.db import READ_ONLY
from state.inbox import inbox_record
from state.models import InboxItem, utcnow
from state.records import ClaimedOrder, InboxRow

# Any constant: the PostgreSQL advisory lock that claim transactions queue on.
CLAIM_LOCK_KEY = 0x5305_5C02


class ClaimsMixin(StoreBase):
    """Claims due deliveries under a lease, renews, finishes or releases them."""

    def claim(
        self,
        *,
        max_orders: int,
        lease: timedelta,
        owner: str | None = None,
        now: datetime | None = None,
    ) -> list[ClaimedOrder]:
        """Claim the due deliveries of up to ``max_orders`` orders under a lease.

        A row is due when it is pending and its next attempt time has come, or when it is
        claimed under a lease that has expired (its worker died). All due rows of an order are
        claimed together so several deliveries of one order coalesce into one sync. The lease
        owner names the claiming process (``host:pid:random``): a claimed row shows who holds it.
        """
        now = now or utcnow()
        owner = owner or claim_owner()
        due = or_(
            and_(InboxItem.status == "pending", InboxItem.next_attempt_at <= now),
            and_(InboxItem.status == "claimed", InboxItem.lease_expires_at <= now),
        )
        # An order whose sync is in flight under a live lease waits: one order, one worker.
        in_flight = select(InboxItem.order_id).where(
            InboxItem.status == "claimed", InboxItem.lease_expires_at > now
        )
        with self._tx() as s:
            self._serialise_claims(s)
            order_ids = list(
                s.scalars(
                    select(InboxItem.order_id)
                    .where(
                        due, InboxItem.order_id.is_not(None), InboxItem.order_id.not_in(in_flight)
                    )
                    .group_by(InboxItem.order_id)
                    .order_by(func.min(InboxItem.received_at))
                    .limit(max_orders)
                )
            )
            if not order_ids:
                return []
            # Re-checking `due` in the UPDATE means a row is never claimed twice even where
            # claimers do overlap (a database other than SQLite and PostgreSQL).
            s.execute(
                update(InboxItem)
                .where(due, InboxItem.order_id.in_(order_ids))
                .values(
                    status="claimed",
                    lease_owner=owner,
                    lease_expires_at=now + lease,
                    attempts=InboxItem.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            rows = s.scalars(
                select(InboxItem)
                .where(InboxItem.lease_owner == owner, InboxItem.status == "claimed")
                .order_by(InboxItem.received_at)
            ).all()
            return _group_by_order(rows)

    def _serialise_claims(self, s: Session) -> None:
        """Make claim transactions run one at a time, as SQLite's BEGIN IMMEDIATE does.

        The unit a claim takes is an order (all its due deliveries, none while another claimer
        holds it), not a row: ``FOR UPDATE SKIP LOCKED`` or a conditional UPDATE alone keep a row
        from being claimed twice, but a delivery that lands for an order another claimer holds
        is an unlocked, due row, and a second drain would sync that order at the same time. On
        PostgreSQL a transaction-scoped advisory lock closes that gap: claims are two short
        statements, so they queue for milliseconds while the syncs they hand out (seconds) run
        in parallel. The lock is released at commit or rollback, also when the client dies.
        """
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLAIM_LOCK_KEY})

    def renew(self, owner: str, lease: timedelta, now: datetime | None = None) -> int:
        """Extend the live claims of ``owner`` to ``now + lease`` (a drain's heartbeat); returns
        how many rows it still holds. A lease that already expired is not revived: another drain
        may have taken the order over."""
        now = now or utcnow()
        with self._tx() as s:
            result = s.execute(
                update(InboxItem)
                .where(
                    InboxItem.lease_owner == owner,
                    InboxItem.status == "claimed",
                    InboxItem.lease_expires_at > now,
                )
                .values(lease_expires_at=now + lease)
                .execution_options(synchronize_session=False)
            )
            return int(result.rowcount or 0)  # type: ignore[attr-defined]  # a CursorResult

    def complete(self, webhook_ids: Sequence[str]) -> None:
        """Mark deliveries done."""
        self._finish(webhook_ids, status="done", error=None)

    def dead(self, webhook_ids: Sequence[str], error: str) -> None:
        """Mark deliveries dead (their order is in the dead letters)."""
        self._finish(webhook_ids, status="dead", error=error)

    def retry_later(self, webhook_ids: Sequence[str], at: datetime, error: str) -> None:
        """Release deliveries back to pending, due again at ``at``, after a failed attempt.

        The claim that took them counted as an attempt and still does: after enough of these
        the drain gives up and dead-letters the order.
        """
        with self._tx() as s:
            s.execute(
                update(InboxItem)
                .where(InboxItem.webhook_id.in_(list(webhook_ids)))
                .values(**_released(at, error))
            )

    def hold(self, webhook_ids: Sequence[str], until: datetime, reason: str) -> None:
        """Put claimed deliveries back to pending until ``until`` without using up an attempt.

        For waits that say nothing about the order itself (a rate limit, the API budget
        reserve, rejected credentials): the claim's attempt is given back, so no number of holds
        brings an order closer to the dead letters. Rows no longer claimed are left alone, so
        holding the same rows twice gives back one attempt, not two.
        """
        with self._tx() as s:
            s.execute(
                update(InboxItem)
                .where(InboxItem.webhook_id.in_(list(webhook_ids)), InboxItem.status == "claimed")
                .values(
                    **_released(until, reason),
                    attempts=case((InboxItem.attempts > 0, InboxItem.attempts - 1), else_=0),
                )
            )

    def _finish(self, webhook_ids: Sequence[str], *, status: str, error: str | None) -> None:
        with self._tx() as s:
            s.execute(
                update(InboxItem)
                .where(InboxItem.webhook_id.in_(list(webhook_ids)))
                .values(
                    status=status,
                    last_error=error,
                    finished_at=utcnow(),
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )

    def next_due_at(self) -> datetime | None:
        """When the earliest pending delivery becomes due, if any is pending."""
        with self._tx() as s:
            return s.scalar(
                select(func.min(InboxItem.next_attempt_at)).where(InboxItem.status == "pending")
            )

    def drain_outlook(self, now: datetime) -> tuple[datetime | None, int]:
        """When the inbox next has work for a new drain, and how many rows live drains hold.

        Work is a pending delivery whose time has come, or a claim whose lease ran out (its drain
        died): the first of those times, if any, and the count of claims under a live lease.
        """
        # Two index-friendly reads (ix_inbox_status_next_attempt) in one read-only snapshot: the
        # receiver's nudger asks this several times a second during a burst, with thousands of
        # rows pending, and must not take the write lock the receiver's commits need.
        claimed = InboxItem.status == "claimed"
        with self.engine.connect() as connection:
            s = connection.execution_options(**{READ_ONLY: True})
            first_pending = s.execute(
                select(func.min(InboxItem.next_attempt_at)).where(InboxItem.status == "pending")
            ).scalar()
            first_lease_end, live_claims = s.execute(
                select(
                    func.min(InboxItem.lease_expires_at),
                    func.count(case((InboxItem.lease_expires_at > now, 1), else_=None)),
                ).where(claimed)
            ).one()
        times = [t for t in (first_pending, first_lease_end) if t is not None]
        return (min(times) if times else None), int(live_claims or 0)


def claim_owner() -> str:
    """A lease owner for one claim: this host and process, and a random part (≤ 64 chars)."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:16]}"


def _released(at: datetime, error: str) -> dict[str, Any]:
    """Column values of deliveries let go by their worker, due again at ``at``."""
    return {
        "status": "pending",
        "next_attempt_at": at,
        "last_error": error,
        "lease_owner": None,
        "lease_expires_at": None,
    }


def _group_by_order(rows: Sequence[InboxItem]) -> list[ClaimedOrder]:
    grouped: dict[str, list[InboxRow]] = defaultdict(list)
    for row in rows:
        grouped[str(row.order_id)].append(inbox_record(row))
    return [ClaimedOrder(order_id=oid, deliveries=items) for oid, items in grouped.items()]
