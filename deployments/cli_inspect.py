"""Looking at what shopsync holds and checks: ``config check``, ``dlq …``, ``warnings``,
``status``, ``smoke``, ``doctor``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import SecretStr

from deployments.cli_common import (
    EXIT_FAILED,
    _fail,
    _prefect_api,
    _preflight,
    _run_flow,
    _settings,
    _store,
)

if TYPE_CHECKING:
    from tasks.settings import Settings


# -- config -----------------------------------------------------------------------------------


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


# -- dead letters -----------------------------------------------------------------------------


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


def dlq_show(dead_letter_id: int) -> None:
    """Everything about one dead letter."""
    letter = _store(_settings()).dead_letter(dead_letter_id)
    if letter is None:
        _fail([f"no dead letter #{dead_letter_id}"], EXIT_FAILED)
    data = {name: getattr(letter, name) for name in letter.__slots__ if name != "payload"}
    data["payload_bytes"] = len(letter.payload or b"")
    typer.echo(json.dumps(data, indent=2, default=str))


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


def dlq_resolve(dead_letter_id: int) -> None:
    """Close a dead letter by hand (e.g. the order was handled in Salesforce directly)."""
    store = _store(_settings())
    letter = store.dead_letter(dead_letter_id)
    if letter is None:
        _fail([f"no dead letter #{dead_letter_id}"], EXIT_FAILED)
    closed = store.resolve_dead_letters(letter.order_id, "resolved by hand")
    typer.echo(f"closed {closed} dead letter(s) of order {letter.order_id}")


# -- field warnings ---------------------------------------------------------------------------


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
    from tasks.runtime import salesforce_adapter

    try:
        usage = salesforce_adapter(settings).usage(refresh=True)
    except SyncError as exc:
        return f"salesforce api usage: unavailable ({exc})"
    if usage is None:
        return "salesforce api usage: unavailable (the org did not report it)"
    return f"salesforce api usage: {usage.used}/{usage.limit} in the last 24 h"


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
