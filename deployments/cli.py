"""The ``shopsync`` command line.

Prefect is imported lazily, after ``PREFECT_API_URL`` is settled: Prefect reads its settings
when it is first imported.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import SecretStr

from deployments.sandbox_access import SandboxUnavailable, require_sandbox, sandbox_available

if TYPE_CHECKING:
    from tasks.settings import Settings

app = typer.Typer(
    help="Keep Salesforce in step with Shopify: webhooks, nightly reconciliation, repair.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
dlq_app = typer.Typer(help="Inspect and replay dead-lettered orders.", no_args_is_help=True)
webhooks_app = typer.Typer(help="The webhook receiver.", no_args_is_help=True)
alerts_app = typer.Typer(help="Prefect automations that notify you.", no_args_is_help=True)


def _sandbox_app() -> typer.Typer:
    """``shopsync sandbox …`` from the repository's sandbox, or a group that says it is absent."""
    if sandbox_available():
        from sandbox.cli import app as sandbox_cli

        return sandbox_cli
    absent = typer.Typer(help="Run the local sandboxes (only from a clone of the repository).")

    @absent.callback(invoke_without_command=True)
    def unavailable() -> None:
        _require_sandbox("shopsync sandbox")

    return absent


sandbox_app = _sandbox_app()
app.add_typer(config_app, name="config")
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(dlq_app, name="dlq")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(alerts_app, name="alerts")

EXIT_FAILED = 1
EXIT_CONFIG = 2


def _fail(lines: list[str], code: int = EXIT_CONFIG) -> None:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(code)


def _require_sandbox(command: str) -> None:
    """The sandbox is importable, or one line naming the fix and exit 2."""
    try:
        require_sandbox(command)
    except SandboxUnavailable as exc:
        _fail([str(exc)])


def _settings(*parts: str) -> Settings:
    """The settings, or a readable list of problems and exit 2."""
    from tasks.settings import SettingsError, get_settings

    get_settings.cache_clear()
    try:
        settings = get_settings()
    except SettingsError as exc:
        _fail(exc.problems)
        raise
    problems = settings.problems(need=set(parts)) if parts else []
    if problems:
        _fail(problems)
    return settings


def _preflight(settings: Settings, *systems: str) -> None:
    """Log in to each system once, before any flow starts: a wrong secret or an unreachable URL
    is one line with its fix (exit 1), not a traceback and minutes of retries."""
    from tasks.checks.doctor import fix_for
    from tasks.core.errors import SyncError

    probes = {"Salesforce": _salesforce_probe, "Shopify": _shopify_probe}
    for system in systems:
        try:
            probes[system](settings)
        except SyncError as exc:
            _fail([f"shopsync: {system}: {exc} (fix: {fix_for(exc, system)})"], EXIT_FAILED)


def _salesforce_probe(settings: Settings) -> None:
    from tasks.salesforce import SimpleSalesforceGateway

    SimpleSalesforceGateway(settings).limits()


def _shopify_probe(settings: Settings) -> None:
    from tasks.shopify.client import ShopifyClient

    client = ShopifyClient(settings)
    try:
        client.shop_info()
    finally:
        client.close()


@contextmanager
def _prefect_api(
    settings: Settings, port: int = 0, *, serving: bool = False, json_out: bool = False
) -> Iterator[None]:
    """Use PREFECT_API_URL when set, else the server of a running ``shopsync serve`` (its UI then
    shows this command's runs), else a local Prefect server for the command alone.

    ``serving``: this is ``serve``; crash what a killed serve left running, and tell later
    commands where this server is. ``json_out``: stdout is for JSON only; say where the UI is
    on stderr.
    """
    from deployments.local import prefect_server
    from deployments.recovery import running_server

    if os.environ.get("PREFECT_API_URL"):
        with _serving(settings, os.environ["PREFECT_API_URL"]) if serving else _nothing():
            yield
        return
    shared = None if serving else running_server(settings.data_dir)
    if shared:
        with _api_url(shared, "the running shopsync serve", json_out):
            yield
        return
    with (
        prefect_server(settings.data_dir / "prefect", port=port) as url,
        _api_url(url, "until this command ends", json_out),
        _serving(settings, url) if serving else _nothing(),
    ):
        yield


@contextmanager
def _serving(settings: Settings, url: str) -> Iterator[None]:
    """Take over from a killed serve (its runs marked Crashed), note this one, unnote at exit."""
    from deployments.recovery import crash_runs_of, read_note, remove_note, write_note

    previous = read_note(settings.data_dir)
    if previous is not None and not previous.is_alive():
        crashed = crash_runs_of(previous)
        if crashed:
            typer.echo(f"marked {len(crashed)} run(s) of the stopped serve Crashed: {crashed}")
    write_note(settings.data_dir, url)
    try:
        yield
    finally:
        remove_note(settings.data_dir)


