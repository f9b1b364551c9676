"""The batch drain's pure part: a claimed batch as sObject Collections writes, and back again.

The per-order path (``tasks.sync``) writes one order with one ``/composite`` call. The batch path
writes a whole claimed batch with a few sObject Collections calls (research/salesforce.md §2: up
to 200 records of one object per call, per-record results in request order):

1. each order comes prepared (parsed and mapped once, :mod:`tasks.core.prepared`) and is staged
   (:func:`stage_order`): freshness against the ledger, the skip rules;
2. each order's write is decided exactly as the per-order path decides it
   (``tasks.sync.plan_write``: cached Account by Id, Contact upserted / adopted / created, the
   Opportunity's create-only fields only when it does not exist);
3. the writes become Collections chunks (:func:`account_chunks`, :func:`contact_chunks`,
   :func:`opportunity_chunks`): Accounts deduplicated by key and Contacts by customer, the
   newest order of each winning; Opportunities one per order, linked to the ids their parents'
   calls returned;
4. per-record results become per-order outcomes (:func:`record_outcomes`): a failed record's
   errors are classified by the one Salesforce classifier, and every order behind that record
   fails with it (an order whose Account or Contact failed is not written further).

Nothing here does I/O; ``tasks.batch_drain`` runs the calls.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from state import LedgerRecord
from tasks.core.buyer import Placeholder
from tasks.core.errors import SyncError
from tasks.core.mapping import ACCOUNT, CONTACT, OPPORTUNITY, SalesforceRecords
from tasks.core.orders import Order
from tasks.core.prepared import PreparedOrder, customer_key
from tasks.salesforce.errors import classify_record
from tasks.salesforce.port import ContactWrite, OrderWrite, RecordResult
from tasks.sync import SyncOutcome, freshness

COLLECTION_SIZE = 200  # research §2: sObject Collections take up to 200 records per call

Operation = Literal["upsert", "update", "insert"]
K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StagedOrder:
    """A prepared order the batch writes, with the ledger's word on it."""

    prepared: PreparedOrder
    records: SalesforceRecords
    ledger: LedgerRecord | None

    @property
    def order(self) -> Order:
        """The order as parsed."""
        return self.prepared.order

    @property
    def order_id(self) -> str:
        """Shopify's numeric order id."""
        return self.prepared.order.id

    @property
    def customer(self) -> str:
        """The customer cache's key: the Shopify customer id, or the guest Account key."""
        return customer_key(self.records)


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    """A staged order and the write the per-order rules chose for it."""

    prepared: StagedOrder
    write: OrderWrite

    @property
    def order_id(self) -> str:
        """Shopify's numeric order id."""
        return self.prepared.order_id


@dataclass(frozen=True, slots=True)
class Chunk:
    """One sObject Collections call: up to 200 records of one object, one operation.

    ``owners[i]`` names who ``records[i]`` is written for: an Account key, a customer key or
    an order id. ``key_field`` is the external id of an upsert, ``Id`` for an update, and the
    field an insert's results are matched back by (``Email`` for a guest's new Contact).
    """

    operation: Operation
    sobject: str
    key_field: str
    records: list[dict[str, Any]]
    owners: list[str]

    @property
    def name(self) -> str:
        """The task run's name: ``upsert 200 Opportunity``."""
        return f"{self.operation} {len(self.records)} {self.sobject}"


@dataclass
class Written:
    """What the calls so far produced: parents' ids, and who failed."""

    account_ids: dict[str, str] = field(default_factory=dict)  # Account key → Id
    contact_ids: dict[str, str] = field(default_factory=dict)  # customer key → Contact Id
    account_errors: dict[str, SyncError] = field(default_factory=dict)  # Account key → error
    contact_errors: dict[str, SyncError] = field(default_factory=dict)  # customer key → error


def stage_order(prepared: PreparedOrder, ledger: LedgerRecord | None) -> StagedOrder | SyncOutcome:
    """The prepared order staged for writing, or its outcome when nothing is to be written.

    The same checks as the per-order path, in the same order: a state the ledger already has
    (or a newer one) is ``unchanged`` / ``stale``; a skipped order (``skip_test_orders``) is
    ``skipped``.
    """
    order = prepared.order
    verdict = freshness(order, ledger)
    if verdict is not None:
        return SyncOutcome(order.id, verdict[0], reason=verdict[1])
    if prepared.records is None:
        return SyncOutcome(order.id, "skipped", reason=prepared.skip or "")
    return StagedOrder(prepared, prepared.records, ledger)


