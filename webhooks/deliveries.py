"""Pure webhook logic: signature checks, header lookup, topics. No I/O.

research/shopify.md §1: the signature is base64(HMAC-SHA256(raw body, app secret)) in
``X-Shopify-Hmac-Sha256``; header names are case-insensitive and the newer Events system drops
the ``X-`` prefix; ``X-Shopify-Webhook-Id`` is the per-delivery dedupe key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from tasks.core.topics import REFUND_TOPIC


def sign(body: bytes, secret: bytes) -> str:
    """The signature Shopify sends for ``body``."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def signature_matches(body: bytes, header: str | None, secrets: Iterable[bytes]) -> bool:
    """Whether ``header`` is a valid signature of ``body`` under any of ``secrets``.

    Every secret is tried (no early exit), each comparison in constant time.
    """
    if not header:
        return False
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    matched = False
    for secret in secrets:
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        matched |= hmac.compare_digest(expected, given)
    return matched


def shopify_header(headers: Mapping[str, str], name: str) -> str | None:
    """A Shopify header by its short name (``Topic``), with or without the ``X-`` prefix."""
    for candidate in (f"x-shopify-{name}", f"shopify-{name}"):
        value = headers.get(candidate)
        if value is not None:
            return value.strip()
    return None


def order_id_of(topic: str, payload: Any) -> str | None:
    """The order a delivery is about: the order's ``id``, or a refund's ``order_id``."""
    if not isinstance(payload, Mapping):
        return None
    raw = payload.get("order_id") if topic == REFUND_TOPIC else payload.get("id")
    if isinstance(raw, bool) or raw is None:
        return None
    text = str(raw).strip()
    return text if text.isdigit() and len(text) <= 20 else None


def parse_triggered_at(value: str | None) -> datetime | None:
    """``X-Shopify-Triggered-At`` as UTC, or None when absent or unreadable."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