@contextmanager
def _api_url(url: str, whose: str, json_out: bool = False) -> Iterator[None]:
    os.environ["PREFECT_API_URL"] = url
    typer.echo(f"Prefect UI: {url.removesuffix('/api')} ({whose})", err=json_out)
    try:
        yield
    finally:
        _flush_prefect()
        os.environ.pop("PREFECT_API_URL", None)


def _flush_prefect() -> None:
    """Send buffered run logs and events before the server they go to stops."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with suppress(RuntimeError):  # never started
            worker.drain_all(timeout=10)


# -- config -----------------------------------------------------------------------------------


@config_app.command("check")
def config_check(
    part: Annotated[
        list[str] | None,
        typer.Option(help="Check only these parts: shopify, salesforce, webhooks."),
    ] = None,
) -> None:
    """Check every setting; print each problem on its own line (exit 2 when there are any)."""
    settings = _settings(*(part or ["shopify", "salesforce", "webhooks"]))
    for name, value in sorted(settings.model_dump().items()):
        typer.echo(f"{name} = {_show(value)}")
    typer.echo("configuration OK")


def _show(value: object) -> str:
    if isinstance(value, SecretStr):
        return "******** (set)" if value.get_secret_value() else "(not set)"
    secrets = (
        [v for v in value if isinstance(v, SecretStr) and v.get_secret_value()]
        if isinstance(value, list)
        else []
    )
    if secrets:
        return f"******** ({len(secrets)} set)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_show(v)}" for k, v in value.items())
    return "(not set)" if value in (None, [], "") else str(value)


# -- running things ---------------------------------------------------------------------------


@app.command("serve")
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


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def _serve_everything(settings: Settings, stack: Any, limit: int) -> None:
    from deployments.background import BackgroundServer
    from deployments.serve import serve_deployments
    from state import StateStore
    from tasks.runtime import build_runtime
    from webhooks.serve import DueWorkWatcher, build_receiver, check_bind

    check_bind(settings.webhook_host, allow_public=settings.webhook_allow_public_bind)
    receiver = BackgroundServer(
        build_receiver(settings), host=settings.webhook_host, port=settings.webhook_port
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
        finally:
            runtime.close()
        _setup_alerts_quietly(settings)
        with DueWorkWatcher(StateStore.open(settings.state_url)):
            serve_deployments(settings, timezone, limit=limit)


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


@alerts_app.command("setup")
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


@sandbox_app.command("all")
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


@webhooks_app.command("register")
def webhooks_register(
    url: Annotated[str, typer.Option(help="Public HTTPS URL of /webhooks/shopify.")],
) -> None:
    """Subscribe the order topics (README's "Webhook topics") to URL through the Admin API."""
    from tasks.core.errors import SyncError
    from tasks.core.topics import registered_topics
    from tasks.shopify.client import ShopifyClient

    if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        _fail([f"{url} must be an https:// URL (Shopify delivers webhooks over HTTPS only)"])
    settings = _settings("shopify")
    client = ShopifyClient(settings)
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


@webhooks_app.command("serve")
def webhooks_serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default from settings).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
) -> None:
    """Serve the webhook receiver alone."""
    from webhooks.serve import serve_receiver

    serve_receiver(_settings("webhooks"), host=host, port=port)


@app.command("demo")
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


@app.command("sync-order")
def sync_order_command(
    order_id: Annotated[str, typer.Argument(help="Order name (#1001) or numeric order id.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run's result as JSON (for scripts).")
    ] = False,
) -> None:
    """Sync one Shopify order now (exit 1, with one line, when it was dead-lettered)."""
    from tasks.core.orders import order_reference

    try:
        order_id = order_reference(order_id)
    except ValueError as exc:
        _fail([f"shopsync sync-order: {exc} (the number at the end of the order's admin URL)"])
    settings = _settings("shopify", "salesforce")
    _preflight(settings, "Shopify", "Salesforce")
    with _prefect_api(settings, json_out=as_json):
        from flows.sync_order import sync_order

        result = _run_flow(sync_order, order_id=order_id)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    elif result.get("action") != "dead_letter":  # a dead letter's one line is already out
        from deployments.status_view import sync_order_line

        typer.echo(sync_order_line(result))
    if result.get("action") == "dead_letter":
        raise typer.Exit(EXIT_FAILED)


