"""Values as comparable text: how reconcile compares what the mapping wants with what
Salesforce has, across REST JSON and Bulk CSV. Pure."""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo

__all__ = ["CENT", "Kind", "comparable", "money_text"]

Kind = Literal["text", "email", "money", "number", "date", "datetime", "bool"]
"""How a field's value compares (and, for a path source, what its type maps to)."""
CENT = Decimal("0.01")


def money_text(value: Any) -> str | None:
    """Money as fixed-point text rounded to cents (``"12.30"``); ``None`` for blank/invalid.

    Accepts Decimal, int, str (Bulk CSV cells) and float (REST JSON numbers, via ``repr`` so that
    ``59.9`` stays ``59.90``, not ``59.899999…``).
    """
    amount = _decimal(value)
    return None if amount is None else format(amount.quantize(CENT, rounding=ROUND_HALF_UP), "f")


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, Decimal):
            amount = value
        elif isinstance(value, float):
            amount = Decimal(repr(value))
        else:
            text = str(value).strip()
            if not text:
                return None
            amount = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() else None


def _number_text(value: Any) -> str | None:
    amount = _decimal(value)
    if amount is None:
        return None
    text = format(amount.normalize(), "f")
    return "0" if text in {"-0", "0"} else text


def _datetime_text(value: Any) -> str | None:
    if isinstance(value, datetime):
        parsed = value
    else:
        text = str(value).strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    if parsed.tzinfo is None:
        return parsed.isoformat(timespec="seconds")
    return parsed.astimezone(ZoneInfo("UTC")).isoformat(timespec="seconds")


def _bool_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "true" if str(value).strip().lower() == "true" else "false"


def comparable(kind: Kind, value: Any) -> str | None:
    """A value as text that compares equal across the mapping, REST JSON and Bulk CSV:
    money in cents, numbers normalised, e-mails case-folded, dates ISO, datetimes UTC to the
    second, booleans ``true``/``false``; ``None`` for blank (never drift: absent means leave
    Salesforce alone)."""
    if value is None or (isinstance(value, str) and value == ""):
        return None
    if kind == "money":
        return money_text(value)
    if kind == "number":
        return _number_text(value)
    if kind == "bool":
        return _bool_text(value)
    if kind == "datetime":
        return _datetime_text(value)
    if kind == "date":
        return value.isoformat()[:10] if isinstance(value, date) else str(value)[:10]
    if kind == "email":
        return str(value).strip().lower()
    return str(value)
