"""The ``run-per-webhook`` baseline: one Prefect deployment run per webhook.

    python -m bench.baselines.run_per_webhook serve            # the deployment, served
    python -m bench.baselines.run_per_webhook receive --port P # the receiver that starts runs

``serve`` serves the product's own ``sync-order`` flow (fetch the order from Shopify, sync it with
the product's sync code, record the ledger) as deployment ``sync-order/run-per-webhook`` with
``limit=4`` flow-run subprocesses at once (the product's ``PROCESS_LIMIT``). The receiver checks the
HMAC, notes when the delivery first arrived (``received.jsonl`` in the data directory), and
creates one flow run per webhook through the REST API (``POST /deployments/{id}/create_flow_run``,
what ``run_deployment(timeout=0)`` does), retrying 429/5xx and dropped connections as Prefect's
client would. Settings and ``PREFECT_API_URL`` come from the environment.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import time
from datetime import UTC, datetime
from typing import Any

DEPLOYMENT = "run-per-webhook"
FLOW = "sync-order"
PROCESS_LIMIT = 4


def serve() -> None:
    """Serve ``sync-order/run-per-webhook`` until interrupted."""
    from prefect.deployments.runner import EntrypointType

    from flows.sync_order import sync_order

    sync_order.serve(
        name=DEPLOYMENT,
        limit=PROCESS_LIMIT,
        entrypoint_type=EntrypointType.MODULE_PATH,
        print_starting_message=False,
    )


def deployment_id(api: str, timeout: float = 120) -> str:
    """The served deployment's id, once ``serve`` has registered it."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(f"{api}/deployments/name/{FLOW}/{DEPLOYMENT}", timeout=5)
        if response.status_code == 200:
            return str(response.json()["id"])
        time.sleep(0.3)
    raise RuntimeError(f"deployment {FLOW}/{DEPLOYMENT} did not appear within {timeout:.0f} s")


def create_receiver(secret: bytes, api: str, deployment: str, journal: str) -> Any:
    """The baseline receiver's ASGI app."""
    import httpx
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    client = httpx.AsyncClient(base_url=api, timeout=30)
    log = open(journal, "a", buffering=1)  # noqa: SIM115 - lives as long as the app

    async def receive(request: Request) -> Response:
        body = await request.body()
        given = request.headers.get("x-shopify-hmac-sha256", "")
        expected = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return Response(status_code=401)
        order_id = str(json.loads(body)["id"])
        log.write(json.dumps({"order_id": order_id, "received_at": _now()}) + "\n")
        flow_run = await _create_flow_run(client, deployment, order_id)
        if flow_run is None:
            return Response(status_code=503)  # Shopify retries
        return JSONResponse({"flow_run": flow_run})

    async def healthz(_: Request) -> Response:
        return Response(status_code=200)

    return Starlette(
        routes=[
            Route("/webhooks/shopify", receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def _now() -> str:
    return datetime.now(UTC).isoformat()


async def _create_flow_run(client: Any, deployment: str, order_id: str) -> str | None:
    """POST create_flow_run, retrying 429/5xx and dropped connections like Prefect's client
    (5 retries with backoff); None when it still fails."""
    import asyncio

    import httpx

    for attempt in range(6):
        try:
            answer = await client.post(
                f"/deployments/{deployment}/create_flow_run",
                json={"parameters": {"order_id": order_id}},
            )
            if answer.status_code < 300:
                return str(answer.json()["id"])
            if answer.status_code not in (429, 502, 503):
                return None
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.5 * 2**attempt)
    return None


def receive(port: int) -> None:
    """Serve the baseline receiver until interrupted."""
    import uvicorn

    from tasks.settings import get_settings

    settings = get_settings()
    api = os.environ["PREFECT_API_URL"]
    secret = settings.shopify_webhook_secret[0].get_secret_value().encode()
    journal = str(settings.data_dir / "received.jsonl")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_receiver(secret, api, deployment_id(api), journal)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run ``serve`` or ``receive``."""
    parser = argparse.ArgumentParser(prog="python -m bench.baselines.run_per_webhook")
    sub = parser.add_subparsers(dest="what", required=True)
    sub.add_parser("serve")
    r = sub.add_parser("receive")
    r.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.what == "serve":
        serve()
    else:
        receive(args.port)


if __name__ == "__main__":
    main()
