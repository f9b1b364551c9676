"""Reading per-record results of sObject Collections and Bulk 2.0 writes, and writing Bulk
CSV rows. Pure functions."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tasks.core.errors import RecordError
from tasks.salesforce.errors import record_errors
from tasks.salesforce.port import RecordResult


def collection_results(
    chunk: Sequence[Mapping[str, Any]], key_field: str, answer: Iterable[Mapping[str, Any]]
) -> list[RecordResult]:
    """research §2: collections answer in request order, HTTP 200 even when items failed."""
    results = []
    for record, item in zip(chunk, answer, strict=False):
        results.append(
            RecordResult(
                key=str(record.get(key_field)),
                success=bool(item.get("success")),
                id=item.get("id"),
                created=bool(item.get("created")),
                errors=tuple(record_errors(item.get("errors") or [])),
            )
        )
    return results


def bulk_results(successful_csv: str, failed_csv: str, key_field: str) -> list[RecordResult]:
    """research §3: bulk results are not in input order; join by the external id column."""
    results = []
    for row in csv.DictReader(io.StringIO(successful_csv or "")):
        results.append(
            RecordResult(
                key=row.get(key_field, ""),
                success=True,
                id=row.get("sf__Id") or None,
                created=row.get("sf__Created", "").lower() == "true",
            )
        )
    for row in csv.DictReader(io.StringIO(failed_csv or "")):
        results.append(
            RecordResult(
                key=row.get(key_field, ""),
                success=False,
                errors=(parse_bulk_error(row.get("sf__Error", "")),),
            )
        )
    return results


def parse_bulk_error(text: str) -> RecordError:
    """Bulk 2.0 ``sf__Error`` is ``CODE:message:fields`` (research §3)."""
    code, _, rest = text.partition(":")
    message, _, fields = rest.rpartition(":")
    if not message:
        message, fields = rest, ""
    return RecordError(
        code=code.strip() or "UNKNOWN_ERROR",
        message=message.strip(),
        fields=[f for f in fields.split(",") if f and f != "--"],
    )


def csv_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A Bulk API CSV row: nested parent references become ``Rel.ExternalId__c`` columns and
    ``None`` becomes ``#N/A`` (research §3: how a CSV row nulls a field)."""
    row: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, Mapping):
            for inner, inner_value in value.items():
                if inner != "attributes":
                    row[f"{name}.{inner}"] = _csv_value(inner_value)
        else:
            row[name] = _csv_value(value)
    return row


def _csv_value(value: Any) -> Any:
    return "#N/A" if value is None else value
