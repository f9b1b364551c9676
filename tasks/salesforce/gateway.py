"""The Salesforce adapter: simple-salesforce over a requests session, and nothing clever.

It implements :class:`tasks.salesforce.port.SalesforcePort`: it chooses how to ask (composite,
sObject Collections or Bulk 2.0; SOQL or a Bulk query), moves bytes and classifies failures
(through ``tasks.salesforce.errors``); it does not retry (Prefect does), except for the one
re-authentication after a 401 that DESIGN.md §3 asks for.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any, TypeVar, cast
from urllib.parse import quote_plus

import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceError

from tasks.core.adoption import contacts_by_email
from tasks.core.errors import AuthError, BudgetExhausted, RateLimited, SyncError
from tasks.salesforce import bulk, queries
from tasks.salesforce.auth import AccessToken, fetch_token
from tasks.salesforce.composite import (
    OrderWrite,
    OrderWriteResult,
    build_composite,
    dumps,
    parse_composite,
)
from tasks.salesforce.config import SalesforceConfig
from tasks.salesforce.errors import classify, classify_exception, retry_after_seconds
from tasks.salesforce.http import build_session, parse_limit_info, usage_from_limits
from tasks.salesforce.port import (
    EMAILS_BY_SOQL_MAX,
    RECORDS_BY_COLLECTIONS_MAX,
    ApiUsage,
    BatchLookups,
    IdsByKey,
    KeyLookup,
    RecordResult,
    Row,
    WriteKind,
    read_path,
)
from tasks.salesforce.results import collection_results

T = TypeVar("T")
COLLECTION_SIZE = 200  # research §2: sObject Collections take up to 200 records per call
DUPLICATE_RULE_HEADER = "Sforce-Duplicate-Rule-Header"
COMPOSITE_QUERIES = 5  # research §2: at most 5 of a composite's subrequests may be queries
JSON = {"Content-Type": "application/json; charset=UTF-8"}


class SimpleSalesforceGateway:
    """The one real adapter behind :class:`~tasks.salesforce.port.SalesforcePort`."""

    def __init__(self, config: SalesforceConfig):
        self.config = config
        self.api_version = config.api_version
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
                login = build_session(self.config.timeout_seconds, self.config.login_url)
                try:
                    self._token = fetch_token(self.config, login)
                except AuthError as exc:
                    self._halt(exc)  # one refused login is enough: nobody asks again
                    raise
                session = build_session(self.config.timeout_seconds, self._token.instance_url)
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

    def _rest(self, path: str, body: Any, method: str = "POST", **headers: str) -> Any:
        data = dumps(body).encode()
        return self._call(
            lambda sf: sf.restful(path, method=method, data=data, headers={**JSON, **headers})
        )

    # -- usage and budget --------------------------------------------------------------------

    def usage(self, *, refresh: bool = False) -> ApiUsage | None:
        """Usage as of the last response that reported it; ``refresh`` reads ``/limits``."""
        if refresh:
            self._usage = usage_from_limits(self._limits()) or self._usage
        return self._usage

    def check_budget(self) -> None:
        """Refuse to write once usage reaches the configured reserve (DESIGN §3 governor).

        Before this gateway has seen any usage (the first write of a run), it reads ``/limits``
        first, so the governor is never blind.
        """
        usage = self._usage if self._usage is not None else self.usage(refresh=True)
        if usage is None or usage.limit <= 0:
            return
        threshold = int(usage.limit * self.config.api_reserve_percent / 100)
        if usage.used >= threshold:
            raise BudgetExhausted(usage.used, usage.limit, threshold)

    @property
    def write_headers(self) -> dict[str, str]:
        """Headers every write carries: the duplicate-rule header when configured (API 52.0+)."""
        if not self.config.duplicate_rule_allow_save:
            return {}
        return {DUPLICATE_RULE_HEADER: "allowSave=true"}

    # -- reads -------------------------------------------------------------------------------

    def describe(self, sobject: str) -> dict[str, Any]:
        """The describe of one object."""
        return self._call(
            lambda sf: cast("dict[str, Any]", sf.restful(f"sobjects/{sobject}/describe"))
        )

    def person_record_types(self) -> list[Row]:
        """The active Person Account record types."""
        return self._query(queries.PERSON_RECORD_TYPES)

    def duplicate_rules(self) -> list[Row]:
        """The active duplicate rules (needs View Setup and Configuration)."""
        return self._query(queries.ACTIVE_DUPLICATE_RULES)

    def merged_into(self, sobject: str, record_id: str) -> str | None:
        """The record a merge kept in place of ``record_id`` (its ``MasterRecordId``, read with
        queryAll, which includes deleted records), else None (deleted without a merge)."""
        soql = queries.merged_into(sobject, record_id)
        rows = self._call(lambda sf: list(sf.query_all_iter(soql, include_deleted=True)))
        return next((str(r["MasterRecordId"]) for r in rows if r.get("MasterRecordId")), None)

    def records(
        self,
        sobject: str,
        key_field: str,
        fields: Sequence[str],
        *,
        keys: Sequence[str] = (),
        closing: tuple[date, date] | None = None,
    ) -> Iterator[Row]:
        """Records by external id (plus, with ``closing``, those keyed closing in the range):
        SOQL ``IN`` chunks of 300 keys up to ``KEYS_BY_SOQL_MAX`` keys, one Bulk 2.0 query of
        every keyed record above (filtered here)."""
        selected = list(fields) if key_field in fields else [key_field, *fields]
        if read_path(len(keys)) == "soql":
            if keys:
                yield from self._records_by_keys(sobject, key_field, keys, fields)
            if closing is not None:
                first, last = closing
                yield from self._query(
                    queries.keyed_closing_between(sobject, key_field, selected, first, last)
                )
            return
        wanted = set(keys)
        lo, hi = (closing[0].isoformat(), closing[1].isoformat()) if closing else ("~", "")
        soql = queries.keyed_records(sobject, key_field, selected)
        for row in self._bulk_query(sobject, soql):
            if row.get(key_field) in wanted or lo <= (row.get("CloseDate") or "") <= hi:
                yield row

    def records_by_ids(
        self, sobject: str, ids: Sequence[str], fields: Sequence[str]
    ) -> Iterator[Row]:
        """Records by Id: SOQL ``IN`` chunks of 300 Ids bundled five to a ``/composite`` call
        (one call for up to 1,500 Ids); none when no Id is asked for."""
        wanted = list(dict.fromkeys(ids))
        soqls = queries.records_by_keys_chunked(sobject, "Id", wanted, fields)
        for rows in self._query_many(soqls):
            yield from rows

    def contacts_by_emails(self, emails: Sequence[str], key_field: str) -> dict[str, list[Row]]:
        """Contacts by lower-cased e-mail, oldest first: SOQL ``IN`` chunks of 100 e-mails up
        to ``EMAILS_BY_SOQL_MAX``, one Bulk 2.0 query of every Contact with an e-mail above."""
        if len(emails) <= EMAILS_BY_SOQL_MAX:
            return self._contacts_by_soql(emails, key_field)
        rows = self._bulk_query("Contact", queries.contacts_with_email(key_field))
        return {e: [dict(r) for r in group] for e, group in contacts_by_email(rows, emails).items()}

    def lookups_for(
        self,
        emails: Sequence[str],
        contact_key_field: str,
        sobject: str,
        key_field: str,
        keys: Sequence[str],
        *,
        parents: Sequence[KeyLookup] = (),
    ) -> BatchLookups:
        """A batch's lookups in as few calls as can be: the Contacts with these e-mails (as
        :meth:`contacts_by_emails`), the Ids of the ``sobject`` records whose external id is in
        ``keys`` (None: not in Salesforce) and, per object, those of ``parents`` (Accounts and
        Contacts by key); all their queries bundled five to a ``/composite`` call."""
        found: dict[str, list[Row]] = {email.lower(): [] for email in emails}
        email_soqls = queries.contacts_by_emails_chunked(list(found), contact_key_field)
        lookups = [KeyLookup(sobject, key_field, keys), *parents]
        key_soqls = [_key_queries(lookup) for lookup in lookups]
        answers = self._query_many(email_soqls + [soql for group in key_soqls for soql in group])
        for rows in answers[: len(email_soqls)]:
            for contact in rows:
                found.setdefault(str(contact.get("Email") or "").lower(), []).append(contact)
        ids = _ids_by_key(lookups, key_soqls, answers[len(email_soqls) :])
        return BatchLookups(found, ids.pop(0), _by_object(lookups[1:], ids))

    def ids_by_keys(self, lookups: Sequence[KeyLookup]) -> IdsByKey:
        """Per object, the Id of each record whose external id is asked for (None: not in
        Salesforce): SOQL ``IN`` chunks of 300 keys bundled five to a ``/composite`` call (one
        call for up to 1,500 keys); none when no key is asked for."""
        key_soqls = [_key_queries(lookup) for lookup in lookups]
        answers = self._query_many([soql for group in key_soqls for soql in group])
        return _by_object(lookups, _ids_by_key(lookups, key_soqls, answers))

    def _query_many(self, soqls: Sequence[str]) -> list[list[Row]]:
        """Several SOQL queries, five per ``/composite`` call (research §2: up to 25
        subrequests, at most 5 of them queries, count as ONE API call); each query's records,
        in order, following ``nextRecordsUrl`` when a result is paged."""
        answers: list[list[Row]] = []
        base = f"/services/data/v{self.api_version}/query?q="
        for start in range(0, len(soqls), COMPOSITE_QUERIES):
            group = soqls[start : start + COMPOSITE_QUERIES]
            subrequests = [
                {"method": "GET", "url": base + quote_plus(soql), "referenceId": f"q{n}"}
                for n, soql in enumerate(group)
            ]
            body = {"allOrNone": False, "compositeRequest": subrequests}
            response = self._rest("composite", body)
            subs = {
                str(r.get("referenceId")): r for r in (response or {}).get("compositeResponse", [])
            }
            for n in range(len(group)):
                answers.append(self._query_answer(subs.get(f"q{n}") or {}))
        return answers

    def _query_answer(self, sub: Mapping[str, Any]) -> list[Row]:
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

    def _limits(self) -> dict[str, Any]:
        return self._call(lambda sf: cast("dict[str, Any]", sf.restful("limits")))

    def _query(self, soql: str) -> list[Row]:
        """Every record of a SOQL query, following ``nextRecordsUrl``."""
        return self._call(lambda sf: list(sf.query_all_iter(soql)))

    def _bulk_query(self, sobject: str, soql: str) -> Iterator[dict[str, str]]:
        return bulk.query_rows(self._call, sobject, soql)

    def _contacts_by_soql(self, emails: Sequence[str], key_field: str) -> dict[str, list[Row]]:
        found: dict[str, list[Row]] = {email.lower(): [] for email in emails}
        for soql in queries.contacts_by_emails_chunked(list(found), key_field):
            for contact in self._query(soql):
                found.setdefault(str(contact.get("Email") or "").lower(), []).append(contact)
        return found

    def _records_by_keys(
        self, sobject: str, key_field: str, keys: Sequence[str], fields: Sequence[str]
    ) -> list[Row]:
        soqls = queries.records_by_keys_chunked(sobject, key_field, list(keys), fields)
        return [row for soql in soqls for row in self._query(soql)]

    # -- writes ------------------------------------------------------------------------------

    def write_order(self, write: OrderWrite) -> OrderWriteResult:
        """Upsert one order's Account, Contact and Opportunity in one API call."""
        self.check_budget()
        body = build_composite(write, self.api_version, self.write_headers)
        return parse_composite(self._rest("composite", body) or {}, write)

    def save_many(
        self,
        sobject: str,
        key_field: str,
        records: Sequence[Mapping[str, Any]],
        *,
        kind: WriteKind = "upsert",
    ) -> list[RecordResult]:
        """sObject Collections (200 records a call) up to ``RECORDS_BY_COLLECTIONS_MAX``
        records, one Bulk 2.0 ingest job above. ``update`` goes by ``Id``."""
        if not records:
            return []
        key_field = "Id" if kind == "update" else key_field
        if len(records) <= RECORDS_BY_COLLECTIONS_MAX:
            return self._collections(sobject, key_field, records, kind)
        return self._bulk_ingest(sobject, kind, key_field, records, wait=1)

    def delete(self, sobject: str, record_id: str) -> None:
        """Delete one record by Id (to the recycle bin); used by ``shopsync smoke`` only."""
        self.check_budget()
        self._call(lambda sf: sf.restful(f"sobjects/{sobject}/{record_id}", method="DELETE"))

    def _collections(
        self, sobject: str, key_field: str, records: Sequence[Mapping[str, Any]], kind: WriteKind
    ) -> list[RecordResult]:
        path = f"composite/sobjects/{sobject}/{key_field}" if kind == "upsert" else None
        method = "POST" if kind == "insert" else "PATCH"
        results: list[RecordResult] = []
        for start in range(0, len(records), COLLECTION_SIZE):
            chunk = records[start : start + COLLECTION_SIZE]
            self.check_budget()
            body = {
                "allOrNone": False,
                "records": [{"attributes": {"type": sobject}, **r} for r in chunk],
            }
            answer = self._rest(path or "composite/sobjects", body, method, **self.write_headers)
            results.extend(collection_results(chunk, key_field, answer or []))
        return results

    def _bulk_ingest(
        self,
        sobject: str,
        operation: str,
        key_field: str,
        records: Sequence[Mapping[str, Any]],
        wait: int,
    ) -> list[RecordResult]:
        # A job is many calls and runs for a while: read the usage fresh from /limits first.
        self.usage(refresh=True)
        self.check_budget()
        return bulk.ingest(self._call, sobject, operation, key_field, records, wait)


def _key_queries(lookup: KeyLookup) -> list[str]:
    """The SOQL ``IN`` chunks asking for one lookup's Ids (none for no key)."""
    keys = list(dict.fromkeys(lookup.keys))
    return queries.records_by_keys_chunked(lookup.sobject, lookup.key_field, keys, ["Id"])


def _ids_by_key(
    lookups: Sequence[KeyLookup], soqls: Sequence[Sequence[str]], answers: Sequence[list[Row]]
) -> list[dict[str, str | None]]:
    """Each lookup's key → Id (None: not found), from its queries' answers, in order."""
    found: list[dict[str, str | None]] = []
    position = 0
    for lookup, group in zip(lookups, soqls, strict=True):
        ids: dict[str, str | None] = dict.fromkeys(lookup.keys)
        for rows in answers[position : position + len(group)]:
            for row in rows:
                ids[str(row.get(lookup.key_field))] = str(row["Id"])
        position += len(group)
        found.append(ids)
    return found


def _by_object(lookups: Sequence[KeyLookup], ids: Sequence[dict[str, str | None]]) -> IdsByKey:
    by_object: IdsByKey = {}
    for lookup, found in zip(lookups, ids, strict=True):
        by_object.setdefault(lookup.sobject, {}).update(found)
    return by_object
