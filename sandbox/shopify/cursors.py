"""Opaque cursors (GraphQL ``after``/``before``) and REST ``page_info`` tokens."""

from __future__ import annotations

import base64
import json
from typing import Any


class CursorError(ValueError):
    """A cursor that this sandbox did not issue."""


def encode(obj: Any) -> str:
    """Encode a JSON-able value as an opaque url-safe token."""
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str) -> Any:
    """Decode :func:`encode`'s output; raise :class:`CursorError` on anything else."""
    try:
        pad = "=" * (-len(token) % 4)
        return json.loads(base64.urlsafe_b64decode(token + pad))
    except (ValueError, TypeError) as exc:
        raise CursorError(f"Invalid cursor: {token!r}") from exc


def encode_sort_key(sk: tuple[int, int]) -> str:
    """Cursor of an order at sort key ``(value, id)``."""
    return encode({"last_value": sk[0], "last_id": sk[1]})


def decode_sort_key(token: str | None) -> tuple[int, int] | None:
    """Inverse of :func:`encode_sort_key` (None passes through)."""
    if token is None:
        return None
    obj = decode(token)
    try:
        return int(obj["last_value"]), int(obj["last_id"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CursorError(f"Invalid cursor: {token!r}") from exc