@app.command("drain")
def drain_command(
    max_seconds: Annotated[
        float, typer.Option(help="Stop claiming new work after this long.")
    ] = 240.0,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Orders claimed at a time (default: 800 when SHOPSYNC_DRAIN_MODE may use "
            "sObject Collections, 50 with per_order).",
            min=1,
        ),
    ] = None,
) -> None:
    """Drain the webhook inbox once, in the foreground (for cron, and for debugging)."""
    settings = _settings("shopify", "salesforce")
    _preflight(settings, "Shopify", "Salesforce")
    with _prefect_api(settings):
        from flows.sync_pending import sync_pending_orders

        result = _run_flow(sync_pending_orders, max_seconds=max_seconds, batch_size=batch_size)
    outcomes = result.get("outcomes") or {}
    done = ", ".join(f"{count} {what}" for what, count in sorted(outcomes.items()))
    typer.echo(f"drain finished: {done or 'nothing was pending'}")
    if result.get("stopped_because"):
        typer.echo(f"stopped early: {result['stopped_because']}", err=True)
        raise typer.Exit(EXIT_FAILED)


@app.command("reconcile")
def reconcile_command(
    start: Annotated[
        str | None, typer.Option(help="First day (shop timezone), YYYY-MM-DD.")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Last day, inclusive, YYYY-MM-DD.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Report the repair plan; write nothing.")] = False,
    advance_cursor_to: Annotated[
        str | None,
        typer.Option(
            help="Run nothing: move the nightly cursor to this ISO 8601 time with a timezone "
            "(orders updated before it are no longer checked by the nightly run)."
        ),
    ] = None,
    allow_backwards: Annotated[
        bool, typer.Option(help="With --advance-cursor-to: allow moving the cursor back.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the run's full result as JSON (for scripts).")
    ] = False,
) -> None:
    """Reconcile a date range (or, without dates, the nightly window from the cursor)."""
    if advance_cursor_to is not None:
        if start or end or dry_run:
            _fail(["--advance-cursor-to runs nothing: give it without --start/--end/--dry-run"])
        _move_cursor(advance_cursor_to, allow_backwards)
        return
    first, last = _dates(start, end)
    settings = _settings("shopify", "salesforce")
    _preflight(settings, "Shopify", "Salesforce")
    with _prefect_api(settings, json_out=as_json):
        from deployments.progress_view import DRY_RUN_STAGES, RECONCILE_STAGES, progress_display
        from flows.reconcile import backfill, nightly

        with progress_display(DRY_RUN_STAGES if dry_run else RECONCILE_STAGES):
            if first is None or last is None:
                result = _run_flow(nightly, dry_run=dry_run)
            else:
                result = _run_flow(backfill, start=first, end=last, dry_run=dry_run)
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        from deployments.status_view import reconcile_line

        typer.echo(reconcile_line(result))


def _move_cursor(value: str, allow_backwards: bool) -> None:
    """An operator's move of the nightly cursor (the nightly run only ever moves it forward)."""
    from flows.reconcile_run import CURSOR

    try:
        target = datetime.fromisoformat(value)
    except ValueError as exc:
        _fail([f"--advance-cursor-to must be an ISO 8601 time: {exc}"])
        raise
    if target.tzinfo is None:
        _fail([f"--advance-cursor-to {value}: give a timezone, e.g. {value}+00:00"])
    store = _store(_settings())
    try:
        before = store.get_cursor(CURSOR)
        after = store.set_cursor(CURSOR, target.astimezone(UTC), allow_backwards=allow_backwards)
    except ValueError as exc:
        _fail([f"{exc} (pass --allow-backwards to widen the next nightly window)"], EXIT_FAILED)
        raise
    finally:
        store.close()
    moved = {"cursor": CURSOR, "from": before, "to": after}
    typer.echo(json.dumps(moved, indent=2, default=str))


def _dates(start: str | None, end: str | None) -> tuple[date | None, date | None]:
    if (start is None) != (end is None):
        _fail(["give both --start and --end, or neither (the nightly window)"])
    try:
        first = date.fromisoformat(start) if start else None
        last = date.fromisoformat(end) if end else None
    except ValueError as exc:
        _fail([f"dates must be YYYY-MM-DD: {exc}"])
        raise
    if first and last and last < first:
        _fail([f"--end {last} is before --start {first}"])
    return first, last


def _run_flow(flow: Any, **parameters: Any) -> dict[str, Any]:
    """Run a flow here; its result even when it ended Failed (the caller reads the counts)."""
    from flows.outcome import run_flow
    from tasks.core.errors import SyncError

    _quiet_prefect_console()
    try:
        state, result = run_flow(flow, **parameters)
        if state.is_failed():
            typer.echo(f"{flow.name}: {state.message}", err=True)
        return result
    except SyncError as exc:
        _fail([f"{flow.name} failed: {exc}"], EXIT_FAILED)
    except ValueError as exc:
        _fail([str(exc)])
    raise AssertionError("unreachable")


def _quiet_prefect_console() -> None:
    """Keep the run's logs for the Prefect UI, not the terminal: the command prints progress and
    one summary line (a failed task's traceback belongs in the run's logs). Setting
    ``PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL`` (e.g. ``INFO``) shows them here again."""
    import logging

    if os.environ.get("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"):
        return
    from prefect.logging.handlers import PrefectConsoleHandler

    for logger in [logging.root, *logging.root.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):  # placeholders have none
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.CRITICAL)


