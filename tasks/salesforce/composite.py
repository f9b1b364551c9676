"""The one-call order write: a ``/composite`` request with three dependent upserts.

Pure functions: they build the request body and read the response, nothing else.
research/salesforce.md §2: up to 25 subrequests count as ONE API call; ``allOrNone`` rolls the
whole series back; ``collateSubrequests: false`` keeps the Account → Contact → Opportunity order;
a later subrequest refers to an earlier one's new id as ``@{ref.id}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any
from urllib.parse import quote

from tasks.core.errors import RecordError, SyncError
from tasks.core.mapping import dumps_json
from tasks.salesforce.errors import classify, knock_on

REF_ACCOUNT = "refAccount"
REF_CONTACT = "refContact"
REF_OPPORTUNITY = "refOpportunity"
STAGE_BY_REF = {REF_ACCOUNT: "account", REF_CONTACT: "contact", REF_OPPORTUNITY: "opportunity"}


class ContactWrite(Enum):
    """How the Contact subrequest finds its record."""

    UPSERT_BY_KEY = "upsert"  # PATCH …/Contact/<external id field>/<customer id>
    UPDATE_BY_ID = "update"  # PATCH …/Contact/<Id>: adopting an existing Contact, or a guest's
    CREATE = "create"  # POST …/Contact: a guest seen for the first time


@dataclass(frozen=True, slots=True)
class OrderWrite:
    """Everything the composite needs for one order, already mapped and filtered."""

    account_field: str
    account_key: str
    account: Mapping[str, Any]
    opportunity_field: str
    order_key: str
    opportunity: Mapping[str, Any]
    # A known Account is written by its cached Id (stamping our key), so that a user's delete or
    # merge answers ENTITY_IS_DELETED instead of the upsert silently creating a new Account.
    account_id: str | None = None
    contact: Mapping[str, Any] | None = None
    contact_field: str | None = None
    contact_key: str | None = None
    contact_write: ContactWrite = ContactWrite.UPSERT_BY_KEY
    contact_id: str | None = None
    link_contact_to_opportunity: bool = True
    # Contact.AccountId is create-only by default: an existing (or adopted) Contact keeps its
    # Account; the Opportunity still links to the order's Account.
    contact_account: bool = True


@dataclass(frozen=True, slots=True)
class OrderWriteResult:
    """Record ids and whether each was created by this call."""

    account_id: str
    contact_id: str | None
    opportunity_id: str
    created: dict[str, bool]


def build_composite(
    write: OrderWrite, api_version: str, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The ``/composite`` request body for one order.

    ``headers`` go on every subrequest (``httpHeaders``: the documented place for a subrequest's
    headers, e.g. ``Sforce-Duplicate-Rule-Header``).
    """
    base = f"/services/data/v{api_version}/sobjects"
    requests = [_account_sub(write, base)]
    if write.contact is not None:
        requests.append(_contact_sub(write, base))
    opportunity = dict(_without(write.opportunity, write.opportunity_field))
    opportunity["AccountId"] = _account_ref(write)
    if write.contact is not None and write.link_contact_to_opportunity:
        # A PATCH by Id answers 204 without a body, so there is no @{refContact.id} to refer to.
        by_id = write.contact_write is ContactWrite.UPDATE_BY_ID
        opportunity["ContactId"] = write.contact_id if by_id else f"@{{{REF_CONTACT}.id}}"
    requests.append(
        _sub(
            "PATCH",
            f"{base}/Opportunity/{write.opportunity_field}/{_path(write.order_key)}",
            REF_OPPORTUNITY,
            opportunity,
        )
    )
    if headers:
        requests = [{**sub, "httpHeaders": dict(headers)} for sub in requests]
    return {"allOrNone": True, "collateSubrequests": False, "compositeRequest": requests}


def _account_sub(write: OrderWrite, base: str) -> dict[str, Any]:
    if write.account_id is None:
        url = f"{base}/Account/{write.account_field}/{_path(write.account_key)}"
        return _sub("PATCH", url, REF_ACCOUNT, _without(write.account, write.account_field))
    body = {**write.account, write.account_field: write.account_key}
    return _sub("PATCH", f"{base}/Account/{write.account_id}", REF_ACCOUNT, body)


def _account_ref(write: OrderWrite) -> str:
    # A PATCH by Id answers 204 without a body, so there is no @{refAccount.id} to refer to.
    return write.account_id or f"@{{{REF_ACCOUNT}.id}}"


def _contact_sub(write: OrderWrite, base: str) -> dict[str, Any]:
    body = dict(write.contact or {})
    if write.contact_account:
        body["AccountId"] = _account_ref(write)
    if write.contact_write is ContactWrite.UPSERT_BY_KEY:
        field = str(write.contact_field)
        url = f"{base}/Contact/{field}/{_path(str(write.contact_key))}"
        return _sub("PATCH", url, REF_CONTACT, _without(body, field))
    if write.contact_write is ContactWrite.UPDATE_BY_ID:
        if write.contact_key is not None and write.contact_field:
            body[write.contact_field] = write.contact_key  # adopt: stamp our external id
        return _sub("PATCH", f"{base}/Contact/{write.contact_id}", REF_CONTACT, body)
    return _sub("POST", f"{base}/Contact", REF_CONTACT, body)


def _sub(method: str, url: str, ref: str, body: Mapping[str, Any]) -> dict[str, Any]:
    return {"method": method, "url": url, "referenceId": ref, "body": dict(body)}


def _without(body: Mapping[str, Any], field: str) -> dict[str, Any]:
    # research §1: the external id must not be repeated in the body of its own upsert.
    return {k: v for k, v in body.items() if k != field}


def _path(value: str) -> str:
    return quote(value, safe="")


def parse_composite(response: Mapping[str, Any], write: OrderWrite) -> OrderWriteResult:
    """Read a composite response; raise the classified error of the first real failure."""
    subs = {str(r.get("referenceId")): r for r in response.get("compositeResponse", [])}
    failure = _first_failure(subs)
    if failure is not None:
        raise failure
    ids: dict[str, str | None] = {}
    created: dict[str, bool] = {}
    known = {"account": write.account_id, "contact": write.contact_id, "opportunity": None}
    for ref, stage in STAGE_BY_REF.items():
        sub = subs.get(ref)
        if sub is None:
            ids[stage] = known[stage]
            continue
        body = sub.get("body") or {}
        ids[stage] = str(body.get("id") or known[stage] or "") or None
        created[stage] = int(sub.get("httpStatusCode", 0)) == 201
    if not ids["account"] or not ids["opportunity"]:
        raise SyncError("composite response lacks record ids", code="MALFORMED_RESPONSE")
    return OrderWriteResult(
        account_id=str(ids["account"]),
        contact_id=ids["contact"],
        opportunity_id=str(ids["opportunity"]),
        created=created,
    )


def _first_failure(subs: Mapping[str, Mapping[str, Any]]) -> SyncError | None:
    failures = []
    for ref, sub in subs.items():
        status = int(sub.get("httpStatusCode", 0))
        if status < 300:
            continue
        error = classify(status, sub.get("body"))
        error.stage = STAGE_BY_REF.get(ref, ref)
        failures.append(error)
    real = [f for f in failures if not knock_on(f.code)]
    # When every subrequest says "halted", the one that names a reason is the one that failed.
    specific = [f for f in failures if not f.message.startswith("The transaction was rolled back")]
    candidates = real or specific or failures
    if not candidates:
        return None
    chosen = candidates[0]
    chosen.errors = _every_error(failures)
    return chosen


def _every_error(failures: list[SyncError]) -> list[RecordError]:
    """Salesforce's whole error list across the subrequests, each tagged with its record;
    the "rolled back because another one failed" knock-ons only when nothing else was said."""
    tagged = [replace(e, stage=f.stage) for f in failures for e in f.errors]
    causes = [e for e in tagged if not knock_on(e.code)]
    return causes or tagged


def dumps(body: Any) -> str:
    """Serialise a request body; Decimal money becomes an exact JSON number, dates ISO text."""
    return dumps_json(body)
