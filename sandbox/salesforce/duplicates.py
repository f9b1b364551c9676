"""Duplicate rules (research §4 "DUPLICATES_DETECTED"; REST "Duplicate Rule Header", v52.0+).

An org's active duplicate rule runs on every create, update and upsert through the API. A match
on an *Allow* (alert) rule is saved only when the request says
``Sforce-Duplicate-Rule-Header: allowSave=true``; a *Block* rule always rejects. The rejection is
the error ``DUPLICATES_DETECTED`` carrying a ``duplicateResult``. In a ``/composite`` request the
header is read from each subrequest's ``httpHeaders`` (the documented place for subrequest
headers); sObject Collections and single-record calls read the request's own header. Bulk API
ingest jobs run the rules too, with no way to send the header (UNCONFIRMED).

Rules are also ``DuplicateRule`` records (DeveloperName, MasterLabel, SobjectType, IsActive), so
``SELECT … FROM DuplicateRule WHERE IsActive = true`` lists them as the Object Reference says.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from .errors import ErrorItem, SfError

HEADER = "sforce-duplicate-rule-header"
MESSAGE = "You're creating a duplicate record. We recommend you use an existing record instead."
_allow_save: ContextVar[bool] = ContextVar("allow_save", default=False)


@dataclass
class DuplicateRule:
    """One active (or inactive) duplicate rule with an exact, case-insensitive matching rule."""

    id: str
    object: str
    fields: list[str]
    action: str = "allow"  # allow (alert: the header may save anyway) | block
    name: str = ""
    label: str = ""
    active: bool = True
    record_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.action not in ("allow", "block"):
            raise ValueError("action must be 'allow' or 'block'")
        if not self.fields:
            raise ValueError("a duplicate rule needs at least one matching field")
        self.name = self.name or f"{self.object}_Duplicate_Rule_{self.id}"
        self.label = self.label or self.name.replace("_", " ")

    def key(self, rec: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The normalised values compared, or None when a matching field is blank."""
        values = [rec.get(f) for f in self.fields]
        if any(v is None or str(v).strip() == "" for v in values):
            return None
        return tuple(str(v).strip().lower() for v in values)

    def record(self) -> dict[str, Any]:
        """The ``DuplicateRule`` sObject fields."""
        return {"DeveloperName": self.name, "MasterLabel": self.label,
                "SobjectType": self.object, "IsActive": self.active}

    def to_json(self) -> dict[str, Any]:
        """JSON form for the control API."""
        return {"id": self.id, "object": self.object, "fields": self.fields,
                "action": self.action, "name": self.name, "label": self.label,
                "active": self.active}


def allow_save_from(headers: Mapping[str, str]) -> bool:
    """``allowSave=true`` in ``Sforce-Duplicate-Rule-Header`` (fields ``;``-separated)."""
    for part in (headers.get(HEADER) or "").split(";"):
        name, _, value = part.partition("=")
        if name.strip().lower() == "allowsave":
            return value.strip().lower() == "true"
    return False


@contextmanager
def request_options(headers: Mapping[str, str]) -> Iterator[None]:
    """Apply one request's duplicate-rule header to the writes made while handling it."""
    token = _allow_save.set(allow_save_from(headers))
    try:
        yield
    finally:
        _allow_save.reset(token)


def check(rules: list[DuplicateRule], obj: str, rec: Mapping[str, Any], own_id: str | None,
          candidates: Iterator[Mapping[str, Any]] | Any) -> None:
    """Raise DUPLICATES_DETECTED when an active rule on ``obj`` matches another live record."""
    active = [r for r in rules if r.active and r.object.lower() == obj.lower()]
    if not active:
        return
    others = [c for c in candidates if c.get("Id") != own_id]
    for rule in active:
        key = rule.key(rec)
        if key is None:
            continue
        matches = [c["Id"] for c in others if rule.key(c) == key]
        if not matches:
            continue
        if rule.action == "allow" and _allow_save.get():
            continue
        raise SfError.of([_error(rule, obj, matches)])


def _error(rule: DuplicateRule, obj: str, matches: list[str]) -> ErrorItem:
    result = {
        "allowSave": rule.action == "allow",
        "duplicateRule": rule.name,
        "duplicateRuleEntityType": obj,
        "errorMessage": MESSAGE,
        "matchResults": [{
            "entityType": obj,
            "errors": [],
            "matchEngine": "ExactMatchEngine",
            "matchRecords": [{
                "additionalInformation": [],
                "fieldDiffs": [],
                "matchConfidence": 100.0,
                "record": {"attributes": {"type": obj}, "Id": rid},
            } for rid in matches],
            "rule": f"{rule.name}_Match_Rule",
            "size": len(matches),
            "success": True,
        }],
    }
    return ErrorItem("DUPLICATES_DETECTED", MESSAGE, [], extra={"duplicateResult": result})
