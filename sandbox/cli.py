"""``shopsync sandbox …``: serve the local Salesforce and Shopify emulators."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    help="Run the local sandboxes of the Salesforce and Shopify APIs (no credentials needed).",
    no_args_is_help=True,
)

Host = Annotated[str, typer.Option(help="Interface to bind; loopback unless you mean otherwise.")]


@app.command("salesforce")
def salesforce(
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).")] = 8081,
    host: Host = "127.0.0.1",
    client_id: Annotated[str | None, typer.Option(help="Accept only this OAuth client id.")] = None,
    client_secret: Annotated[str | None, typer.Option(help="Secret for --client-id.")] = None,
    api_limit: Annotated[int, typer.Option(help="Daily API call allocation.")] = 100_000,
    token_ttl: Annotated[int, typer.Option(help="Access-token lifetime in seconds.")] = 7200,
) -> None:
    """Serve the Salesforce REST / Bulk API 2.0 sandbox until interrupted."""
    from sandbox.salesforce import run

    run(
        host=host,
        port=port,
        client_id=client_id,
        client_secret=client_secret,
        api_limit=api_limit,
        token_ttl=token_ttl,
    )


@app.command("shopify")
def shopify(
    port: Annotated[int, typer.Option(help="TCP port (0 picks a free one).")] = 8082,
    host: Host = "127.0.0.1",
    shop: Annotated[str, typer.Option(help="The shop's myshopify.com domain.")] = (
        "sandbox-shop.myshopify.com"
    ),
    access_token: Annotated[str, typer.Option(help="Admin API token to accept.")] = (
        "shpat_sandbox"
    ),
    scopes: Annotated[str, typer.Option(help="Comma-separated access scopes.")] = (
        "read_orders,read_customers,read_all_orders"
    ),
    orders: Annotated[int, typer.Option(help="Generated orders in the shop.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the generated store.")] = 1,
    plan: Annotated[str, typer.Option(help="basic, advanced or plus (sets throttling).")] = "basic",
    webhook_secret: Annotated[str, typer.Option(help="Secret that signs webhooks.")] = (
        "sandbox-webhook-secret"
    ),
    client_id: Annotated[
        str | None, typer.Option(help="Client id accepted by the client credentials grant.")
    ] = None,
    client_secret: Annotated[str | None, typer.Option(help="Secret for --client-id.")] = None,
    token_ttl: Annotated[
        int, typer.Option(help="Lifetime in seconds of client-credentials tokens (expires_in).")
    ] = 86399,
    redacted: Annotated[
        bool,
        typer.Option(
            help="Serve customer names, e-mails, phones and addresses as null (an app without "
            "protected customer data approval)."
        ),
    ] = False,
) -> None:
    """Serve the Shopify Admin API sandbox until interrupted."""
    from sandbox.shopify import run

    run(
        host=host,
        port=port,
        shop=shop,
        access_token=access_token,
        scopes=[s.strip() for s in scopes.split(",") if s.strip()],
        orders=orders,
        seed=seed,
        plan=plan,
        webhook_secret=webhook_secret,
        client_id=client_id,
        client_secret=client_secret,
        token_ttl=token_ttl,
        redacted=redacted,
    )
