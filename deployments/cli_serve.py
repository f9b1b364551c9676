"""``shopsync serve`` and the other long-running commands: the webhook receiver, both sandboxes,
the alert automations, the demo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deployments.cli_common import (
    EXIT_FAILED,
    _fail,
    _nothing,
    _prefect_api,
    _preflight,
    _require_sandbox,
    _settings,
)

if TYPE_CHECKING:
    from tasks.settings import Settings


def serve(
    sandbox: Annotated[
        bool, typer.Option(help="Also run both sandboxes, wired to the product.")
    ] = False,
    prefect_port: Annotated[int, typer.Option(help="Port of the local Prefect server.")] = 4200,
    limit: Annotated[int, typer.Option(help="Flow runs at once.")] = 4,
) -> None:
    """Run the deployments and the webhook receiver (and a local Prefect server if none is set)."""
    from deployments.local import sandbox_stack

    if sandbox:
        _require_sandbox("shopsync serve --sandbox")
    with sandbox_stack() if sandbox else _nothing() as stack:
        if stack is not None:
            os.environ.update(stack.product_env())
            typer.echo(f"Salesforce sandbox: {stack.salesforce_url}")
            typer.echo(f"Shopify sandbox:    {stack.shopify_url}")
            typer.echo(f"Settings to talk to this stack: {_write_sandbox_env(stack.product_env())}")
        settings = _settings("shopify", "salesforce", "webhooks")
        _check_serve_ports(settings, prefect_port)
        _preflight(settings, "Shopify", "Salesforce")
        with _prefect_api(settings, prefect_port, serving=True):
            _serve_everything(settings, stack, limit)


def _write_sandbox_env(env: dict[str, str], path: Path = Path(".env.sandbox")) -> Path:
    """Write the sandbox stack's settings (secrets included: they are the sandbox's) to
    ``path``, for ``set -a; . ./.env.sandbox`` or another tool talking to the stack."""
    lines = ["# shopsync serve --sandbox: the local sandboxes' settings (valid while it runs)"]
    lines += [f"{key}={value}" for key, value in sorted(env.items())]
    path.write_text("\n".join(lines) + "\n")
    return path.resolve()


def _check_serve_ports(settings: Settings, prefect_port: int) -> None:
    """A busy port is one line naming what holds it and what to do (exit 2)."""
    from deployments.local import PortBusy, check_prefect_port, check_webhook_port

    try:
        check_webhook_port(settings.webhook_host, settings.webhook_port)
        if not os.environ.get("PREFECT_API_URL"):
            check_prefect_port(prefect_port)
    except PortBusy as exc:
        _fail([f"shopsync serve: {exc}"])


def _serve_everything(settings: Settings, stack: Any, limit: int) -> None:
    from deployments.background import BackgroundServer
    from deployments.serve import serve_deployments
    from state import StateStore
    from tasks.runtime import build_runtime
    from webhooks.serve import DueWorkWatcher, build_receiver, check_bind, freeze_startup_heap

    check_bind(settings.webhook_host, allow_public=settings.webhook_allow_public_bind)
    warm = _warm_drain(settings)
    receiver = BackgroundServer(
        build_receiver(settings, on_stored=warm.poke if warm else None),
        host=settings.webhook_host,
        port=settings.webhook_port,
    )
    with receiver:
        url = f"{receiver.url}/webhooks/shopify"
        typer.echo(f"Webhook receiver:   {url}")
        if stack is not None:
            from tasks.core.topics import HANDLED_TOPICS

            for topic in sorted(HANDLED_TOPICS):
                stack.shopify.shop().webhooks.subscribe(topic, url)
        runtime = build_runtime(settings)
        try:
            timezone = runtime.shop_timezone()
            if warm:
                _read_org_schema(runtime)
        finally:
            runtime.close()
        _setup_alerts_quietly(settings)
        with warm or DueWorkWatcher(StateStore.open(settings.state_url)):
            typer.echo(f"Drain:              {_drain_words(settings)}")
            freeze_startup_heap()  # the receiver's p99: no full collection walks start-up
            serve_deployments(settings, timezone, limit=limit)


def _warm_drain(settings: Settings) -> Any:
    """The in-process drain (``SHOPSYNC_SERVE_DRAIN=warm``, the default), else None."""
    if settings.serve_drain != "warm":
        return None
    from functools import partial

    # The drain and Prefect's engines are imported now (seconds), not when the first order comes.
    import prefect.flow_engine
    import prefect.task_engine  # noqa: F401

    import flows.sync_pending  # noqa: F401
    from deployments.serve import DRAIN_LINGER_SECONDS
    from deployments.warm_drain import WarmDrain, run_drain_here
    from state import StateStore

    store = StateStore.open(settings.state_url)
    return WarmDrain(store, partial(run_drain_here, DRAIN_LINGER_SECONDS))


def _read_org_schema(runtime: Any) -> None:
    """Describe the org now (cached in the data directory), so the first order's drain does not
    wait for it; if Salesforce cannot answer yet, the drain asks again when it runs."""
    from tasks.core.errors import SyncError

    try:
        runtime.sync_context()
    except SyncError as exc:
        typer.echo(f"Salesforce:         not described yet ({exc}); the drain will try again")


def _drain_words(settings: Settings) -> str:
    if settings.serve_drain == "warm":
        return "in this process, as soon as a delivery is stored (SHOPSYNC_SERVE_DRAIN=warm)"
    return "flow runs of sync-pending-orders/webhook, started by the runner"


def _setup_alerts_quietly(settings: Settings) -> None:
    """Create or update the alert automations when a notification block is configured."""
    if not settings.alerts_block:
        typer.echo("Alerts:             off (see `shopsync alerts setup --help`)")
        return
    from deployments.alerts import setup_alerts

    try:
        setup_alerts(settings.alerts_block)
    except Exception as exc:
        typer.echo(f"Alerts:             NOT set up: {exc}", err=True)
        return
    typer.echo(f"Alerts:             to {settings.alerts_block}")


def alerts_setup(
    block: Annotated[
        str | None,
        typer.Option(
            help="Notification block as <block-type>/<name> (e.g. slack-webhook/ops); default "
            "SHOPSYNC_ALERTS_BLOCK."
        ),
    ] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="Save a generic JSON webhook block for this URL and use it.")
    ] = None,
    slack_url: Annotated[
        str | None, typer.Option(help="Save a Slack incoming-webhook block and use it.")
    ] = None,
) -> None:
    """Create (or update) the Prefect automations that notify on failures and dead letters."""
    from deployments.alerts import save_webhook_block, setup_alerts

    settings = _settings()
    with _prefect_api(settings):
        if webhook_url or slack_url:
            block = save_webhook_block(slack_url or webhook_url or "", slack=bool(slack_url))
            typer.echo(f"saved notification block {block}")
        block = block or settings.alerts_block
        if not block:
            _fail(["give --block, --webhook-url or --slack-url (or set SHOPSYNC_ALERTS_BLOCK)"])
        assert block is not None
        try:
            names = setup_alerts(block)
        except ValueError as exc:
            _fail([str(exc)], EXIT_FAILED)
            raise
    for name in names:
        typer.echo(f"automation {name!r} → {block}")


def sandbox_all(
    salesforce_port: Annotated[int, typer.Option(help="Salesforce sandbox port.")] = 8081,
    shopify_port: Annotated[int, typer.Option(help="Shopify sandbox port.")] = 8082,
    orders: Annotated[int, typer.Option(help="Orders in the generated shop.")] = 1000,
) -> None:
    """Both sandboxes, wired together; prints the settings that point shopsync at them."""
    import time

    from deployments.local import sandbox_stack

    with sandbox_stack(
        orders=orders, salesforce_port=salesforce_port, shopify_port=shopify_port
    ) as stack:
        typer.echo("# both sandboxes are up; put these in .env (Ctrl-C stops them):")
        for key, value in stack.product_env().items():
            typer.echo(f"{key}={value}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            typer.echo("stopped")


def webhooks_register(
    url: Annotated[str, typer.Option(help="Public HTTPS URL of /webhooks/shopify.")],
) -> None:
    """Subscribe the order topics (README's "Webhook topics") to URL through the Admin API."""
    from tasks.core.errors import SyncError
    from tasks.core.topics import registered_topics
    from tasks.runtime import shopify_adapter

    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        _fail([f"{url} must be an https:// URL (Shopify delivers webhooks over HTTPS only)"])
    settings = _settings("shopify")
    client = shopify_adapter(settings)
    failures = 0
    try:
        for topic in (t.name for t in registered_topics(settings.order_delete_action)):
            try:
                client.subscribe_webhook(topic, url)
                typer.echo(f"subscribed {topic} → {url}")
            except SyncError as exc:
                failures += 1
                typer.echo(f"{topic}: {exc}", err=True)
    finally:
        client.close()
    if failures:
        raise typer.Exit(EXIT_FAILED)


def webhooks_serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
) -> None:
    """Serve the webhook receiver alone."""
    from webhooks.serve import serve_receiver

    serve_receiver(_settings("webhooks"), host=host, port=port)


def demo(
    orders: Annotated[int, typer.Option(help="Orders in the generated shop.")] = 200,
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its state.")] = Path(
        "data/demo"
    ),
) -> None:
    """The main job end to end against the local sandboxes (no credentials needed)."""
    _require_sandbox("shopsync demo")
    from deployments.demo import run_demo

    raise typer.Exit(run_demo(orders=orders, data_dir=data_dir))
