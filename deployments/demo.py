"""``shopsync demo``: the main job end to end against the local sandboxes.

1. a generated shop sends its orders as webhooks (with duplicates, out-of-order updates, a
   cancellation and a refund) to the receiver, and some webhooks are lost on the way;
2. the drain flow syncs the inbox into the Salesforce sandbox;
3. a Salesforce user edits some deals (a stage change that must survive), an amount drifts and
   two Opportunities are deleted;
4. the reconciliation finds the gaps (dry run first), repairs them, and a second run is clean.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer

from deployments.local import SANDBOX_TIMEZONE, SandboxStack, prefect_server, sandbox_stack
from deployments.progress_view import RECONCILE_STAGES, progress_display
from tasks.reporting.progress import report

MARKER = ".shopsync-demo"
LOST_EVERY = 25  # one webhook in 25 never arrives; reconciliation has to find those orders


DEMO_STAGES = {
    **RECONCILE_STAGES,
    "sandboxes": "starting the Shopify and Salesforce sandboxes",
    "prefect": "starting a local Prefect server",
    "webhooks": "Shopify sending order webhooks",
    "drain": "draining the webhook inbox into Salesforce",
    "repair": "reconcile: planning / repairing",
}


def run_demo(orders: int, data_dir: Path) -> int:
    """Run the demo; returns the process exit code (0 when every check held)."""
    _fresh(data_dir)
    say = typer.echo
    say(f"shopsync demo: {orders} orders, state in {data_dir}")
    with progress_display(DEMO_STAGES):
        code = _demo(orders, data_dir, say)
    say(stopped_note(data_dir / "prefect"))
    return code


def stopped_note(prefect_home: Path) -> str:
    """What to say once the demo's Prefect server is gone: no link to it, but how to see the
    demo's runs again (the server's SQLite database stays in ``prefect_home``)."""
    prefect = Path(sys.executable).with_name("prefect")
    return (
        "The demo's Prefect server has stopped. To browse its runs again: "
        f"PREFECT_HOME={_shown(prefect_home)} {_shown(prefect)} server start "
        "(or `make serve` for a live stack with its UI)."
    )


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is under it (shorter to type)."""
    absolute = path.absolute()
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def _demo(orders: int, data_dir: Path, say: Any) -> int:
    report("sandboxes", 0, 1)
    with sandbox_stack(orders=orders, days=7) as stack:
        report("sandboxes", 1, 1)
        os.environ.update(stack.product_env())
        os.environ.update(
            {
                "SHOPSYNC_DATA_DIR": str(data_dir),
                "SHOPSYNC_SHOP_TIMEZONE": SANDBOX_TIMEZONE,
                "SHOPSYNC_RETRY_DELAYS_SECONDS": "0.2,0.5,1",
                "SHOPSYNC_INBOX_BACKOFF_SECONDS": "1,2,4",
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
            }
        )
        report("prefect", 0, 1)
        with prefect_server(data_dir / "prefect", port=0) as api:
            report("prefect", 1, 1)
            os.environ["PREFECT_API_URL"] = api
            say(f"Prefect UI (while the demo runs): {api.removesuffix('/api')}")
            try:
                return _run(stack, orders, say)
            finally:
                os.environ.pop("PREFECT_API_URL", None)


def _fresh(data_dir: Path) -> None:
    if data_dir.exists():
        if not (data_dir / MARKER).exists():
            raise typer.BadParameter(f"{data_dir} exists and is not a shopsync demo directory")
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / MARKER).touch()


