"""The Salesforce adapter: simple-salesforce over a requests session, and nothing clever.

It moves bytes and classifies failures (through ``tasks.salesforce.errors``); it does not retry
(Prefect does), except for the one re-authentication after a 401 that DESIGN.md §3 asks for.
"""

from __future__ import annotations

import csv
import io
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import quote_plus, urlparse

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError
from urllib3.util.retry import Retry

from tasks.core.errors import AuthError, BudgetExhausted, RateLimited, RecordError, SyncError
from tasks.salesforce import queries
from tasks.salesforce.auth import AccessToken, fetch_token
from tasks.salesforce.composite import (
    OrderWrite,
    OrderWriteResult,
    build_composite,
    dumps,
    parse_composite,
)
from tasks.salesforce.errors import (
    classify,
    classify_exception,
    classify_record,
    record_errors,
    retry_after_seconds,
)
from tasks.settings import Settings

T = TypeVar("T")
COLLECTION_SIZE = 200  # research §2: sObject Collections take up to 200 records per call
SOQL_IN_CHUNK = 300  # research §4: GET URLs cap at 16 KB; 300 quoted ids stay well inside
DUPLICATE_RULE_HEADER = "Sforce-Duplicate-Rule-Header"
COMPOSITE_QUERIES = 5  # research §2: at most 5 of a composite's subrequests may be queries
EMAIL_CHUNK = 100  # e-mails are longer than ids; 100 quoted ones stay well under 16 KB


@dataclass(frozen=True, slots=True)
class ApiUsage:
    """The org's rolling 24-hour API usage, from ``Sforce-Limit-Info``."""

    used: int
    limit: int


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The outcome for one record of a collections or bulk write, matched by external id."""

    key: str
    success: bool
    id: str | None = None
    created: bool = False
    errors: tuple[RecordError, ...] = ()

    @property
    def error(self) -> SyncError | None:
        """The record's failure, classified like every Salesforce answer (None: it succeeded)."""
        return None if self.success else classify_record(self.errors)


class _TimeoutAdapter(HTTPAdapter):
    """Give every request a timeout; simple-salesforce sets none."""

    def __init__(self, timeout: float):
        # A pooled keep-alive connection the server just closed resets an idempotent GET (seen
        # with the Bulk 2.0 poll after its 5 s sleep): re-send GETs, never writes.
        super().__init__(max_retries=Retry(total=2, status=0, allowed_methods={"GET", "HEAD"}))
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