def lookups_needed(
    prepared: Iterable[StagedOrder],
    cached: Mapping[str, tuple[str | None, str | None] | None],
) -> tuple[list[str], list[str]]:
    """What to ask Salesforce once for the whole batch: ``(e-mails, order keys)``.

    The e-mails of customers whose Contact the per-order rules would look up (a customer new
    to the cache; a guest whose Contact is not cached), and the Opportunity keys of orders the
    ledger has no Opportunity for (whether they exist decides the create-only fields).
    ``cached`` maps customer key → the customer cache's entry (None: unknown).
    """
    emails: set[str] = set()
    unknown: set[str] = set()
    for item in prepared:
        records = item.records
        if item.ledger is None or item.ledger.opportunity_id is None:
            unknown.add(records.order_key)
        if records.contact is None or not records.contact_lookup_email:
            continue
        entry = cached.get(item.customer)
        if entry is None or (records.contact_key is None and not entry[1]):
            emails.add(records.contact_lookup_email)
    return sorted(emails), sorted(unknown)


def newest_by(items: Iterable[T], key: Callable[[T], K], order: Callable[[T], Order]) -> dict[K, T]:
    """One item per key: the one whose order was updated last (on a tie, the later item)."""
    chosen: dict[K, T] = {}
    for item in items:
        k = key(item)
        held = chosen.get(k)
        if held is None or order(item).updated_at >= order(held).updated_at:
            chosen[k] = item
    return chosen


