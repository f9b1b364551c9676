"""What every ``shopsync`` command shares: the Typer app and its groups, exit codes, loading the
settings (or one line per problem), logging in once before a flow, the Prefect API a command
uses, and running a flow in the foreground.

Prefect is imported lazily, after ``PREFECT_API_URL`` is settled: Prefect reads its settings
when it is first imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

import typer

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
    from tasks.runtime import salesforce_adapter

    salesforce_adapter(settings).usage(refresh=True)


def _shopify_probe(settings: Settings) -> None:
    from tasks.runtime import shopify_adapter

    client = shopify_adapter(settings)
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


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


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


def _store(settings: Settings) -> Any:
    from state import StateStore

    return StateStore.open(settings.state_url)
