"""A local emulator of the Salesforce REST API, sObject Collections, /composite, SOQL and
Bulk API 2.0, written from ``docs/research/salesforce.md`` (section numbers §0–§7 cited in
the contract tests), never from the product's code.

Quick start::

    from sandbox.salesforce import SalesforceSandbox, OrgProfile
    from sandbox.salesforce.client import simple_salesforce
    from sandbox.server import BackgroundServer

    sb = SalesforceSandbox(org=OrgProfile(multi_currency=True), api_limit=100_000)
    with BackgroundServer(sb.app) as srv:
        sf = simple_salesforce(srv.url)          # client-credentials token + https→http adapter
        sf.Contact.upsert("External_Shopify_ID__c/42", {"LastName": "Smith"})
        print(sb.stats["api_calls"]["total"], sb.store.records["Contact"])

From the command line: ``shopsync sandbox salesforce --port 8081``. See README.md in this
folder for every route, the control API under ``/__sandbox/`` and the known deviations.
"""

from __future__ import annotations

from .app import SalesforceSandbox
from .schema import OrgProfile

__all__ = ["OrgProfile", "SalesforceSandbox", "run"]


def run(
    host: str = "127.0.0.1",
    port: int = 8081,
    client_id: str | None = None,
    client_secret: str | None = None,
    api_limit: int = 100_000,
    token_ttl: int = 7200,
) -> None:
    """Serve a fresh sandbox in the foreground until interrupted; prints the instance URL."""
    from sandbox.server import free_port, serve_forever

    port = port or free_port(host)
    sandbox = SalesforceSandbox(
        api_limit=api_limit, token_ttl=token_ttl, client_id=client_id,
        client_secret=client_secret,
    )
    serve_forever(sandbox.app, host, port, f"Salesforce sandbox: http://{host}:{port}")
