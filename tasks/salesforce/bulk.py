"""Bulk API 2.0 through simple-salesforce: one ingest job (results joined back by key) and a
streamed query. Called by the gateway with its ``call`` (re-login once, classification)."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from tasks.salesforce.errors import classify_exception
from tasks.salesforce.port import RecordResult
from tasks.salesforce.results import bulk_results, csv_row

T = TypeVar("T")
Call = Callable[[Callable[[Salesforce], Any]], Any]


def ingest(
    call: Call,
    sobject: str,
    operation: str,
    key_field: str,
    records: Sequence[Mapping[str, Any]],
    wait: int,
) -> list[RecordResult]:
    """Run one ingest job (``upsert`` by ``key_field``, ``insert``, ``update`` by Id); every
    record's result, matched back by ``key_field``."""
    rows = [csv_row(r) for r in records]
    extra = {"external_id_field": key_field} if operation == "upsert" else {}
    jobs = call(
        lambda sf: getattr(getattr(sf.bulk2, sobject), operation)(records=rows, wait=wait, **extra)
    )
    results: list[RecordResult] = []
    for job in jobs:
        job_id = job["job_id"]
        # mypy cannot infer a lambda with a bound default (the job id of this turn): misc
        ok = call(
            lambda sf, j=job_id: getattr(sf.bulk2, sobject).get_successful_records(j)  # type: ignore[misc]
        )
        bad = call(
            lambda sf, j=job_id: getattr(sf.bulk2, sobject).get_failed_records(j)  # type: ignore[misc]
        )
        results.extend(bulk_results(ok, bad, key_field))
    return results


def query_rows(call: Call, sobject: str, soql: str) -> Iterator[dict[str, str]]:
    """Stream a query's rows as dicts of strings.

    The job runs while the pages are consumed, so failures are classified here too.
    """
    pages = call(lambda sf: getattr(sf.bulk2, sobject).query(soql, max_records=50_000))
    try:
        for page in pages:
            yield from csv.DictReader(io.StringIO(page))
    except (SalesforceError, requests.RequestException) as exc:
        raise classify_exception(exc) from exc
