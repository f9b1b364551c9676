"""The drain's lease heartbeat renews its claims while the drain works, and stops with it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from tasks.heartbeat import lease_heartbeat


class Recorder:
    def __init__(self, beats_wanted: int) -> None:
        self.calls: list[tuple[str, timedelta]] = []
        self.enough = threading.Event()
        self.beats_wanted = beats_wanted

    def renew(self, owner: str, lease: timedelta) -> int:
        self.calls.append((owner, lease))
        if len(self.calls) >= self.beats_wanted:
            self.enough.set()
        return 1


def test_the_heartbeat_renews_the_owners_claims_until_the_block_ends() -> None:
    store = Recorder(beats_wanted=3)
    lease = timedelta(seconds=0.3)
    with lease_heartbeat(store, "drain-a", lease):
        assert store.enough.wait(timeout=30)
    stopped_at = len(store.calls)
    assert store.calls[0] == ("drain-a", lease)
    time.sleep(1)  # several beat intervals: a heartbeat still running would renew again
    assert len(store.calls) == stopped_at


class Flaky(Recorder):
    """A store whose first renewals fail, as a database restarting would."""

    def renew(self, owner: str, lease: timedelta) -> int:
        if len(self.calls) < 2:
            self.calls.append((owner, lease))
            raise ConnectionError("server closed the connection unexpectedly")
        return super().renew(owner, lease)


def test_a_failed_renewal_does_not_stop_the_heartbeat() -> None:
    store = Flaky(beats_wanted=4)
    with lease_heartbeat(store, "drain-a", timedelta(seconds=0.3)):
        assert store.enough.wait(timeout=30)  # two failures, then renewals again
