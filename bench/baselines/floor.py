"""The ``floor`` receiver: a minimal Starlette app that checks the HMAC and inserts into SQLite.

Same server (uvicorn, one process), same SQLite settings as the product's inbox (WAL,
``synchronous=FULL``, one transaction per delivery), no header parsing beyond the signature and
the webhook id, no JSON parsing, no ORM. What the product's receiver cannot beat.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import sqlite3
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def create_floor_app(secret: bytes, db_path: Path) -> Starlette:
    """The floor receiver's ASGI app, storing into the SQLite file ``db_path``."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(db_path, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute(
        "CREATE TABLE IF NOT EXISTS inbox (webhook_id TEXT PRIMARY KEY, body BLOB NOT NULL)"
    )

    async def receive(request: Request) -> Response:
        body = await request.body()
        given = request.headers.get("x-shopify-hmac-sha256", "")
        expected = base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return Response(status_code=401)
        webhook_id = request.headers.get("x-shopify-webhook-id", "")
        connection.execute("INSERT OR IGNORE INTO inbox VALUES (?, ?)", (webhook_id, body))
        return Response(status_code=200)

    async def healthz(_: Request) -> Response:
        return Response(status_code=200)

    return Starlette(
        routes=[
            Route("/webhooks/shopify", receive, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )
