"""In-memory fakes of the two adapter interfaces (``SalesforcePort``, ``ShopifyPort``).

For tests of the product's decisions that do not need HTTP: records live in dicts, every call
is counted by method. The fakes keep the few Salesforce rules the sync's decisions depend on
(research/salesforce.md §2, §4), answered as the real adapter answers them, through the one
classifier (``tasks.salesforce.errors.classify_record``):

- a write is all or nothing (the composite's ``allOrNone``);
- a record written by an Id that no longer exists: ``ENTITY_IS_DELETED``;
- an Opportunity created without StageName/CloseDate/Name: ``REQUIRED_FIELD_MISSING``;
- ``ContactId`` sent to an existing Opportunity: ``INVALID_FIELD_FOR_INSERT_UPDATE``
  (it is create-only).

The wire (HTTP, SOQL, Bulk CSV, GraphQL) is the sandbox tier's business, not these fakes'.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sandbox.salesforce.schema import OrgProfile, build_schema
from tasks.core.errors import RecordError, SyncError
from tasks.salesforce.composite import ContactWrite, OrderWrite, OrderWriteResult
from tasks.salesforce.errors import classify_record
from tasks.salesforce.port import (
    ApiUsage,
    BatchLookups,
    IdsByKey,
    KeyLookup,
    RecordResult,
    WriteKind,
)
from tasks.shopify.port import ShopInfo

PREFIX = {"Account": "001", "Contact": "003", "Opportunity": "006"}
REQUIRED_ON_CREATE = {"Opportunity": ("Name", "StageName", "CloseDate"), "Contact": ("LastName",)}
CREATE_ONLY = {"Opportunity": ("ContactId",)}


class FakeSalesforce:
    """An org in memory, behind the ``SalesforcePort`` methods."""

    def __init__(self, org: OrgProfile | None = None, api_limit: int = 100_000):
        self.db: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in PREFIX}
        self.merged: dict[str, str] = {}  # deleted Id → surviving Id
        self.calls: Counter[str] = Counter()
        self.api_limit = api_limit
        self._schema = build_schema(org or OrgProfile())
        self._ids = itertools.count(1)

    # -- what a test sets up or looks at ---------------------------------------------------

    def seed(self, sobject: str, **fields: Any) -> str:
        """A record a user created in Salesforce; its Id."""
        record_id = self._new_id(sobject)
        self.db[sobject][record_id] = {"Id": record_id, **fields}
        return record_id

    def rows(self, sobject: str) -> list[dict[str, Any]]:
        """Every record of ``sobject``, oldest first."""
        return list(self.db[sobject].values())

    def user_deletes(self, sobject: str, record_id: str, *, merged_into: str | None = None) -> None:
        """A user deleted (or merged away) a record."""
        del self.db[sobject][record_id]
        if merged_into is not None:
            self.merged[record_id] = merged_into

    # -- SalesforcePort ----------------------------------------------------------------------

    def write_order(self, write: OrderWrite) -> OrderWriteResult:
        self.calls["write_order"] += 1
        before = copy.deepcopy(self.db)
        try:
            return self._write_order(write)
        except SyncError:
            self.db = before  # allOrNone: nothing of a failed composite stays
            raise

    def save_many(
        self,
        sobject: str,
        key_field: str,
        records: Sequence[Mapping[str, Any]],
        *,
        kind: WriteKind = "upsert",
    ) -> list[RecordResult]:
        self.calls["save_many"] += 1
        key_field = "Id" if kind == "update" else key_field
        results = []
        for record in records:
            key = str(record.get(key_field))
            try:
                if kind == "upsert":
                    record_id, created = self._upsert(sobject, key_field, key, record, sobject)
                elif kind == "update":
                    record_id, created = self._update(sobject, key, record, sobject), False
                else:
                    record_id, created = self._create(sobject, record, sobject), True
            except SyncError as exc:
                results.append(RecordResult(key, False, errors=tuple(exc.errors)))
                continue
            results.append(RecordResult(key, True, record_id, created))
        return results

    def records(
        self,
        sobject: str,
        key_field: str,
        fields: Sequence[str],
        *,
        keys: Sequence[str] = (),
        closing: tuple[date, date] | None = None,
    ) -> Iterator[dict[str, Any]]:
        self.calls["records"] += 1
        wanted = set(keys)
        for row in self.rows(sobject):
            keyed = row.get(key_field) is not None
            close = str(row.get("CloseDate") or "")
            in_range = closing is not None and keyed and _within(close, closing)
            if row.get(key_field) in wanted or in_range:
                yield {name: row.get(name) for name in dict.fromkeys([key_field, *fields])}

    def records_by_ids(
        self, sobject: str, ids: Sequence[str], fields: Sequence[str]
    ) -> Iterator[dict[str, Any]]:
        if ids:
            self.calls["records_by_ids"] += 1
        wanted = set(ids)
        for row in self.rows(sobject):
            if row.get("Id") in wanted:
                yield {name: row.get(name) for name in dict.fromkeys(["Id", *fields])}

    def contacts_by_emails(
        self, emails: Sequence[str], key_field: str
    ) -> dict[str, list[dict[str, Any]]]:
        self.calls["contacts_by_emails"] += 1
        return self._contacts(emails, key_field)

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
        self.calls["lookups_for"] += 1
        ids = self._ids_of(KeyLookup(sobject, key_field, keys))
        return BatchLookups(
            self._contacts(emails, contact_key_field), ids, self._ids_by_object(parents)
        )

    def ids_by_keys(self, lookups: Sequence[KeyLookup]) -> IdsByKey:
        if any(lookup.keys for lookup in lookups):
            self.calls["ids_by_keys"] += 1
        return self._ids_by_object(lookups)

    def _ids_of(self, lookup: KeyLookup) -> dict[str, str | None]:
        ids: dict[str, str | None] = dict.fromkeys(lookup.keys)
        for row in self.rows(lookup.sobject):
            if row.get(lookup.key_field) in ids:
                ids[str(row[lookup.key_field])] = str(row["Id"])
        return ids

    def _ids_by_object(self, lookups: Sequence[KeyLookup]) -> IdsByKey:
        found: IdsByKey = {}
        for lookup in lookups:
            found.setdefault(lookup.sobject, {}).update(self._ids_of(lookup))
        return found

    def merged_into(self, sobject: str, record_id: str) -> str | None:
        self.calls["merged_into"] += 1
        return self.merged.get(record_id)

    def describe(self, sobject: str) -> dict[str, Any]:
        self.calls["describe"] += 1
        return self._schema[sobject].describe()

    def person_record_types(self) -> list[dict[str, Any]]:
        self.calls["person_record_types"] += 1
        return []

    def duplicate_rules(self) -> list[dict[str, Any]]:
        self.calls["duplicate_rules"] += 1
        return []

    def usage(self, *, refresh: bool = False) -> ApiUsage | None:
        return ApiUsage(used=sum(self.calls.values()), limit=self.api_limit)

    def delete(self, sobject: str, record_id: str) -> None:
        self.calls["delete"] += 1
        self.db[sobject].pop(record_id, None)

    # -- the rules ---------------------------------------------------------------------------

    def _write_order(self, write: OrderWrite) -> OrderWriteResult:
        created: dict[str, bool] = {}
        if write.account_id is not None:
            account_id = self._update("Account", write.account_id, write.account, "account")
            self.db["Account"][account_id][write.account_field] = write.account_key
            created["account"] = False
        else:
            account_id, created["account"] = self._upsert(
                "Account", write.account_field, write.account_key, write.account, "account"
            )
        contact_id = self._write_contact(write, account_id, created)
        opportunity = {**write.opportunity, "AccountId": account_id}
        if contact_id is not None and write.link_contact_to_opportunity:
            opportunity["ContactId"] = contact_id
        opportunity_id, created["opportunity"] = self._upsert(
            "Opportunity", write.opportunity_field, write.order_key, opportunity, "opportunity"
        )
        return OrderWriteResult(account_id, contact_id, opportunity_id, created)

    def _write_contact(
        self, write: OrderWrite, account_id: str, created: dict[str, bool]
    ) -> str | None:
        if write.contact is None:
            return None
        body = dict(write.contact)
        if write.contact_account:
            body["AccountId"] = account_id
        if write.contact_write is ContactWrite.UPDATE_BY_ID:
            assert write.contact_id is not None
            if write.contact_field and write.contact_key:
                body[write.contact_field] = write.contact_key
            created["contact"] = False
            return self._update("Contact", write.contact_id, body, "contact")
        if write.contact_write is ContactWrite.CREATE:
            created["contact"] = True
            return self._create("Contact", body, "contact")
        assert write.contact_field is not None
        assert write.contact_key is not None
        contact_id, created["contact"] = self._upsert(
            "Contact", write.contact_field, write.contact_key, body, "contact"
        )
        return contact_id

    def _upsert(
        self, sobject: str, key_field: str, key: str, body: Mapping[str, Any], stage: str
    ) -> tuple[str, bool]:
        existing = next((r for r in self.rows(sobject) if r.get(key_field) == key), None)
        if existing is None:
            return self._create(sobject, {**body, key_field: key}, stage), True
        return self._update(sobject, str(existing["Id"]), body, stage), False

    def _create(self, sobject: str, body: Mapping[str, Any], stage: str) -> str:
        missing = [f for f in REQUIRED_ON_CREATE.get(sobject, ()) if body.get(f) in (None, "")]
        if missing:
            raise _error(
                "REQUIRED_FIELD_MISSING", f"Required fields are missing: {missing}", stage, missing
            )
        record_id = self._new_id(sobject)
        self.db[sobject][record_id] = {"Id": record_id, **body}
        return record_id

    def _update(self, sobject: str, record_id: str, body: Mapping[str, Any], stage: str) -> str:
        record = self.db[sobject].get(record_id)
        if record is None:
            raise _error("ENTITY_IS_DELETED", "entity is deleted", stage, [])
        refused = [f for f in CREATE_ONLY.get(sobject, ()) if f in body]
        if refused:
            raise _error("INVALID_FIELD_FOR_INSERT_UPDATE", "create-only field", stage, refused)
        record.update(body)
        return record_id

    def _contacts(self, emails: Sequence[str], key_field: str) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = {e.lower(): [] for e in emails}
        for row in self.rows("Contact"):
            email = str(row.get("Email") or "").lower()
            if email in found:
                found[email].append(
                    {k: row.get(k) for k in ("Id", "AccountId", "Email", key_field)}
                )
        return found

    def _new_id(self, sobject: str) -> str:
        return f"{PREFIX[sobject]}FAKE{next(self._ids):011d}"


def _error(code: str, message: str, stage: str, fields: list[str]) -> SyncError:
    return classify_record([RecordError(code=code, message=message, fields=fields)], stage=stage)


def _within(close: str, closing: tuple[date, date]) -> bool:
    return closing[0].isoformat() <= close <= closing[1].isoformat()


class FakeShopify:
    """A shop in memory (GraphQL order nodes by numeric id), behind the ``ShopifyPort`` methods."""

    def __init__(self, nodes: Iterable[dict[str, Any]] = (), *, timezone: str = "America/New_York"):
        self.nodes = {str(n["legacyResourceId"]): n for n in nodes}
        self.subscriptions: list[dict[str, Any]] = []
        self.info = ShopInfo("fake.myshopify.com", timezone, "USD", frozenset({"read_orders"}))
        self.calls = 0
        self.closed = False

    def order(self, order_id: str) -> dict[str, Any] | None:
        self.calls += 1
        node = self.nodes.get(order_id)
        return copy.deepcopy(node) if node is not None else None

    def orders_named(self, name: str) -> list[str]:
        self.calls += 1
        wanted = name if name.startswith("#") else f"#{name}"
        return [i for i, n in self.nodes.items() if n.get("name") == wanted]

    def count_orders(self, start: datetime, end: datetime, limit: int) -> int:
        self.calls += 1
        return min(limit, len(self._window(start, end)))

    def order_pages(self, start: datetime, end: datetime) -> Iterator[list[dict[str, Any]]]:
        self.calls += 1
        yield self._window(start, end)

    def bulk_orders(self, start: datetime, end: datetime, path: Path) -> int:
        self.calls += 1
        nodes = self._window(start, end)
        path.write_text("".join(json.dumps(n) + "\n" for n in nodes), encoding="utf-8")
        return len(nodes)

    def existing_order_ids(self, order_ids: Iterable[str]) -> set[str]:
        self.calls += 1
        return {i for i in order_ids if i in self.nodes}

    def recent_orders(self) -> list[dict[str, Any]]:
        self.calls += 1
        return list(self.nodes.values())[-10:]

    def webhook_subscriptions(self) -> list[dict[str, Any]]:
        self.calls += 1
        return list(self.subscriptions)

    def subscribe_webhook(self, topic: str, url: str) -> str:
        self.calls += 1
        self.subscriptions.append({"topic": topic, "endpoint": {"callbackUrl": url}})
        return f"gid://shopify/WebhookSubscription/{len(self.subscriptions)}"

    def shop_info(self) -> ShopInfo:
        self.calls += 1
        return self.info

    def close(self) -> None:
        self.closed = True

    def _window(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        def updated(node: dict[str, Any]) -> datetime:
            return datetime.fromisoformat(str(node["updatedAt"]).replace("Z", "+00:00"))

        inside = [n for n in self.nodes.values() if start <= updated(n) < end]
        return sorted(inside, key=updated)
