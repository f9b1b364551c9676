"""What the Salesforce org looks like (field lengths, Person Accounts and their record type,
multi-currency).

Read from describe (and, on Person Account orgs, one RecordType query) once and cached on disk
for a day, so that syncing one order still costs one API call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from tasks.core.errors import ConfigError
from tasks.core.mapping import ACCOUNT, CONTACT, OPPORTUNITY, OrgSchema

DESCRIBED = (ACCOUNT, CONTACT, OPPORTUNITY)
MAX_AGE_SECONDS = 24 * 3600


PERSON_RECORD_TYPES = "PersonRecordTypes"  # cache key beside the describes
DEFAULT_PERSON_RECORD_TYPE = "PersonAccount"  # the DeveloperName Salesforce creates


class Describes(Protocol):
    """The part of :class:`~tasks.salesforce.port.SalesforcePort` the org schema is read with."""

    def describe(self, sobject: str) -> dict[str, Any]: ...

    def person_record_types(self) -> list[dict[str, Any]]: ...


def load_org_schema(
    gateway: Describes,
    cache: Path | None,
    *,
    max_age: float = MAX_AGE_SECONDS,
    person_record_type: str | None = None,
) -> OrgSchema:
    """The org schema from the cache when fresh, else from describe (then cached).

    On a Person Account org it also carries the person record type new Accounts are created
    with: ``person_record_type`` (an Id or DeveloperName) when configured, else the org's
    active one. Raises ``ConfigError`` when there is none to use.
    """
    data = _read_cache(cache, max_age)
    if data is not None and _lacks_record_types(data):
        data = None  # cached before record types were: read the org again
    if data is None:
        data = {name: _slim(gateway.describe(name)) for name in DESCRIBED}
        org = OrgSchema.from_describe(data)
        if org.person_accounts:
            data[PERSON_RECORD_TYPES] = [
                {k: r.get(k) for k in ("Id", "DeveloperName", "Name")}
                for r in gateway.person_record_types()
            ]
        _write_cache(cache, data)
    org = OrgSchema.from_describe({name: data[name] for name in DESCRIBED})
    if not org.person_accounts:
        return org
    record_types = data.get(PERSON_RECORD_TYPES) or []
    chosen = choose_person_record_type(record_types, person_record_type)
    if chosen is None:
        raise ConfigError(
            person_record_type_problem(record_types, person_record_type),
            code="PERSON_RECORD_TYPE_MISSING",
        )
    return replace(org, person_record_type_id=chosen)


def _lacks_record_types(data: Mapping[str, Any]) -> bool:
    described = OrgSchema.from_describe({name: data[name] for name in DESCRIBED})
    return described.person_accounts and PERSON_RECORD_TYPES not in data


def choose_person_record_type(
    record_types: Sequence[Mapping[str, Any]], configured: str | None
) -> str | None:
    """The Id of the person record type to use: the configured one (Id or DeveloperName,
    15- or 18-character Ids alike), else ``PersonAccount``, else the only/first active one."""
    if configured:
        wanted = configured.strip()
        for record in record_types:
            rid = str(record.get("Id") or "")
            if wanted in (record.get("DeveloperName"), rid) or (rid[:15] == wanted[:15] == wanted):
                return rid
        return None
    by_name = {r.get("DeveloperName"): str(r.get("Id")) for r in record_types}
    if DEFAULT_PERSON_RECORD_TYPE in by_name:
        return by_name[DEFAULT_PERSON_RECORD_TYPE]
    return str(record_types[0]["Id"]) if record_types else None


def person_record_type_problem(
    record_types: Sequence[Mapping[str, Any]], configured: str | None
) -> str:
    """Why no person record type can be used, and what to do."""
    names = ", ".join(f"{r.get('DeveloperName')} ({r.get('Id')})" for r in record_types)
    if configured:
        return (
            f"SHOPSYNC_MAPPING__PERSON_ACCOUNT_RECORD_TYPE={configured} is not an active "
            f"Person Account record type of this org (active ones: {names or 'none'})"
        )
    return (
        "Person Accounts are enabled but the org has no active Account record type with "
        "IsPersonType = true: activate one (Setup → Object Manager → Person Account → "
        "Record Types) or set SHOPSYNC_MAPPING__PERSON_ACCOUNT_RECORD_TYPE"
    )


def _slim(describe: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "name",
        "type",
        "length",
        "nillable",
        "createable",
        "updateable",
        "externalId",
        "unique",
        "caseSensitive",
        "picklistValues",
        "idLookup",
    )
    return {
        "name": describe.get("name"),
        "fields": [{k: f.get(k) for k in keep if k in f} for f in describe.get("fields", [])],
    }


def _read_cache(cache: Path | None, max_age: float) -> dict[str, Any] | None:
    if cache is None or not cache.is_file():
        return None
    if time.time() - cache.stat().st_mtime > max_age:
        return None
    try:
        data = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    return data if all(name in data for name in DESCRIBED) else None


def _write_cache(cache: Path | None, describes: dict[str, Any]) -> None:
    if cache is None:
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(describes))
    tmp.replace(cache)


def invalidate(cache: Path | None) -> None:
    """Forget the cached schema (after Salesforce says a field is missing or too long)."""
    if cache is not None:
        cache.unlink(missing_ok=True)
