"""The ``shopsync`` command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from pydantic import SecretStr

from sandbox.cli import app as sandbox_app

app = typer.Typer(
    help="Keep Salesforce in step with Shopify: webhooks, nightly reconciliation, repair.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(sandbox_app, name="sandbox")

EXIT_CONFIG = 2


def _fail(lines: list[str], code: int = EXIT_CONFIG) -> None:
    for line in lines:
        typer.echo(line, err=True)
    raise typer.Exit(code)


@config_app.command("check")
def config_check(
    part: Annotated[
        list[str] | None,
        typer.Option(help="Check only these parts: shopify, salesforce, webhooks."),
    ] = None,
) -> None:
    """Check every setting; print each problem on its own line (exit 2 when there are any)."""
    from tasks.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        _fail(exc.problems)
        return
    problems = settings.problems(need=set(part) if part else None)
    if problems:
        _fail(problems)
    for name, value in sorted(settings.model_dump().items()):
        typer.echo(f"{name} = {_show(value)}")
    typer.echo("configuration OK")


def _show(value: object) -> str:
    if isinstance(value, SecretStr):
        return "******** (set)"
    if isinstance(value, list) and value and all(isinstance(v, SecretStr) for v in value):
        return f"******** ({len(value)} set)"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_show(v)}" for k, v in value.items())
    return "(not set)" if value in (None, [], "") else str(value)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())


if __name__ == "__main__":
    main()