def _run(stack: SandboxStack, orders: int, say: Any) -> int:
    from flows.reconcile import reconcile
    from flows.sync_pending import sync_pending_orders
    from sandbox.server import BackgroundServer
    from state import StateStore
    from tasks.core.topics import HANDLED_TOPICS
    from tasks.settings import get_settings
    from webhooks.app import create_app
    from webhooks.serve import receiver_config

    get_settings.cache_clear()
    settings = get_settings()
    store = StateStore.open(settings.state_url)
    shop = stack.shopify.shop()
    with BackgroundServer(create_app(receiver_config(settings), store)) as receiver:
        url = f"{receiver.url}/webhooks/shopify"
        for topic in sorted(HANDLED_TOPICS):
            shop.webhooks.subscribe(topic, url)
        shop.webhooks.configure(duplicate_rate=0.1, out_of_order_rate=0.05, time_scale=0.0001)
        sent = _send_webhooks(stack, orders)
        say(
            f"1. Shopify sent {sent['orders']} orders/create webhooks "
            f"({sent['lost']} lost on the way), a cancellation and a refund"
        )
        shop.webhooks.flush(timeout=120)
        deliveries = shop.webhooks.deliveries()
        duplicates = sum(1 for d in deliveries if d.get("duplicate"))
        say(
            f"   the receiver answered {len(deliveries)} deliveries "
            f"({duplicates} duplicates), all {_statuses(deliveries)}"
        )
        forged = _forged_delivery(url)
        say(f"   a forged delivery (wrong signature) was refused with HTTP {forged}")

    drained = _drain(sync_pending_orders, store)
    in_salesforce = len(stack.salesforce.store.all("Opportunity"))
    say(f"2. drain flow: {_words(drained)}; Salesforce now holds {in_salesforce} Opportunities")

    changes = _salesforce_user_edits(stack)
    say(f"3. in Salesforce: {changes}")

    start, end = _window()
    plan = reconcile(start=start, end=end, dry_run=True)
    say(f"4. reconcile {start}…{end} (dry run): {_counts(plan)}")
    repaired = reconcile(start=start, end=end, dry_run=False)
    say(f"   reconcile {start}…{end}: {_counts(repaired)}")
    again = reconcile(start=start, end=end, dry_run=False)
    say(f"   second reconcile: {_counts(again)}")

    _summary(stack, store, repaired, say)
    return _verdict(stack, store, orders, again, say)


def _forged_delivery(url: str) -> int:
    import httpx

    body = b'{"id": 1, "name": "#forged"}'
    headers = {
        "X-Shopify-Topic": "orders/create",
        "X-Shopify-Hmac-Sha256": "Zm9yZ2VkIHNpZ25hdHVyZQ==",
        "X-Shopify-Shop-Domain": "sandbox-shop.myshopify.com",
        "X-Shopify-Webhook-Id": "forged-delivery",
    }
    return httpx.post(url, content=body, headers=headers).status_code


def _summary(stack: SandboxStack, store: Any, repaired: dict[str, Any], say: Any) -> None:
    counts = repaired.get("counts", {})
    calls = stack.salesforce.stats["api_calls"]["total"]
    rows = [
        ("found missing / drifted", f"{counts.get('missing', 0)} / {counts.get('drifted', 0)}"),
        ("repaired", str(repaired.get("repaired", 0))),
        ("dead-lettered", str(store.counts().dead_letters_open)),
        ("Salesforce API calls, whole demo", str(calls)),
        ("reconcile report (CSV)", str(repaired.get("report_csv"))),
    ]
    width = max(len(name) for name, _ in rows)
    say("5. summary")
    for name, value in rows:
        say(f"   {name.ljust(width)}  {value}")


def _send_webhooks(stack: SandboxStack, orders: int) -> dict[str, int]:
    shop = stack.shopify.shop()
    sent = lost = 0
    for index in range(orders):
        if index % LOST_EVERY == LOST_EVERY - 1:
            lost += 1
            continue
        sent += shop.send_order_events("orders/create", index, 1)
        report("webhooks", index + 1, orders)
    report("webhooks", orders, orders)
    live = [shop.generator.order_id(i) for i in range(orders)]
    live = [i for i in live if shop.store.get(i)["cancelled"] is None]
    shop.cancel_order(live[0])
    shop.refund_order(live[1], amount="1.00")
    return {"orders": sent, "lost": lost}


