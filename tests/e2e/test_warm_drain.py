"""``shopsync serve``'s warm drain (issue 16) over loopback: the Shopify sandbox's webhook sender →
the receiver on uvicorn → the inbox → the drain flow started in this process by the receiver's
poke (no runner, no flow-run process) → the Salesforce sandbox. Prefect (the test harness)
records each warm drain as an ordinary ``sync-pending-orders`` run, tagged ``warm``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterTags,
)

from deployments.warm_drain import WarmDrain, run_drain_here
from sandbox.server import BackgroundServer
from state import StateStore
from tasks.core.topics import HANDLED_TOPICS
from tasks.settings import Settings
from tests.integration.conftest import wait_for
from webhooks.serve import build_receiver

pytestmark = pytest.mark.usefixtures("prefect_harness")


def warm_runs() -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["sync-pending-orders"])),
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["warm"])),
        )


@pytest.fixture
def served(product: Settings, store: StateStore, shopify) -> Iterator[WarmDrain]:
    """The receiver poking a warm drain, as ``shopsync serve`` wires them (short linger and
    backoff so the test ends quickly)."""
    for run in warm_runs():  # the harness is shared by the session: start from none
        assert run.state is None or run.state.is_final()
    warm = WarmDrain(store, partial(run_drain_here, 1.0), every=0.5, backoff=lambda n: 8.0 * n)
    app = build_receiver(product, on_stored=warm.poke)
    with warm, BackgroundServer(app) as server:
        url = f"{server.url}/webhooks/shopify"
        for topic in sorted(HANDLED_TOPICS):
            shopify.shop.webhooks.subscribe(topic, url)
        shopify.shop.webhooks.configure(time_scale=0.0001, timeout=5.0)
        yield warm


def synced(store: StateStore, count: int) -> Callable[[], bool]:
    def check() -> bool:
        inbox = store.counts().inbox
        return (
            inbox.get("done", 0) >= count and not inbox.get("pending") and not inbox.get("claimed")
        )

    return check


def test_the_receiver_starts_a_warm_drain_that_syncs_every_order_with_nobody_running_a_flow(
    served: WarmDrain, shopify, salesforce, store: StateStore
) -> None:
    before = {run.id for run in warm_runs()}
    shop = shopify.shop
    assert shop.send_order_events("orders/create", 0, 30) == 30
    assert shop.webhooks.flush(timeout=60)
    assert wait_for(synced(store, 30)), store.counts()
    opportunities = salesforce.records("Opportunity")
    keys = [o["External_Shopify_Order_ID__c"] for o in opportunities]
    assert len(keys) == len(set(keys)) == 30
    assert store.dead_letters() == []
    assert wait_for(lambda: all(r.state and r.state.is_final() for r in warm_runs()), 30)
    runs = [run for run in warm_runs() if run.id not in before]
    assert runs
    assert served.runs >= len(runs)
    assert all(run.state and run.state.is_completed() for run in runs)
    assert all({"shopsync", "webhooks", "warm"} <= set(run.tags) for run in runs)
    assert all(run.deployment_id is None for run in runs)  # no runner, no process was started


def test_a_held_warm_drain_backs_off_keeps_the_orders_and_syncs_them_once_salesforce_is_back(
    served: WarmDrain, shopify, salesforce, store: StateStore
) -> None:
    before = {run.id for run in warm_runs()}
    salesforce.fault(kind="503")
    shop = shopify.shop
    assert shop.send_order_events("orders/create", 0, 5) == 5
    assert shop.webhooks.flush(timeout=60)
    assert wait_for(lambda: served.failures_in_a_row >= 1)
    held = [run for run in warm_runs() if run.id not in before]
    assert held
    assert all(run.state and run.state.is_failed() for run in held)
    assert "held: SERVER_UNAVAILABLE" in (held[0].state.message or "")
    assert store.counts().inbox.get("pending") == 5  # nothing lost, nothing dead-lettered
    assert store.dead_letters() == []
    time.sleep(1)
    assert served.runs == 1  # backing off: no run again while Salesforce is down
    salesforce.clear_faults()
    assert wait_for(synced(store, 5)), store.counts()  # the run after the backoff
    assert wait_for(lambda: served.failures_in_a_row == 0)
    assert len(salesforce.records("Opportunity")) == 5
