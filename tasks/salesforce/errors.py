"""Salesforce failures → the product's error tree. The only place that reads Salesforce errors.

The table is DESIGN.md §3 ("Errors, classified in exactly one place"), grounded in
research/salesforce.md §4 (status codes and StatusCode meanings) and §6 (simple-salesforce's
exception classes).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from tasks.core.errors import (
    AuthError,
    ConfigError,
    InvalidOrder,
    PermanentError,
    RateLimited,
    RecordError,
    RetryableError,
    StaleReference,
    SyncError,
)

# Codes that say "the batch failed because something else failed": never the real reason.
KNOCK_ON_CODES = frozenset({"PROCESSING_HALTED", "ALL_OR_NONE_OPERATION_ROLLED_BACK"})

TRANSIENT_CODES = frozenset(
    {
        "SERVER_UNAVAILABLE",
        "UNABLE_TO_LOCK_ROW",
        "QUERY_TIMEOUT",
        "API_TEMPORARILY_UNAVAILABLE",
        "INSERT_UPDATE_DELETE_NOT_ALLOWED_DURING_MAINTENANCE",
        # Two creators raced on a Unique external id: a retry now matches and updates.
        "DUPLICATE_VALUE",
    }
)
RATE_LIMIT_CODES = frozenset({"REQUEST_LIMIT_EXCEEDED", "TOO_MANY_REQUESTS"})
CONFIG_CODES = frozenset(
    {
        "INVALID_FIELD",
        "INVALID_TYPE",
        "NOT_FOUND",
        "INSUFFICIENT_ACCESS",
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
        "API_DISABLED_FOR_ORG",
        "API_CURRENTLY_DISABLED",
    }
)
AUTH_CODES = frozenset({"INVALID_SESSION_ID", "INVALID_AUTH_HEADER"})
# A record we referred to by Id is in the recycle bin (deleted, or the loser of a merge).
STALE_REFERENCE_CODES = frozenset({"ENTITY_IS_DELETED"})
# Answers that mean the cached describe is out of date (a field was removed or shrunk).
SCHEMA_CODES = frozenset({"INVALID_FIELD", "STRING_TOO_LONG", "INVALID_FIELD_FOR_INSERT_UPDATE"})
# A create-only field (Opportunity.ContactId) sent in a write that updated an existing record.
CREATE_ONLY_REFUSED = "INVALID_FIELD_FOR_INSERT_UPDATE"
# An upsert meant to update created the record instead: the create-only fields it lacked.
REQUIRED_MISSING = "REQUIRED_FIELD_MISSING"
# A validation rule of the org refused the record.
VALIDATION_RULE = "FIELD_CUSTOM_VALIDATION_EXCEPTION"
# What a permanent record error says went wrong, for the operator's next step (the dead-letter
# board words the advice; this table says which cause a code is).
CAUSES = {
    VALIDATION_RULE: "validation_rule",
    REQUIRED_MISSING: "required_field",
    "INVALID_FIELD": "unknown_field",
    "DUPLICATES_DETECTED": "duplicate_rule",
    "STRING_TOO_LONG": "too_long",
}


def record_errors(body: Any) -> list[RecordError]:
    """Salesforce error objects (``errorCode`` in REST, ``statusCode`` in collections)."""
    if isinstance(body, Mapping):
        body = body.get("errors") or [body]
    if not isinstance(body, Sequence) or isinstance(body, str | bytes):
        return []
    found = []
    for item in body:
        if not isinstance(item, Mapping):
            continue
        code = str(item.get("errorCode") or item.get("statusCode") or "UNKNOWN_ERROR")
        found.append(
            RecordError(
                code=code,
                message=str(item.get("message", "")) + _duplicate_detail(item),
                fields=[str(f) for f in item.get("fields") or []],
            )
        )
    return found


def _duplicate_detail(item: Mapping[str, Any]) -> str:
    """DUPLICATES_DETECTED names its rule and the records it matched (``duplicateResult``)."""
    result = item.get("duplicateResult")
    if not isinstance(result, Mapping):
        return ""
    ids = [
        str((match.get("record") or {}).get("Id"))
        for group in result.get("matchResults") or []
        for match in group.get("matchRecords") or []
    ]
    kind = "alert" if result.get("allowSave") else "block"
    return f" (duplicate rule {result.get('duplicateRule')} ({kind}); matches {', '.join(ids)})"


def first_cause(errors: Iterable[RecordError]) -> RecordError | None:
    """The first error that is a reason of its own, not a knock-on of another failure."""
    errors = list(errors)
    for error in errors:
        if error.code not in KNOCK_ON_CODES:
            return error
    return errors[0] if errors else None


def classify(status: int, body: Any, *, retry_after: float | None = None) -> SyncError:
    """Classify one Salesforce response (top-level or a composite subresponse).

    The error carries Salesforce's whole error list in ``errors``.
    """
    errors = record_errors(body)
    error = _classify(status, body, errors, retry_after)
    error.errors = errors
    return error


def classify_record(errors: Iterable[RecordError], *, stage: str | None = None) -> SyncError:
    """Classify one record's failure in a sObject Collections (or Bulk) result.

    Collections answer HTTP 200 with ``success: false`` and the record's ``errors``
    (``statusCode``, ``message``, ``fields``); the codes mean what they mean anywhere else
    (a lock is transient, a validation rule permanent, ``ENTITY_IS_DELETED`` a stale reference).
    The error keeps every error Salesforce reported for the record, each tagged with ``stage``.
    """
    found = list(errors) or [
        RecordError("UNKNOWN_ERROR", "Salesforce reported a failure without a reason")
    ]
    found = [replace(e, stage=stage or e.stage) for e in found]
    error = _classify(400, [e.as_dict() for e in found], found, None)
    error.errors = found
    error.stage = stage
    return error


def _classify(
    status: int, body: Any, errors: list[RecordError], retry_after: float | None
) -> SyncError:
    cause = first_cause(errors)
    code = cause.code if cause else None
    message = cause.message if cause else _short(body)
    fields = cause.fields if cause else []
    if code in AUTH_CODES or status == 401:
        return AuthError(message or "Salesforce rejected the session", code=code or "HTTP_401")
    if code in RATE_LIMIT_CODES or status == 429:
        # The org's limit, not this order's: the run stops at once (DESIGN §3).
        return RateLimited(message, retry_after=retry_after, code=code or "HTTP_429", stop_run=True)
    if code in TRANSIENT_CODES or status >= 500:
        return RetryableError(message, code=code or f"HTTP_{status}", fields=fields)
    if code in STALE_REFERENCE_CODES:
        return StaleReference(message, code=code, fields=fields)
    if status == 300:
        return PermanentError(
            "several Salesforce records share this external id; merge them, then make the "
            "field Unique",
            code="MULTIPLE_RECORDS",
        )
    if code in CONFIG_CODES or status == 404:
        return ConfigError(message, code=code or f"HTTP_{status}", fields=fields)
    if status == 403:
        return ConfigError(message, code=code or "HTTP_403", fields=fields)
    return InvalidOrder(message, code=code or f"HTTP_{status}", fields=fields)


def cause_of(code: str | None) -> str | None:
    """What a Salesforce error code (as a dead letter keeps it) says went wrong:
    ``validation_rule``, ``required_field``, ``unknown_field``, ``duplicate_rule``,
    ``too_long``; None for a code without a cause of its own."""
    return CAUSES.get(code or "")


def knock_on(code: str | None) -> bool:
    """The record failed only because another one in the same request did."""
    return code in KNOCK_ON_CODES


def schema_outdated(error: SyncError) -> bool:
    """Salesforce says the cached org schema (describe) no longer fits the org."""
    return error.code in SCHEMA_CODES


def refused_create_only_field(error: SyncError, field: str) -> bool:
    """Salesforce refused the create-only ``field`` because the record already exists (or
    named no field at all)."""
    return error.code == CREATE_ONLY_REFUSED and (not error.fields or field in error.fields)


def required_fields_missing(error: SyncError) -> bool:
    """Salesforce wanted fields the write did not send (``error.fields``): an update-only body
    created the record."""
    return error.code == REQUIRED_MISSING


def refused_by_validation_rule(error: BaseException) -> bool:
    """A validation rule of the org refused the record."""
    return isinstance(error, SyncError) and error.code == VALIDATION_RULE


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify_exception(exc: BaseException, *, retry_after: float | None = None) -> SyncError:
    """Classify whatever simple-salesforce or requests raised (``retry_after`` from headers)."""
    # Imported here: the rest of this module is pure, and the interface (``port``) uses it.
    import requests
    from simple_salesforce.exceptions import SalesforceError

    if isinstance(exc, SyncError):
        return exc
    if isinstance(exc, SalesforceError):
        return classify(int(exc.status), exc.content, retry_after=retry_after)
    if isinstance(exc, requests.Timeout):
        return RetryableError(f"Salesforce did not answer in time: {exc}", code="TIMEOUT")
    if isinstance(exc, requests.ConnectionError):
        return RetryableError(f"could not reach Salesforce: {exc}", code="CONNECTION_ERROR")
    if isinstance(exc, requests.RequestException):
        return RetryableError(f"request to Salesforce failed: {exc}", code="REQUEST_ERROR")
    raise exc


def _short(body: Any, limit: int = 300) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text if len(text) <= limit else text[:limit] + "…"