def _statuses(deliveries: list[dict[str, Any]]) -> str:
    codes = Counter(d.get("status_code") for d in deliveries)
    return ", ".join(f"{code}×{n}" for code, n in sorted(codes.items(), key=str))


def _drain(flow: Any, store: Any) -> Counter[str]:
    from flows.outcome import run_flow

    totals: Counter[str] = Counter()
    for _ in range(30):
        _, result = run_flow(flow, max_seconds=120, batch_size=100)
        totals.update(result["outcomes"])
        report("drain", sum(totals.values()), None)
        depth = store.counts().inbox
        if not depth.get("pending") and not depth.get("claimed"):
            break
        time.sleep(1)
    report("drain", sum(totals.values()), sum(totals.values()))
    return totals


def _salesforce_user_edits(stack: SandboxStack) -> str:
    from deployments.local import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET
    from sandbox.salesforce.client import simple_salesforce

    # The demo's org checks the client secret, as a real org does.
    sf = simple_salesforce(
        stack.salesforce_url, client_id=SANDBOX_CLIENT_ID, client_secret=SANDBOX_CLIENT_SECRET
    )
    # Open deals only: a cancelled order's stage is Shopify's to set (Closed Lost).
    opportunities = sorted(
        (r for r in stack.salesforce.store.all("Opportunity") if r["StageName"] == "New Order"),
        key=lambda r: r["Id"],
    )
    staged, drifted, deleted = opportunities[:2], opportunities[2:5], opportunities[5:7]
    for record in staged:
        sf.Opportunity.update(record["Id"], {"StageName": "Qualification"})
    for record in drifted:
        sf.Opportunity.update(record["Id"], {"Amount": 1.23})
    for record in deleted:
        sf.Opportunity.delete(record["Id"])
    return (
        f"a user moved {len(staged)} deals to Qualification, {len(drifted)} amounts "
        f"drifted, {len(deleted)} Opportunities were deleted"
    )


def _window() -> tuple[date, date]:
    today = datetime.now(UTC).astimezone(ZoneInfo(SANDBOX_TIMEZONE)).date()
    return today - timedelta(days=8), today


def _counts(result: dict[str, Any]) -> str:
    counts = result.get("counts", result)
    keys = ("in_sync", "missing", "drifted", "duplicate", "orphan", "repaired", "failed")
    shown = _words({k: counts[k] for k in keys if k in counts})
    writes = result.get("write_calls", result.get("salesforce_write_calls"))
    return shown + (f", {writes} write calls" if writes is not None else "")


def _words(counts: Mapping[str, Any]) -> str:
    """``{"in_sync": 120, "missing": 0}`` as ``120 in sync, 0 missing``."""
    return (
        ", ".join(f"{value} {name.replace('_', ' ')}" for name, value in counts.items()) or "none"
    )


def _verdict(stack: SandboxStack, store: Any, orders: int, again: dict[str, Any], say: Any) -> int:
    keys = {r["External_Shopify_Order_ID__c"] for r in stack.salesforce.store.all("Opportunity")}
    counts = again.get("counts", again)
    discrepancies = sum(int(counts.get(k, 0)) for k in ("missing", "drifted", "duplicate"))
    stages = Counter(r["StageName"] for r in stack.salesforce.store.all("Opportunity"))
    dead = store.counts().dead_letters_open
    checks = {
        f"all {orders} orders are in Salesforce": len(keys) >= orders,
        "the second reconcile found nothing": discrepancies == 0,
        "the user's stage changes survived": stages.get("Qualification", 0) == 2,
        "no dead letters": dead == 0,
    }
    for name, ok in checks.items():
        say(f"   [{'ok' if ok else 'FAILED'}] {name}")
    say("demo passed" if all(checks.values()) else "demo FAILED")
    return 0 if all(checks.values()) else 1
