"""A drain's lease heartbeat: claims are short (so a killed drain's orders come back within
seconds) and renewed while the drain is alive (so a long batch never loses them)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Protocol

BEATS_PER_LEASE = 3  # renew three times per lease: two missed beats still keep the claims

log = logging.getLogger(__name__)


class Renewer(Protocol):
    """What the heartbeat needs of the state store."""

    def renew(self, owner: str, lease: timedelta) -> int: ...


@contextmanager
def lease_heartbeat(store: Renewer, owner: str, lease: timedelta) -> Iterator[None]:
    """Renew ``owner``'s claims every third of ``lease`` until the block ends."""
    stop = threading.Event()
    every = lease.total_seconds() / BEATS_PER_LEASE

    def beat() -> None:
        while not stop.wait(every):
            try:
                store.renew(owner, lease)
            except Exception as error:
                # A failed renewal (the database restarting, a deadlock victim) must not end
                # the heartbeat: the next beat renews, and only a lease without any expires.
                log.warning("inbox lease renewal failed (%s); retrying at the next beat", error)

    thread = threading.Thread(target=beat, name="inbox-lease-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)
