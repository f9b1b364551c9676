"""The state store: cursors, inbox dedupe and leases, ledger, dead letters, migrations.

Every test that takes ``db_url`` or ``store`` runs twice: on SQLite (the embedded default) and on
a throwaway PostgreSQL server (``postgres_server`` in tests/conftest.py; skipped locally when the
server binaries are missing, a failure in CI).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from state import Delivery, FieldWarning, StateStore, SyncRecord
from state.db import create_state_engine, migrate


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return sqlite_db_url(tmp_path)


def sqlite_db_url(tmp_path: Path) -> str:
    return f"sqlite+pysqlite:///{tmp_path / 'state.db'}"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


@pytest.fixture
def store(db_url: str) -> StateStore:
    s = StateStore.open(db_url)
    yield s
    s.close()


def delivery(webhook_id: str, order_id: str = "1001", topic: str = "orders/create") -> Delivery:
    return Delivery(
        webhook_id=webhook_id,
        topic=topic,
        shop_domain="shop.myshopify.com",
        body=b'{"id": %s}' % order_id.encode(),
        order_id=order_id,
    )


def at(hour: int) -> datetime:
    return datetime(2026, 11, 1, hour, tzinfo=UTC)


# -- cursors ------------------------------------------------------------------------------------


def test_cursor_starts_unset_and_moves_forward(store: StateStore) -> None:
    assert store.get_cursor("nightly") is None
    assert store.advance_cursor("nightly", at(1)) == at(1)
    assert store.advance_cursor("nightly", at(5)) == at(5)
    assert store.get_cursor("nightly") == at(5)


def test_cursor_never_moves_backwards(store: StateStore) -> None:
    store.advance_cursor("nightly", at(5))
    assert store.advance_cursor("nightly", at(2)) == at(5)
    assert store.get_cursor("nightly") == at(5)


def test_cursors_are_independent_by_name(store: StateStore) -> None:
    store.advance_cursor("a", at(5))
    store.advance_cursor("b", at(1))
    assert (store.get_cursor("a"), store.get_cursor("b")) == (at(5), at(1))


def test_naive_datetimes_are_refused(store: StateStore) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        store.advance_cursor("nightly", datetime(2026, 1, 1))


def test_times_come_back_timezone_aware_utc(store: StateStore) -> None:
    store.advance_cursor("nightly", datetime.fromisoformat("2026-11-01T10:00:00+02:00"))
    assert store.get_cursor("nightly") == at(8)
    assert store.get_cursor("nightly").tzinfo is UTC


# -- inbox --------------------------------------------------------------------------------------


def test_duplicate_webhook_id_is_reported_and_changes_nothing(store: StateStore) -> None:
    assert store.add_delivery(delivery("w-1")) == "stored"
    before = store.inbox_row("w-1")
    other = Delivery("w-1", "orders/updated", "other.myshopify.com", b"{}", order_id="9")
    assert store.add_delivery(other) == "duplicate"
    assert store.inbox_row("w-1") == before
    assert len(store.inbox_rows()) == 1


def test_ignored_delivery_is_stored_but_never_claimed(store: StateStore) -> None:
    assert store.add_delivery(delivery("w-1", topic="products/create"), ignored=True) == "ignored"
    assert store.inbox_row("w-1").status == "ignored"
    assert store.claim(max_orders=10, lease=timedelta(minutes=1)) == []


def test_deliveries_of_one_order_are_claimed_together(store: StateStore) -> None:
    store.add_delivery(delivery("w-1", "1001"))
    store.add_delivery(delivery("w-2", "1002"))
    store.add_delivery(delivery("w-3", "1001", topic="orders/updated"))
    claims = store.claim(max_orders=10, lease=timedelta(minutes=1))
    by_order = {c.order_id: c.webhook_ids for c in claims}
    assert by_order == {"1001": ["w-1", "w-3"], "1002": ["w-2"]}
    assert all(row.attempts == 1 for c in claims for row in c.deliveries)


def test_claimed_rows_are_not_claimed_again_while_the_lease_lives(store: StateStore) -> None:
    store.add_delivery(delivery("w-1"))
    assert len(store.claim(max_orders=10, lease=timedelta(minutes=5))) == 1
    assert store.claim(max_orders=10, lease=timedelta(minutes=5)) == []


def test_a_new_delivery_of_an_order_in_flight_waits_for_the_lease(store: StateStore) -> None:
    store.add_delivery(delivery("w-1", "1001"))
    store.claim(max_orders=10, lease=timedelta(minutes=5))
    store.add_delivery(delivery("w-2", "1001", topic="orders/updated"))
    assert store.claim(max_orders=10, lease=timedelta(minutes=5)) == []


def test_expired_lease_makes_a_row_claimable_again(store: StateStore) -> None:
    store.add_delivery(delivery("w-1"))
    first = store.claim(max_orders=10, lease=timedelta(seconds=30), owner="dead-worker")
    assert first[0].webhook_ids == ["w-1"]
    later = datetime.now(UTC) + timedelta(seconds=31)
    again = store.claim(max_orders=10, lease=timedelta(seconds=30), owner="new", now=later)
    assert again[0].webhook_ids == ["w-1"]
    assert again[0].deliveries[0].attempts == 2


def test_completed_and_dead_rows_are_final(store: StateStore) -> None:
    store.add_delivery(delivery("w-1", "1"))
    store.add_delivery(delivery("w-2", "2"))
    store.claim(max_orders=10, lease=timedelta(seconds=1))
    store.complete(["w-1"])
    store.dead(["w-2"], "INVALID_EMAIL_ADDRESS: bad email")
    later = datetime.now(UTC) + timedelta(hours=1)
    assert store.claim(max_orders=10, lease=timedelta(seconds=1), now=later) == []
    assert store.inbox_row("w-2").last_error == "INVALID_EMAIL_ADDRESS: bad email"
    assert store.counts().inbox == {"done": 1, "dead": 1}


def test_retry_later_holds_a_row_until_its_time(store: StateStore) -> None:
    store.add_delivery(delivery("w-1"))
    store.claim(max_orders=10, lease=timedelta(minutes=1))
    due = datetime.now(UTC) + timedelta(minutes=10)
    store.retry_later(["w-1"], at=due, error="SERVER_UNAVAILABLE")
    assert store.claim(max_orders=10, lease=timedelta(minutes=1)) == []
    assert store.next_due_at() == due.replace(microsecond=due.microsecond)
    claims = store.claim(max_orders=10, lease=timedelta(minutes=1), now=due)
    assert claims[0].webhook_ids == ["w-1"]


def test_the_drain_outlook_sees_a_dead_drains_claims_once_their_lease_ran_out(
    store: StateStore,
) -> None:
    assert store.drain_outlook(datetime.now(UTC)) == (None, 0)  # empty inbox: nothing to start
    store.add_delivery(delivery("w-1", "1"))
    store.add_delivery(delivery("w-2", "2"))
    now = datetime.now(UTC)
    store.claim(max_orders=1, lease=timedelta(seconds=30), now=now)
    next_due, live = store.drain_outlook(now)
    assert live == 1
    assert next_due is not None
    assert next_due <= now  # order 2 waits, due now
    store.claim(max_orders=1, lease=timedelta(seconds=30), now=now)
    next_due, live = store.drain_outlook(now)
    assert live == 2  # both held by a live drain
    assert next_due == now + timedelta(seconds=30)
    later = now + timedelta(seconds=31)  # the drain died: its leases ran out
    assert store.drain_outlook(later) == (now + timedelta(seconds=30), 0)


def test_a_hold_gives_the_claims_attempt_back_and_a_failed_attempt_keeps_it(
    store: StateStore,
) -> None:
    store.add_delivery(delivery("w-1"))
    for _ in range(8):
        store.claim(max_orders=10, lease=timedelta(minutes=1))
        store.hold(["w-1"], until=datetime.now(UTC), reason="HTTP_429: slow down")
        store.hold(["w-1"], until=datetime.now(UTC), reason="again: no second refund")
    assert (store.inbox_row("w-1").status, store.inbox_row("w-1").attempts) == ("pending", 0)
    store.claim(max_orders=10, lease=timedelta(minutes=1))
    store.retry_later(["w-1"], at=datetime.now(UTC), error="SERVER_UNAVAILABLE")
    row = store.inbox_row("w-1")
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "SERVER_UNAVAILABLE")


def test_max_orders_bounds_a_claim_oldest_first(store: StateStore) -> None:
    for n in range(5):
        store.add_delivery(delivery(f"w-{n}", str(100 + n)))
    claims = store.claim(max_orders=2, lease=timedelta(minutes=1))
    assert [c.order_id for c in claims] == ["100", "101"]


def test_concurrent_threads_never_claim_the_same_row(db_url: str) -> None:
    seed = StateStore.open(db_url)
    for n in range(300):
        seed.add_delivery(delivery(f"w-{n}", str(n)))
    claimed: list[list[str]] = [[] for _ in range(6)]
    errors: list[BaseException] = []

    def worker(slot: int) -> None:
        try:
            own = StateStore.open(db_url)
            while batch := own.claim(max_orders=7, lease=timedelta(minutes=5)):
                claimed[slot].extend(w for c in batch for w in c.webhook_ids)
            own.close()
        except BaseException as exc:  # a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    everything = [w for ids in claimed for w in ids]
    assert len(everything) == 300
    assert len(set(everything)) == 300


def test_an_order_is_never_in_two_live_claims_while_deliveries_keep_arriving(
    db_url: str,
) -> None:
    """Claimers and a writer race: each order's deliveries go to one claimer at a time, even when
    a new delivery of an order lands while another claimer holds that order."""
    seed = StateStore.open(db_url)
    orders = [str(n) for n in range(12)]
    holders: dict[str, str] = {}
    overlaps: list[tuple[str, str, str]] = []
    errors: list[BaseException] = []
    guard = threading.Lock()
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            seed.add_delivery(delivery(f"w-{n}", orders[n % len(orders)]))
            n += 1

    def claimer(name: str) -> None:
        own = StateStore.open(db_url)
        try:
            while not stop.is_set():
                for claim in own.claim(max_orders=3, lease=timedelta(minutes=5), owner=name):
                    with guard:
                        other = holders.setdefault(claim.order_id, name)
                        if other != name:
                            overlaps.append((claim.order_id, other, name))
                    time.sleep(0.002)  # the sync
                    with guard:
                        holders.pop(claim.order_id, None)
                    own.complete(claim.webhook_ids)
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=writer)]
    threads += [threading.Thread(target=claimer, args=(f"c{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(4)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    seed.close()
    assert errors == []
    assert overlaps == []


CLAIMER = textwrap.dedent(
    """
    import json, sys
    from datetime import timedelta
    from state import StateStore
    store = StateStore.open(sys.argv[1])
    mine = []
    while batch := store.claim(max_orders=5, lease=timedelta(minutes=5)):
        mine.extend(w for c in batch for w in c.webhook_ids)
    print(json.dumps(mine))
    """
)


def test_concurrent_processes_never_claim_the_same_row(db_url: str) -> None:
    seed = StateStore.open(db_url)
    for n in range(200):
        seed.add_delivery(delivery(f"w-{n}", str(n)))
    procs = [
        subprocess.Popen([sys.executable, "-c", CLAIMER, db_url], stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    everything = [w for ids in results for w in ids]
    assert sorted(everything) == sorted(f"w-{n}" for n in range(200))


# -- ledger -------------------------------------------------------------------------------------


def test_a_drained_batch_records_its_ledger_and_customers_in_one_go(store: StateStore) -> None:
    store.remember_customer("7", account_id="001OLD", contact_id="003A")
    store.record_batch(
        [
            SyncRecord("1001", at(5), "h1", "001A", "003A", "006A"),
            SyncRecord("1002", at(6), "h2", "001B", None, "006B"),
        ],
        {"7": ("001A", None), "shop_guest_x": ("001B", None)},
    )
    assert store.ledger_many(["1001", "1002"]).keys() == {"1001", "1002"}
    assert store.ledger("1002").opportunity_id == "006B"
    assert store.customer("7") == ("001A", "003A")  # a known Contact is not forgotten
    assert store.customer("shop_guest_x") == ("001B", None)
    assert store.customers(["7", "404", "7"]) == {"7": ("001A", "003A"), "404": None}


def test_two_drains_recording_the_same_new_customer_and_order_at_once_both_succeed(
    db_url: str,
) -> None:
    """Drains in two processes record a repeat customer (and, with a reconcile repair, an order)
    at the same moment: on PostgreSQL a read-then-insert fails on the primary key; the upsert
    does not, and neither loses the other's ids."""
    stores = [StateStore.open(db_url), StateStore.open(db_url)]
    barrier = threading.Barrier(len(stores))
    errors: list[Exception] = []

    def record(store: StateStore, contact: str) -> None:
        for n in range(30):
            barrier.wait(timeout=60)
            try:
                store.record_batch(
                    [SyncRecord(f"20{n}", at(5), "h", "001A", None, "006A")],
                    {f"customer-{n}": ("001A", contact if n % 2 else None)},
                )
            except Exception as error:  # collected: the assertion shows them
                errors.append(error)

    threads = [
        threading.Thread(target=record, args=(store, f"003{i}")) for i, store in enumerate(stores)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert errors == []
        assert stores[0].customer("customer-0") == ("001A", None)
        assert stores[0].customer("customer-1") in {("001A", "0030"), ("001A", "0031")}
        assert stores[1].ledger("200").opportunity_id == "006A"
    finally:
        for store in stores:
            store.close()


def test_ledger_records_and_never_goes_back_in_time(store: StateStore) -> None:
    store.record_sync(
        "1001",
        order_updated_at=at(5),
        payload_hash="h5",
        account_id="001A",
        contact_id="003A",
        opportunity_id="006A",
    )
    store.record_sync(
        "1001",
        order_updated_at=at(3),
        payload_hash="h3",
        account_id=None,
        contact_id=None,
        opportunity_id=None,
    )
    entry = store.ledger("1001")
    assert (entry.payload_hash, entry.order_updated_at, entry.opportunity_id) == (
        "h5",
        at(5),
        "006A",
    )
    assert store.ledger_many(["1001", "404"]).keys() == {"1001"}


# -- dead letters -------------------------------------------------------------------------------


def test_dead_letters_accumulate_per_order_until_resolved(store: StateStore) -> None:
    first = store.add_dead_letter(
        "1001", source="webhook", stage="contact", message="bad", error_code="INVALID_EMAIL_ADDRESS"
    )
    again = store.add_dead_letter(
        "1001", source="webhook", stage="contact", message="still bad", fields=["Email"]
    )
    assert first == again
    letter = store.dead_letter(first)
    assert (letter.attempts, letter.message, letter.fields) == (2, "still bad", ["Email"])
    assert store.resolve_dead_letters("1001", "replayed") == 1
    assert store.dead_letters() == []
    assert len(store.dead_letters(include_resolved=True)) == 1
    fresh = store.add_dead_letter("1001", source="reconcile", stage="opportunity", message="new")
    assert fresh != first


# -- runs ---------------------------------------------------------------------------------------


def test_a_field_warning_seen_again_updates_its_row_instead_of_adding_one(
    store: StateStore,
) -> None:
    cut = FieldWarning("1001", "#1001", "Contact", "LastName", "truncated", 95, 80)
    dropped = FieldWarning("1001", "#1001", "Contact", "Email", "dropped", reason="not an e-mail")
    other = FieldWarning("1002", None, "Account", "BillingCity", "truncated", 50, 40)
    assert store.record_field_warnings([cut, dropped], path="webhook", run_id="run-1") == 2
    first = {w.field: w for w in store.field_warnings()}["LastName"]
    again = FieldWarning("1001", "#1001", "Contact", "LastName", "truncated", 120, 80)
    assert store.record_field_warnings([again, other], path="reconcile") == 1
    rows = {(w.order_id, w.field): w for w in store.field_warnings()}
    assert len(rows) == 3
    last = rows[("1001", "LastName")]
    assert (last.id, last.first_seen, last.times_seen) == (first.id, first.first_seen, 2)
    assert (last.path, last.run_id, last.original_length) == ("reconcile", "run-1", 120)
    assert last.last_seen >= first.last_seen
    assert [w.field for w in store.field_warnings(order_id="1002")] == ["BillingCity"]
    counts = store.counts()
    assert (counts.field_warnings, counts.orders_with_field_warnings) == (3, 2)


def test_runs_are_recorded_with_counts(store: StateStore) -> None:
    run_id = store.start_run("backfill", at(0), at(12), dry_run=True)
    store.finish_run(run_id, "completed", {"missing": 3, "in_sync": 97})
    run = store.recent_runs()[0]
    assert (run.mode, run.dry_run, run.status, run.counts["missing"]) == (
        "backfill",
        True,
        "completed",
        3,
    )


# -- migrations and durability ------------------------------------------------------------------


def test_migrating_an_empty_database_twice_works(db_url: str) -> None:
    engine = create_state_engine(db_url)
    migrate(engine)
    migrate(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"cursors", "reconcile_runs", "inbox", "ledger", "dead_letters"} <= tables
    assert "field_warnings" in tables
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head()


def head() -> str:
    """The newest migration (parallel branches' migrations are re-chained when merged)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from state.db import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return str(ScriptDirectory.from_config(config).get_current_head())


OPENER = "import sys; from state import StateStore; StateStore.open(sys.argv[1]).close()"


def test_several_processes_migrating_one_empty_database_at_once_all_start(db_url: str) -> None:
    """Receivers and workers of a multi-machine setup start together on an empty database."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, db_url],
            stderr=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        for _ in range(4)
    ]
    failures = [err for p in procs if (err := p.communicate(timeout=120)[1]) and p.returncode]
    assert failures == []
    engine = create_state_engine(db_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
    engine.dispose()


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    StateStore.open(sqlite_db_url(tmp_path)).close()
    with sqlite3.connect(tmp_path / "state.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


WRITER = textwrap.dedent(
    """
    import sys
    from state import Delivery, FieldWarning, StateStore, SyncRecord
    store = StateStore.open(sys.argv[1])
    n = 0
    while True:
        store.add_delivery(Delivery(f"w-{n}", "orders/create", "s.myshopify.com", b"x" * 2000,
                                    order_id=str(n)))
        print(n, flush=True)
        n += 1
    """
)


def test_sigkill_during_writes_keeps_every_committed_row(db_url: str, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, db_url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    committed = -1
    deadline = time.monotonic() + 60
    while committed < 150 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            committed = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert committed >= 150, "the writer did not get going"
    store = StateStore.open(db_url)
    ids = {row.webhook_id for row in store.inbox_rows(limit=100_000)}
    assert {f"w-{n}" for n in range(committed + 1)} <= ids
    store.close()
    if not is_sqlite(db_url):
        return  # PostgreSQL: the server outlives the killed client; nothing to check on disk
    with sqlite3.connect(tmp_path / "state.db") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_claim_names_the_process_that_holds_it(store: StateStore) -> None:
    store.add_delivery(delivery("w-1"))
    store.claim(max_orders=10, lease=timedelta(minutes=1))
    host, pid, _ = store.inbox_row("w-1").lease_owner.split(":")
    assert (host, int(pid)) == (socket.gethostname()[:30], os.getpid())


def test_renew_keeps_a_live_claim_from_being_taken_over(store: StateStore) -> None:
    store.add_delivery(delivery("w-1"))
    lease = timedelta(seconds=30)
    start = datetime.now(UTC)
    store.claim(max_orders=10, lease=lease, owner="drain-a", now=start)
    assert store.renew("drain-a", lease, now=start + timedelta(seconds=20)) == 1
    at_45 = start + timedelta(seconds=45)  # past the first lease, inside the renewed one
    assert store.claim(max_orders=10, lease=lease, owner="drain-b", now=at_45) == []
    at_51 = start + timedelta(seconds=51)
    assert store.claim(max_orders=10, lease=lease, owner="drain-b", now=at_51)[0].order_id == "1001"


def test_renew_never_revives_an_expired_claim_or_extends_another_owners(store: StateStore) -> None:
    store.add_delivery(delivery("w-1"))
    lease = timedelta(seconds=30)
    start = datetime.now(UTC)
    store.claim(max_orders=10, lease=lease, owner="drain-a", now=start)
    assert store.renew("drain-b", lease, now=start + timedelta(seconds=10)) == 0
    assert store.renew("drain-a", lease, now=start + timedelta(seconds=31)) == 0
    taken = store.claim(
        max_orders=10, lease=lease, owner="drain-b", now=start + timedelta(seconds=31)
    )
    assert taken[0].webhook_ids == ["w-1"]


def test_the_receivers_sqlite_insert_stores_what_the_orm_stores(
    store: StateStore, db_url: str
) -> None:
    """The inbox fast path (driver SQL on SQLite) writes every column in the ORM's stored form,
    so the drain's queries (claims by time, status) read both alike."""
    if not db_url.startswith("sqlite"):
        pytest.skip("the driver-SQL fast path is SQLite's; PostgreSQL goes through Core")
    from dataclasses import replace

    from state.inbox import _inbox_values

    fast = replace(
        delivery("fast"),
        event_id="e1",
        api_version="2026-10",
        triggered_at=datetime(2026, 11, 28, 10, 0, 0, 123000, tzinfo=UTC),
    )
    assert store.add_deliveries([(fast, False), (replace(fast, webhook_id="fast-2"), True)]) == [
        "stored",
        "ignored",
    ]
    orm_row = _inbox_values(replace(fast, webhook_id="orm"), False, datetime.now(UTC))
    assert store._add_portably(orm_row) == "stored"
    columns = "topic, shop_domain, order_id, event_id, api_version, triggered_at, body, status, "
    columns += "attempts, typeof(received_at), length(received_at), length(next_attempt_at)"
    with sqlite3.connect(db_url.removeprefix("sqlite+pysqlite:///")) as raw:
        stored = {
            webhook_id: rest
            for webhook_id, *rest in raw.execute(f"SELECT webhook_id, {columns} FROM inbox")  # noqa: S608
        }
    assert stored["fast"] == stored["orm"]
    assert stored["fast-2"][7] == "ignored"
