"""Salesforce-shaped record ids: 15-character base-62 plus the 3-character case checksum."""

from __future__ import annotations

import itertools
import re
import threading

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_RE = re.compile(r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$")

PREFIXES: dict[str, str] = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "RecordType": "012",
    "DuplicateRule": "0Bm",
    "Organization": "00D",
    "QueryLocator": "01g",
    "Job": "750",
}


def checksum(id15: str) -> str:
    """The 3-character suffix Salesforce appends to make an id case-insensitive."""
    out = []
    for chunk in range(3):
        bits = 0
        for pos, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << pos
        out.append(_SUFFIX[bits])
    return "".join(out)


def to18(value: str) -> str:
    """Normalise a 15- or 18-character id to 18 characters (raises ValueError if malformed)."""
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise ValueError(value)
    if len(value) == 18:
        if checksum(value[:15]).lower() != value[15:].lower():
            raise ValueError(value)
        return value[:15] + checksum(value[:15])
    return value + checksum(value)


def is_id(value: object) -> bool:
    """True when ``value`` is a well-formed 15/18-character id."""
    try:
        to18(value)  # type: ignore[arg-type]
    except ValueError:
        return False
    return True


def _b62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_B62[rem])
    return "".join(reversed(chars))


class IdFactory:
    """Mints unique ids per key prefix: ``<prefix>Hs0<9 base-62 digits><checksum>``."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def new(self, prefix: str) -> str:
        """A fresh 18-character id with ``prefix`` (e.g. ``001`` for Account)."""
        with self._lock:
            number = next(self._counter)
        id15 = f"{prefix}Hs0{_b62(number, 9)}"
        return id15 + checksum(id15)