# -- dead letters -----------------------------------------------------------------------------


def _store(settings: Settings) -> Any:
    from state import StateStore

    return StateStore.open(settings.state_url)


@dlq_app.command("list")
def dlq_list(
    all_: Annotated[bool, typer.Option("--all", help="Include resolved ones.")] = False,
) -> None:
    """List dead letters, newest first."""
    letters = _store(_settings()).dead_letters(include_resolved=all_)
    if not letters:
        typer.echo("no dead letters")
        return
    from tasks.reporting.dead_letter_board import order_name

    for letter in letters:
        state = f"resolved {letter.resolution}" if letter.resolved_at else "open"
        name = order_name(letter)
        order = f"{name} ({letter.order_id})" if name else letter.order_id
        typer.echo(
            f"#{letter.id}  order {order}  {letter.stage}  {letter.error_code or '-'}  "
            f"x{letter.attempts}  {letter.last_seen:%Y-%m-%d %H:%M}Z  {state}\n    {letter.message}"
        )


@dlq_app.command("show")
def dlq_show(dead_letter_id: int) -> None:
    """Everything about one dead letter."""
    letter = _store(_settings()).dead_letter(dead_letter_id)
    if letter is None:
        _fail([f"no dead letter #{dead_letter_id}"], EXIT_FAILED)
    data = {name: getattr(letter, name) for name in letter.__slots__ if name != "payload"}
    data["payload_bytes"] = len(letter.payload or b"")
    typer.echo(json.dumps(data, indent=2, default=str))


@dlq_app.command("replay")
def dlq_replay(
    orders: Annotated[
        list[str] | None,
        typer.Argument(help="Order names (#1301), order ids or dead-letter ids; none = all."),
    ] = None,
) -> None:
    """Sync dead-lettered orders again (all open ones, or the ones named)."""
    settings = _settings("shopify", "salesforce")
    _preflight(settings, "Shopify", "Salesforce")
    with _prefect_api(settings):
        from flows.replay import replay_dead_letters

        result = _run_flow(replay_dead_letters, orders=orders or None)
    typer.echo(json.dumps(result, indent=2))
    if result.get("still_failing"):
        raise typer.Exit(EXIT_FAILED)


@dlq_app.command("resolve")
def dlq_resolve(dead_letter_id: int) -> None:
    """Close a dead letter by hand (e.g. the order was handled in Salesforce directly)."""
    store = _store(_settings())
    letter = store.dead_letter(dead_letter_id)
    if letter is None:
        _fail([f"no dead letter #{dead_letter_id}"], EXIT_FAILED)
    closed = store.resolve_dead_letters(letter.order_id, "resolved by hand")
    typer.echo(f"closed {closed} dead letter(s) of order {letter.order_id}")


# -- field warnings ---------------------------------------------------------------------------


@app.command("warnings")
def warnings_list(
    order: Annotated[str | None, typer.Option(help="Only this order id.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, most recent first.")] = 200,
) -> None:
    """Values cut to fit Salesforce or left out, per order, most recently seen first."""
    warnings = _store(_settings()).field_warnings(order_id=order, limit=limit)
    if not warnings:
        typer.echo("no field warnings")
        return
    for w in warnings:
        name = f"{w.order_name} " if w.order_name else ""
        size = "" if w.limit is None else f" {w.original_length}>{w.limit}"
        typer.echo(
            f"order {name}({w.order_id})  {w.object}.{w.field}  {w.kind}{size}  {w.path}  "
            f"x{w.times_seen}  last {w.last_seen:%Y-%m-%d %H:%M}Z"
            + (f"\n    {w.reason}" if w.reason else "")
        )