def real_values(
    planned: Iterable[PlannedOrder],
    key: Callable[[PlannedOrder], str],
    body: Callable[[PlannedOrder], Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Per key, each field's newest value that is no placeholder of redacted buyer data.

    The newest order's body is written for a key; where it has a placeholder and an older
    order of the batch has a real value, the real value is written, as the per-order path
    leaves it (the older order writes the name, the newer one may not overwrite it)."""
    found: dict[str, dict[str, Any]] = {}
    for item in sorted(planned, key=lambda p: _order_of(p).updated_at):
        values = found.setdefault(key(item), {})
        values.update({k: v for k, v in body(item).items() if not isinstance(v, Placeholder)})
    return found


def _with_real(body: Mapping[str, Any], real: Mapping[str, Any]) -> dict[str, Any]:
    return {k: real.get(k, v) if isinstance(v, Placeholder) else v for k, v in body.items()}


def _order_of(item: PlannedOrder) -> Order:
    return item.prepared.order


def account_chunks(planned: Sequence[PlannedOrder], size: int = COLLECTION_SIZE) -> list[Chunk]:
    """The Accounts to write, one per Account key (the newest order's body).

    A cached Account is updated by its Id (our key stamped on it), so a user's delete or merge
    answers ENTITY_IS_DELETED instead of an upsert silently creating a new Account; any other
    is upserted by its external id.
    """
    upserts: list[tuple[str, dict[str, Any]]] = []
    updates: list[tuple[str, dict[str, Any]]] = []
    accounts = newest_by(planned, lambda p: p.write.account_key, _order_of)
    real = real_values(planned, lambda p: p.write.account_key, lambda p: p.write.account)
    for key, item in accounts.items():
        write = item.write
        body = {**_with_real(write.account, real.get(key, {})), write.account_field: key}
        if write.account_id:
            updates.append((key, {"Id": write.account_id, **body}))
        else:
            upserts.append((key, body))
    field_name = planned[0].write.account_field if planned else ""
    return _chunks("upsert", ACCOUNT, field_name, upserts, size) + _chunks(
        "update", ACCOUNT, "Id", updates, size
    )


def contact_chunks(
    planned: Sequence[PlannedOrder], written: Written, size: int = COLLECTION_SIZE
) -> list[Chunk]:
    """The Contacts to write, one per customer (the newest order's body), for customers whose
    Account was written: upserts by key, updates by Id (a cached or adopted Contact; each Id
    written once, later writers only link to it), and creates (a guest seen the first time)."""
    by_operation: dict[Operation, list[tuple[str, dict[str, Any]]]] = {
        "upsert": [],
        "update": [],
        "insert": [],
    }
    updated_ids: set[str] = set()
    customers = newest_by(planned, lambda p: p.prepared.customer, _order_of)
    real = real_values(planned, lambda p: p.prepared.customer, lambda p: p.write.contact or {})
    for customer, item in customers.items():
        write = item.write
        if write.contact is None or write.account_key in written.account_errors:
            continue
        body = _with_real(write.contact, real.get(customer, {}))
        if write.contact_account:
            body["AccountId"] = written.account_ids[write.account_key]
        if write.contact_write is ContactWrite.UPDATE_BY_ID:
            contact_id = str(write.contact_id)
            if contact_id in updated_ids:
                continue  # another customer of this batch writes it; this one links to it
            updated_ids.add(contact_id)
            if write.contact_key is not None and write.contact_field:
                body[write.contact_field] = write.contact_key  # adopt: stamp our external id
            by_operation["update"].append((customer, {"Id": contact_id, **body}))
        elif write.contact_write is ContactWrite.CREATE:
            by_operation["insert"].append((customer, body))
        else:
            body[str(write.contact_field)] = write.contact_key
            by_operation["upsert"].append((customer, body))
    field_name = next((p.write.contact_field for p in planned if p.write.contact_field), "")
    return (
        _chunks("upsert", CONTACT, str(field_name), by_operation["upsert"], size)
        + _chunks("update", CONTACT, "Id", by_operation["update"], size)
        + _chunks("insert", CONTACT, "Email", by_operation["insert"], size)
    )


def opportunity_chunks(
    planned: Sequence[PlannedOrder], written: Written, size: int = COLLECTION_SIZE
) -> tuple[list[Chunk], dict[str, SyncError]]:
    """Every order's Opportunity whose parents were written, linked to their ids; and the
    orders not written because their Account or Contact failed (with that failure)."""
    records: list[tuple[str, dict[str, Any]]] = []
    blocked: dict[str, SyncError] = {}
    for item in planned:
        write = item.write
        failure = parent_failure(item, written)
        if failure is not None:
            blocked[item.order_id] = failure
            continue
        body = {
            **write.opportunity,
            write.opportunity_field: write.order_key,
            "AccountId": written.account_ids[write.account_key],
        }
        if write.contact is not None and write.link_contact_to_opportunity:
            body["ContactId"] = contact_id_of(item, written)
        records.append((item.order_id, body))
    field_name = planned[0].write.opportunity_field if planned else ""
    return _chunks("upsert", OPPORTUNITY, field_name, records, size), blocked


def parent_failure(item: PlannedOrder, written: Written) -> SyncError | None:
    """The failure of the order's Account or Contact write, if either failed."""
    account = written.account_errors.get(item.write.account_key)
    if account is not None:
        return account
    if item.write.contact is None:
        return None
    return written.contact_errors.get(item.prepared.customer)


def contact_id_of(item: PlannedOrder, written: Written) -> str | None:
    """The Contact the order's Opportunity links to: what its customer's write returned, else
    the Id the write named (a Contact another customer of the batch wrote)."""
    return written.contact_ids.get(item.prepared.customer) or item.write.contact_id


def record_outcomes(
    chunk: Chunk, results: Sequence[RecordResult] | SyncError, stage: str
) -> dict[str, RecordResult | SyncError]:
    """Each owner's result: its record's result, or the classified failure of its record (the
    whole call's failure when the call failed; Salesforce's every error for the record)."""
    if isinstance(results, SyncError):
        return dict.fromkeys(chunk.owners, results)
    found: dict[str, RecordResult | SyncError] = {}
    for index, owner in enumerate(chunk.owners):
        result = results[index] if index < len(results) else None
        if result is None:
            found[owner] = SyncError(
                "Salesforce answered fewer results than records were sent",
                code="MALFORMED_RESPONSE",
                stage=stage,
            )
        elif result.success and result.id:
            found[owner] = result
        else:
            found[owner] = classify_record(result.errors, stage=stage)
    return found


def note_parents(
    chunk: Chunk, outcomes: Mapping[str, RecordResult | SyncError], written: Written
) -> None:
    """Remember an Account or Contact chunk's ids and failures (by Account / customer key)."""
    ids, errors = (
        (written.account_ids, written.account_errors)
        if chunk.sobject == ACCOUNT
        else (written.contact_ids, written.contact_errors)
    )
    for owner, outcome in outcomes.items():
        if isinstance(outcome, SyncError):
            errors[owner] = outcome
        elif outcome.id:
            ids[owner] = outcome.id


def customers_written(
    planned: Iterable[PlannedOrder], written: Written
) -> dict[str, tuple[str | None, str | None]]:
    """The customer cache's new entries: each customer whose Account (and Contact) were
    written, with their ids."""
    found: dict[str, tuple[str | None, str | None]] = {}
    for item in planned:
        if parent_failure(item, written) is not None:
            continue
        account = written.account_ids.get(item.write.account_key)
        contact = contact_id_of(item, written) if item.write.contact is not None else None
        found[item.prepared.customer] = (account, contact)
    return found


def _chunks(
    operation: Operation,
    sobject: str,
    key_field: str,
    items: Sequence[tuple[str, dict[str, Any]]],
    size: int,
) -> list[Chunk]:
    return [
        Chunk(
            operation,
            sobject,
            key_field,
            [body for _, body in items[start : start + size]],
            [owner for owner, _ in items[start : start + size]],
        )
        for start in range(0, len(items), size)
    ]