class _PlainHttpAdapter(_TimeoutAdapter):
    """simple-salesforce hard-codes https:// (research §0): speak plain HTTP to a local sandbox."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if request.url and request.url.startswith("https://"):
            request.url = "http://" + request.url[len("https://") :]
        return super().send(request, **kwargs)


def build_session(settings: Settings, instance_url: str | None = None) -> requests.Session:
    """A requests session with timeouts; a plain-HTTP instance gets the https→http adapter."""
    session = requests.Session()
    session.trust_env = False  # no proxy or CA bundle from the environment on our API calls
    timeout = settings.salesforce_timeout_seconds
    session.mount("https://", _TimeoutAdapter(timeout))
    session.mount("http://", _TimeoutAdapter(timeout))
    if instance_url and instance_url.startswith("http://"):
        parsed = urlparse(instance_url)
        session.mount(f"https://{parsed.netloc}", _PlainHttpAdapter(timeout))
    return session


class SimpleSalesforceGateway:
    """The one real adapter behind ``SalesforceGateway``."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.api_version = settings.salesforce_api_version
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._sf: Salesforce | None = None
        self._usage: ApiUsage | None = None
        # Set when Salesforce told us to stop (re-login refused, REQUEST_LIMIT_EXCEEDED): every
        # later call raises it at once, without a request, until ``_halted_until`` (if any).
        self._halted: SyncError | None = None
        self._halted_until: float | None = None
        self._last = threading.local()  # the last response's headers, per thread

    # -- connection --------------------------------------------------------------------------

    def _connect(self) -> Salesforce:
        with self._lock:
            self._raise_if_halted()
            if self._sf is None:
                login = build_session(self.settings, self.settings.salesforce_login_url)
                try:
                    self._token = fetch_token(self.settings, login)
                except AuthError as exc:
                    self._halt(exc)  # one refused login is enough: nobody asks again
                    raise
                session = build_session(self.settings, self._token.instance_url)
                session.hooks["response"].append(self._on_response)
                self._sf = Salesforce(
                    instance_url=self._token.instance_url,
                    session_id=self._token.access_token.get_secret_value(),
                    session=session,
                    version=self.api_version,
                )
            return self._sf

    def _reconnect(self, stale: Salesforce) -> None:
        with self._lock:
            if self._sf is stale:
                self._sf = None

    def _call(self, action: Callable[[Salesforce], T]) -> T:
        """Run one API call; after a 401, log in again once and repeat it once.

        A refused re-login, a second 401 or a rate limit halts the gateway: this call and every
        later one raise at once, so a batch never storms the token endpoint or probes a limit
        order by order.
        """
        for attempt in (1, 2):
            sf = self._connect()
            self._last.headers = {}
            try:
                return action(sf)
            except (SalesforceError, requests.RequestException) as exc:
                error = classify_exception(exc, retry_after=self._retry_after())
                if isinstance(error, AuthError) and attempt == 1:
                    self._reconnect(sf)
                    continue
                if isinstance(error, AuthError | RateLimited):
                    self._halt(error)
                raise error from exc
        raise AssertionError("unreachable")

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        """Every response (errors and Bulk included): remember headers, read the API usage."""
        self._last.headers = response.headers
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info"))
        if usage is not None:
            self._usage = usage

    def _retry_after(self) -> float | None:
        headers = getattr(self._last, "headers", None) or {}
        return retry_after_seconds(headers.get("Retry-After"))

    def _halt(self, error: SyncError) -> None:
        retry_after = error.retry_after if isinstance(error, RateLimited) else None
        self._halted = error
        self._halted_until = time.monotonic() + retry_after if retry_after else None

    def _raise_if_halted(self) -> None:
        halted = self._halted
        if halted is None:
            return
        if self._halted_until is not None and time.monotonic() >= self._halted_until:
            self._halted = self._halted_until = None
            return
        raise halted

    @property
    def api_usage(self) -> ApiUsage | None:
        """Usage as of the last response that reported it (None before the first)."""
        return self._usage

    def refresh_usage(self) -> ApiUsage | None:
        """Read the org's usage from ``/limits`` (``DailyApiRequests``; one API call)."""
        daily = (self.limits() or {}).get("DailyApiRequests") or {}
        if isinstance(daily.get("Max"), int) and isinstance(daily.get("Remaining"), int):
            self._usage = ApiUsage(used=daily["Max"] - daily["Remaining"], limit=daily["Max"])
        return self._usage

    def check_budget(self) -> None:
        """Refuse to write once usage reaches the configured reserve (DESIGN §3 governor).

        Before this gateway has seen any usage (the first write of a run), it reads ``/limits``
        first, so the governor is never blind.
        """
        usage = self._usage if self._usage is not None else self.refresh_usage()
        if usage is None or usage.limit <= 0:
            return
        threshold = int(usage.limit * self.settings.salesforce_api_reserve_percent / 100)
        if usage.used >= threshold:
            raise BudgetExhausted(usage.used, usage.limit, threshold)

    @property
    def write_headers(self) -> dict[str, str]:
        """Headers every write carries: the duplicate-rule header when configured (API 52.0+)."""
        if not self.settings.salesforce_duplicate_rule_allow_save:
            return {}
        return {DUPLICATE_RULE_HEADER: "allowSave=true"}

    # -- reads -------------------------------------------------------------------------------

    def describe(self, sobject: str) -> dict[str, Any]:
        """The describe of one object."""
        return self._call(
            lambda sf: cast("dict[str, Any]", sf.restful(f"sobjects/{sobject}/describe"))
        )

    def limits(self) -> dict[str, Any]:
        """The org's /limits."""
        return self._call(lambda sf: cast("dict[str, Any]", sf.restful("limits")))

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Every record of a SOQL query, following ``nextRecordsUrl``."""
        return self._call(lambda sf: list(sf.query_all_iter(soql)))

    def merged_into(self, sobject: str, record_id: str) -> str | None:
        """The record a merge kept in place of ``record_id`` (its ``MasterRecordId``, read with
        queryAll, which includes deleted records), else None (deleted without a merge)."""
        soql = queries.merged_into(sobject, record_id)
        rows = self._call(lambda sf: list(sf.query_all_iter(soql, include_deleted=True)))
        return next((str(r["MasterRecordId"]) for r in rows if r.get("MasterRecordId")), None)

    def find_contacts_by_email(self, email: str, key_field: str) -> list[dict[str, Any]]:
        """Contacts with this e-mail, oldest first (the value is escaped, never in a URL path)."""
        return self.query(queries.contacts_by_email(email, key_field))

    def find_contacts_by_emails(
        self, emails: Sequence[str], key_field: str
    ) -> dict[str, list[dict[str, Any]]]:
        """Contacts by lower-cased e-mail (every e-mail asked for is a key), 100 e-mails a query."""
        found: dict[str, list[dict[str, Any]]] = {email.lower(): [] for email in emails}
        for soql in _email_queries(list(found), key_field):
            for contact in self.query(soql):
                found.setdefault(str(contact.get("Email") or "").lower(), []).append(contact)
        return found

    def find_contacts_and_records(
        self,
        emails: Sequence[str],
        contact_key_field: str,
        sobject: str,
        key_field: str,
        keys: Sequence[str],
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str | None]]:
        """Two lookups of a whole batch in as few calls as can be: the Contacts with these
        e-mails (as :meth:`find_contacts_by_emails`) and the Ids of the ``sobject`` records
        whose external id is in ``keys`` (None: not in Salesforce); all their queries bundled
        five to a ``/composite`` call."""
        found: dict[str, list[dict[str, Any]]] = {email.lower(): [] for email in emails}
        email_soqls = _email_queries(list(found), contact_key_field)
        key_soqls = _key_queries(sobject, key_field, list(keys), ["Id"])
        answers = self.query_many(email_soqls + key_soqls)
        for rows in answers[: len(email_soqls)]:
            for contact in rows:
                found.setdefault(str(contact.get("Email") or "").lower(), []).append(contact)
        ids: dict[str, str | None] = dict.fromkeys(keys)
        for rows in answers[len(email_soqls) :]:
            for row in rows:
                ids[str(row.get(key_field))] = str(row["Id"])
        return found, ids

    def records_by_keys(
        self, sobject: str, key_field: str, keys: Sequence[str], fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Records whose external id is in ``keys``, in SOQL ``IN`` chunks of 300."""
        found: list[dict[str, Any]] = []
        for soql in _key_queries(sobject, key_field, list(keys), fields):
            found.extend(self.query(soql))
        return found

    def query_many(self, soqls: Sequence[str]) -> list[list[dict[str, Any]]]:
        """Several SOQL queries, five per ``/composite`` call (research §2: up to 25
        subrequests, at most 5 of them queries, count as ONE API call); each query's records,
        in order, following ``nextRecordsUrl`` when a result is paged."""
        answers: list[list[dict[str, Any]]] = []
        base = f"/services/data/v{self.api_version}/query?q="
        for start in range(0, len(soqls), COMPOSITE_QUERIES):
            group = soqls[start : start + COMPOSITE_QUERIES]
            body = {
                "allOrNone": False,
                "compositeRequest": [
                    {"method": "GET", "url": base + quote_plus(soql), "referenceId": f"q{n}"}
                    for n, soql in enumerate(group)
                ],
            }
            response = self._call(
                lambda sf, body=body: sf.restful(  # type: ignore[misc]
                    "composite",
                    method="POST",
                    data=dumps(body).encode(),
                    headers={"Content-Type": "application/json; charset=UTF-8"},
                )
            )
            subs = {
                str(r.get("referenceId")): r for r in (response or {}).get("compositeResponse", [])
            }
            for n in range(len(group)):
                answers.append(self._query_answer(subs.get(f"q{n}") or {}))
        return answers

    def _query_answer(self, sub: Mapping[str, Any]) -> list[dict[str, Any]]:
        status = int(sub.get("httpStatusCode", 0))
        body = sub.get("body")
        if status >= 300 or not isinstance(body, Mapping):
            error = classify(status or 500, body)
            error.stage = "lookup"
            raise error
        rows = list(body.get("records") or [])
        next_url = body.get("nextRecordsUrl")
        while next_url:
            page = self._call(
                lambda sf, url=next_url: sf.query_more(url, identifier_is_url=True)  # type: ignore[misc]
            )
            rows.extend(page.get("records") or [])
            next_url = None if page.get("done", True) else page.get("nextRecordsUrl")
        return rows

    # -- writes ------------------------------------------------------------------------------

    def write_order(self, write: OrderWrite) -> OrderWriteResult:
        """Upsert one order's Account, Contact and Opportunity in one API call."""
        self.check_budget()
        body = dumps(build_composite(write, self.api_version, self.write_headers))
        response = self._call(
            lambda sf: sf.restful(
                "composite",
                method="POST",
                data=body.encode(),
                headers={"Content-Type": "application/json; charset=UTF-8"},
            )
        )
        return parse_composite(response or {}, write)

    def upsert_collection(
        self, sobject: str, key_field: str, records: Sequence[Mapping[str, Any]]
    ) -> list[RecordResult]:
        """Upsert by external id through sObject Collections, 200 records per call."""
        path = f"composite/sobjects/{sobject}/{key_field}"
        return self._collection_calls(sobject, key_field, records, "PATCH", path)

    def insert_collection(
        self, sobject: str, match_field: str, records: Sequence[Mapping[str, Any]]
    ) -> list[RecordResult]:
        """Create records through sObject Collections (``POST``), 200 per call; each result is
        keyed by the record's ``match_field`` value (unique within ``records``)."""
        return self._collection_calls(sobject, match_field, records, "POST", "composite/sobjects")

    def update_collection(
        self, sobject: str, records: Sequence[Mapping[str, Any]]
    ) -> list[RecordResult]:
        """Update records by ``Id`` through sObject Collections (``PATCH``), 200 per call."""
        return self._collection_calls(sobject, "Id", records, "PATCH", "composite/sobjects")

    def delete(self, sobject: str, record_id: str) -> None:
        """Delete one record by Id (to the recycle bin); used by ``shopsync smoke`` only."""
        self.check_budget()
        self._call(lambda sf: sf.restful(f"sobjects/{sobject}/{record_id}", method="DELETE"))

    def _collection_calls(
        self,
        sobject: str,
        key_field: str,
        records: Sequence[Mapping[str, Any]],
        method: str,
        path: str,
    ) -> list[RecordResult]:
        results: list[RecordResult] = []
        for start in range(0, len(records), COLLECTION_SIZE):
            chunk = records[start : start + COLLECTION_SIZE]
            self.check_budget()
            payload = {
                "allOrNone": False,
                "records": [{"attributes": {"type": sobject}, **r} for r in chunk],
            }
            body = dumps(payload)
            answer = self._call(
                lambda sf, body=body: sf.restful(  # type: ignore[misc]
                    path,
                    method=method,
                    data=body.encode(),
                    headers={
                        "Content-Type": "application/json; charset=UTF-8",
                        **self.write_headers,
                    },
                )
            )
            results.extend(_collection_results(chunk, key_field, answer or []))
        return results

    def bulk_upsert(
        self, sobject: str, key_field: str, records: Sequence[Mapping[str, Any]], *, wait: int = 1
    ) -> list[RecordResult]:
        """Upsert through a Bulk API 2.0 ingest job; results are matched back by external id."""
        return self._bulk_ingest(sobject, "upsert", key_field, records, wait)

    def bulk_insert(
        self, sobject: str, match_field: str, records: Sequence[Mapping[str, Any]], *, wait: int = 1
    ) -> list[RecordResult]:
        """Create through a Bulk API 2.0 ingest job; results are matched back by ``match_field``
        (unique within ``records``: bulk results come back in any order)."""
        return self._bulk_ingest(sobject, "insert", match_field, records, wait)

    def bulk_update(
        self, sobject: str, records: Sequence[Mapping[str, Any]], *, wait: int = 1
    ) -> list[RecordResult]:
        """Update by ``Id`` through a Bulk API 2.0 ingest job."""
        return self._bulk_ingest(sobject, "update", "Id", records, wait)

    def _bulk_ingest(
        self,
        sobject: str,
        operation: str,
        key_field: str,
        records: Sequence[Mapping[str, Any]],
        wait: int,
    ) -> list[RecordResult]:
        # A job is many calls and runs for a while: read the usage fresh from /limits first.
        self.refresh_usage()
        self.check_budget()
        rows = [{k: _csv_value(v) for k, v in r.items()} for r in records]
        extra = {"external_id_field": key_field} if operation == "upsert" else {}
        jobs = self._call(
            lambda sf: getattr(getattr(sf.bulk2, sobject), operation)(
                records=rows, wait=wait, **extra
            )
        )
        results: list[RecordResult] = []
        for job in jobs:
            job_id = job["job_id"]
            # mypy cannot infer a lambda with a bound default (the job id of this turn): misc
            ok = self._call(
                lambda sf, j=job_id: getattr(sf.bulk2, sobject).get_successful_records(j)  # type: ignore[misc]
            )
            bad = self._call(
                lambda sf, j=job_id: getattr(sf.bulk2, sobject).get_failed_records(j)  # type: ignore[misc]
            )
            results.extend(_bulk_results(ok, bad, key_field))
        return results

    def bulk_query(self, sobject: str, soql: str) -> Iterator[dict[str, str]]:
        """Stream a Bulk API 2.0 query's rows as dicts of strings.

        The job runs while the pages are consumed, so failures are classified here too.
        """
        pages = self._call(lambda sf: getattr(sf.bulk2, sobject).query(soql, max_records=50_000))
        try:
            for page in pages:
                yield from csv.DictReader(io.StringIO(page))
        except (SalesforceError, requests.RequestException) as exc:
            raise classify_exception(exc) from exc