# -- status and doctor ------------------------------------------------------------------------


@app.command("status")
def status(
    salesforce: Annotated[
        bool, typer.Option(help="Also ask Salesforce for its API usage (one API call).")
    ] = True,
) -> None:
    """Inbox depth, dead letters, field warnings, recent reconcile runs, the cursor, Salesforce
    API usage."""
    from deployments.status_view import console, dead_letter_table, inbox_table, runs_table

    settings = _settings()
    store = _store(settings)
    counts = store.counts()
    out = console()
    if counts.inbox:
        out.print(inbox_table(counts.inbox))
    else:
        typer.echo("inbox: empty")
    typer.echo(f"dead letters open: {counts.dead_letters_open}")
    if counts.dead_letters_open:
        out.print(dead_letter_table(store.dead_letters()))
    typer.echo(f"orders in the ledger: {counts.ledger_orders}")
    typer.echo(
        f"field warnings: {counts.field_warnings} in "
        f"{counts.orders_with_field_warnings} order(s)"
        + (" (`shopsync warnings` lists them)" if counts.field_warnings else "")
    )
    cursor = store.get_cursor("nightly")
    typer.echo(f"nightly cursor: {cursor.isoformat() if cursor else 'not set yet'}")
    runs = store.recent_runs(5)
    if runs:
        out.print(runs_table(runs))
    else:
        typer.echo("reconcile runs: none yet")
    if salesforce and not settings.problems(need={"salesforce"}):
        typer.echo(_api_usage(settings))


def _api_usage(settings: Settings) -> str:
    from tasks.core.errors import SyncError
    from tasks.salesforce import SimpleSalesforceGateway

    try:
        limits = SimpleSalesforceGateway(settings).limits()
    except SyncError as exc:
        return f"salesforce api usage: unavailable ({exc})"
    daily = limits.get("DailyApiRequests", {})
    used = int(daily.get("Max", 0)) - int(daily.get("Remaining", 0))
    return f"salesforce api usage: {used}/{daily.get('Max', '?')} in the last 24 h"


@app.command("smoke")
def smoke() -> None:
    """Opt-in check against the real org and shop: log in to both, write one clearly marked test
    Account/Contact/Opportunity with the real field set, read it back, delete it; one line a
    step, exit 1 when any fails."""
    from tasks.checks.smoke import SmokeRun
    from tasks.runtime import build_runtime

    settings = _settings("shopify", "salesforce")
    runtime = build_runtime(settings)
    try:
        steps = SmokeRun(runtime).run(report=lambda step: typer.echo(step.line()))
    finally:
        runtime.close()
    failed = [step for step in steps if not step.ok]
    typer.echo(f"smoke test failed at: {failed[0].name}" if failed else "smoke test passed")
    if failed:
        raise typer.Exit(EXIT_FAILED)


@app.command("doctor")
def doctor() -> None:
    """Preflight checks of the Salesforce org and the Shopify app; exit 1 when any fails."""
    from tasks.checks.doctor import failed, run_doctor
    from tasks.runtime import build_runtime

    settings = _settings("shopify", "salesforce")
    runtime = build_runtime(settings)
    try:
        checks = run_doctor(
            runtime.salesforce,
            runtime.shopify,
            settings.mapping,
            allow_save=settings.salesforce_duplicate_rule_allow_save,
            delete_action=settings.order_delete_action,
        )
    finally:
        runtime.close()
    for check in checks:
        mark = "ok  " if check.ok else ("warn" if check.severity == "warning" else "FAIL")
        typer.echo(f"[{mark}] {check.name}: {check.detail}")
        if check.fix and not check.ok:
            typer.echo(f"       fix: {check.fix}")
    problems = failed(checks)
    typer.echo(f"{len(problems)} problem(s)" if problems else "all checks passed")
    if problems:
        raise typer.Exit(EXIT_FAILED)


def main() -> None:
    """Console-script entry point: failures are one clear line, not a traceback."""
    from tasks.core.errors import SyncError
    from tasks.settings import SettingsError

    try:
        sys.exit(app())
    except SettingsError as exc:
        _print_and_exit(exc.problems, EXIT_CONFIG)
    except SyncError as exc:
        _print_and_exit([f"shopsync: {exc}"], EXIT_FAILED)
    except KeyboardInterrupt:
        _print_and_exit(["interrupted"], 130)


def _print_and_exit(lines: list[str], code: int) -> None:
    for line in lines:
        typer.echo(line, err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
