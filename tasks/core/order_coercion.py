"""Scalar coercion shared by the two order parsers (:mod:`tasks.core.orders`).

Ids as digit strings (never through ``float``), money as plausible ``Decimal``, timestamps as
tz-aware UTC, text stripped of whitespace and control characters (empty becomes ``None``).
Anything malformed raises :class:`~tasks.core.errors.InvalidOrder`. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tasks.core.errors import InvalidOrder
from tasks.core.order_model import Address

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|[\ud800-\udfff]")
_MAX_ID = 10**30
_MAX_ADJUSTED = 17  # Salesforce currency fields hold at most 18 digits
_MIN_EXPONENT = -12
_DIGITS = re.compile(r"[0-9]{1,30}")
_GID = re.compile(r"gid://shopify/[A-Za-z]+/([0-9]{1,30})(?:\?.*)?")

# --------------------------------------------------------------------------------------------
# Scalar coercion shared by both parsers
# --------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    """Cleaned, stripped text, or ``None`` for null, empty or whitespace-only values.

    Control characters (other than tab and newlines) and lone surrogates are removed: they carry
    no meaning and Salesforce rejects them.
    """
    if isinstance(value, str):
        text = _CONTROL.sub("", value).strip()
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) < _MAX_ID:
        text = str(value)
    else:
        return None
    return text or None


def _lower(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else text.lower()


def _upper(value: Any) -> str | None:
    text = _text(value)
    return None if text is None else text.upper()


def _id(value: Any, what: str) -> str | None:
    """A Shopify id as a string of digits; accepts int, digit strings and GIDs; never floats."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool | float):
        raise InvalidOrder(f"{what} id must be an integer or a string of digits, got {value!r}")
    if isinstance(value, int):
        if not 0 <= value < _MAX_ID:
            raise InvalidOrder(f"{what} id is out of range")
        return str(value)
    text = str(value).strip()
    if _DIGITS.fullmatch(text):
        return str(int(text))  # drops leading zeros, keeps every digit
    gid = _GID.fullmatch(text)
    if gid:
        return str(int(gid.group(1)))
    raise InvalidOrder(f"{what} id is not numeric: {text[:60]!r}")


def _decimal(value: Any, what: str) -> Decimal | None:
    """Money as Decimal from a string, an int, a Decimal or (via its repr) a JSON float."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise InvalidOrder(f"{what} is not an amount: {value!r}")
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int | float):
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    else:
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise InvalidOrder(f"{what} is not an amount: {str(value)[:60]!r}") from None
    if not _plausible(amount):
        raise InvalidOrder(f"{what} is not a plausible amount: {str(value)[:60]!r}")
    return amount


def _plausible(amount: Decimal) -> bool:
    """Finite, at most 18 integer digits, at most 12 decimals, no positive exponent."""
    if not amount.is_finite():
        return False
    exponent = amount.as_tuple().exponent
    return (
        isinstance(exponent, int)
        and _MIN_EXPONENT <= exponent <= 0
        and (amount.is_zero() or amount.adjusted() <= _MAX_ADJUSTED)
    )


def _datetime(value: Any, what: str) -> datetime | None:
    """An ISO 8601 timestamp as an aware UTC datetime (naive input is taken as UTC)."""
    text = _text(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidOrder(f"{what} is not an ISO 8601 timestamp: {text[:60]!r}") from None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _dig(payload: Mapping[str, Any], *path: str) -> Any:
    current: Any = payload
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def _empty_to_none(address: Address) -> Address | None:
    return None if address == Address() else address


def _timestamps(
    created: datetime | None, updated: datetime | None, processed: datetime | None, order_id: str
) -> tuple[datetime, datetime]:
    """``created_at`` (else processed/updated) and ``updated_at`` (else ``created_at``)."""
    created_at = created or processed or updated
    if created_at is None:
        raise InvalidOrder(f"order {order_id} has no created_at", code="NO_CREATED_AT")
    return created_at, updated or created_at


def _required_id(value: Any, fallback: Any) -> str:
    order_id = _id(value, "order") or _id(fallback, "order")
    if order_id is None:
        raise InvalidOrder("order has no id", code="NO_ORDER_ID")
    return order_id


def _require_total(amount: Decimal | None, order_id: str) -> Decimal:
    if amount is None:
        raise InvalidOrder(f"order {order_id} has no total price", code="NO_TOTAL_PRICE")
    return amount
