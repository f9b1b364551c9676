"""The ``shopsync`` command line: every command, in the order ``shopsync --help`` lists them, and
the entry point. The commands live by kind in ``cli_serve.py`` (long-running), ``cli_runs.py``
(one-off runs) and ``cli_inspect.py`` (looking and checking); ``cli_common.py`` holds the app and
what they share.

Prefect is imported lazily, after ``PREFECT_API_URL`` is settled: Prefect reads its settings
when it is first imported.
"""

from __future__ import annotations

import sys

import typer

from deployments import cli_inspect, cli_runs, cli_serve
from deployments.cli_common import (
    EXIT_CONFIG,
    EXIT_FAILED,
    alerts_app,
    app,
    config_app,
    dlq_app,
    sandbox_app,
    webhooks_app,
)

__all__ = ["app", "main"]


def _register() -> None:
    """Put every command on its group; the top-level ones in the order ``--help`` lists them."""
    app.command("serve")(cli_serve.serve)
    alerts_app.command("setup")(cli_serve.alerts_setup)
    sandbox_app.command("all")(cli_serve.sandbox_all)
    webhooks_app.command("register")(cli_serve.webhooks_register)
    webhooks_app.command("serve")(cli_serve.webhooks_serve)
    app.command("demo")(cli_serve.demo)
    app.command("sync-order")(cli_runs.sync_order_command)
    app.command("drain")(cli_runs.drain_command)
    app.command("reconcile")(cli_runs.reconcile_command)
    config_app.command("check")(cli_inspect.config_check)
    dlq_app.command("list")(cli_inspect.dlq_list)
    dlq_app.command("show")(cli_inspect.dlq_show)
    dlq_app.command("replay")(cli_inspect.dlq_replay)
    dlq_app.command("resolve")(cli_inspect.dlq_resolve)
    app.command("warnings")(cli_inspect.warnings_list)
    app.command("status")(cli_inspect.status)
    app.command("smoke")(cli_inspect.smoke)
    app.command("doctor")(cli_inspect.doctor)


_register()


def main() -> None:
    """Console-script entry point: failures are one clear line, not a traceback."""
    from deployments.local import PrefectServerFailed
    from tasks.core.errors import SyncError
    from tasks.settings import SettingsError

    try:
        sys.exit(app())
    except SettingsError as exc:
        _print_and_exit(exc.problems, EXIT_CONFIG)
    except (SyncError, PrefectServerFailed) as exc:
        _print_and_exit([f"shopsync: {exc}"], EXIT_FAILED)
    except KeyboardInterrupt:
        _print_and_exit(["interrupted"], 130)


def _print_and_exit(lines: list[str], code: int) -> None:
    for line in lines:
        typer.echo(line, err=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
