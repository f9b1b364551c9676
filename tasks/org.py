"""What the Salesforce org looks like (field lengths, Person Accounts, multi-currency).

Read from describe once and cached on disk for a day, so that syncing one order still costs one
API call.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

from tasks.mapping import ACCOUNT, CONTACT, OPPORTUNITY, OrgSchema

DESCRIBED = (ACCOUNT, CONTACT, OPPORTUNITY)
MAX_AGE_SECONDS = 24 * 3600


class Describes(Protocol):
    def describe(self, sobject: str) -> dict[str, Any]: ...


def load_org_schema(
    gateway: Describes, cache: Path | None, *, max_age: float = MAX_AGE_SECONDS
) -> OrgSchema:
    """The org schema from the cache when fresh, else from describe (then cached)."""
    describes = _read_cache(cache, max_age)
    if describes is None:
        describes = {name: _slim(gateway.describe(name)) for name in DESCRIBED}
        _write_cache(cache, describes)
    return OrgSchema.from_describe(describes)


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