_API_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")


def _email_queries(emails: Sequence[str], key_field: str) -> list[str]:
    """SOQL for the Contacts with these e-mails, oldest first, 100 e-mails a query."""
    return [
        queries.contacts_by_emails(emails[start : start + EMAIL_CHUNK], key_field)
        for start in range(0, len(emails), EMAIL_CHUNK)
    ]


def _key_queries(
    sobject: str, key_field: str, keys: Sequence[str], fields: Sequence[str]
) -> list[str]:
    """SOQL for the records whose external id is in ``keys``, 300 keys a query."""
    return [
        queries.records_by_keys(sobject, key_field, keys[start : start + SOQL_IN_CHUNK], fields)
        for start in range(0, len(keys), SOQL_IN_CHUNK)
    ]


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """``Sforce-Limit-Info: api-usage=18/5000; api-bursts=1/750`` → ``ApiUsage(18, 5000)``."""
    match = _API_USAGE.search(header or "")
    return ApiUsage(used=int(match[1]), limit=int(match[2])) if match else None


def _collection_results(
    chunk: Sequence[Mapping[str, Any]], key_field: str, answer: Iterable[Mapping[str, Any]]
) -> list[RecordResult]:
    # research §2: collections answer in request order, HTTP 200 even when items failed.
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


def _bulk_results(successful_csv: str, failed_csv: str, key_field: str) -> list[RecordResult]:
    # research §3: bulk results are not in input order; join by the external id column.
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


def _csv_value(value: Any) -> Any:
    if value is None:
        return "#N/A"  # research §3: how a CSV row nulls a field
    return value
