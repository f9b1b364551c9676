"""Reconciliation, the pure part: what Salesforce should hold, what it holds, the difference, and
the repair plan. No I/O here: the flow feeds mapped orders and Salesforce rows in, and sends the
plan out.

Which fields are compared is not written here: it is the mapping tables'
(:func:`tasks.core.mapping_table.compared_rules`): every mapped field the configuration owns, for
Account, Contact and Opportunity, including the fields added by configuration. Values are
compared as :func:`tasks.core.mapping_table.comparable` text (money in cents, e-mails case-folded…).

Frames are built column by column (one Python list per column, turned into a DataFrame once), so
a 100,000-order window costs a few short strings per order, never a dict per row.

Expected frame (one row per Shopify order, from :func:`tasks.core.mapping.map_order`): columns
``order_id, order_name, account_key, contact_key, stage, updated_at`` and one column
``<Object>.<Field>`` per compared field. ``stage`` is only set when a cancellation may move
``StageName`` (``mapping.cancellation_updates_stage``). The Account and Contact values of orders
sharing a customer are those the webhook path leaves behind: per field, the newest order's
value, or an older one's where the newest has none (absent means "leave alone").

Actual frames: Opportunities (columns ``sf_id, order_id, name, amount, stage, close_date,
currency, account_key`` and ``Opportunity.<Field>``), and Accounts and Contacts read back by
external id (columns ``key, sf_id`` and ``<Object>.<Field>``).

Outcomes per order: ``in_sync``, ``missing`` (no Opportunity), ``drifted`` (an owned field of
its Opportunity, Account or Contact differs; details ``Field: salesforce → shopify``, Account and
Contact fields prefixed ``Account.`` / ``Contact.``) and ``duplicate`` (several Opportunities
share the order id). Opportunities whose order is not in the window are orphan *candidates*:
the flow asks Shopify whether it still has them, and :func:`confirm_orphans` keeps the ones it
does not. Create-only fields (StageName after create, CloseDate, OwnerId, ContactId) are never
drift, except StageName of a cancelled order when the mapping lets a cancellation move the stage.
A value Shopify does not have (blank) is never drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import pandas as pd

from tasks.core.adoption import contact_to_adopt
from tasks.core.disposition import is_transient
from tasks.core.errors import PermanentError, RetryableError, SyncError
from tasks.core.mapping import (
    ACCOUNT,
    CONTACT,
    OPPORTUNITY,
    MappingConfig,
    OrgSchema,
    SalesforceRecords,
    update_body,
)
from tasks.core.mapping_table import FieldRule, comparable, compared_rules, money_text

__all__ = [
    "ACTUAL_COLUMNS",
    "EXPECTED_COLUMNS",
    "STATUSES",
    "ActualColumns",
    "DiffResult",
    "ExpectedColumns",
    "RecordColumns",
    "RepairPlan",
    "confirm_orphans",
    "diff",
    "money_text",
    "opportunity_fields",
    "opportunity_update",
    "plan_repair",
    "readback_fields",
    "still_due",
]

STATUSES = ("in_sync", "missing", "drifted", "duplicate")
EXPECTED_COLUMNS = ("order_id", "order_name", "account_key", "contact_key", "stage", "updated_at")
ACTUAL_COLUMNS = (
    "sf_id",
    "order_id",
    "name",
    "amount",
    "stage",
    "close_date",
    "currency",
    "account_key",
)
RECORD_COLUMNS = ("key", "sf_id")
ARROW = " → "
RELATED = (ACCOUNT, CONTACT)  # read back by external id, beside the Opportunities


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text != "" else None


def column(sobject: str, name: str) -> str:
    """The frame column of one compared field."""
    return f"{sobject}.{name}"


def _org(org: OrgSchema | None, multi_currency: bool) -> OrgSchema:
    return org if org is not None else OrgSchema(multi_currency=multi_currency)


def readback_fields(sobject: str, config: MappingConfig, org: OrgSchema) -> list[str]:
    """The fields reconcile reads back for one object (SOQL select list): its Id, its external
    id and every compared field (the mapping tables' owned fields the org has)."""
    names = ["Id", config.key_field(sobject)]
    names += [rule.field for rule in compared_rules(sobject, config, org)]
    return list(dict.fromkeys(names))


def opportunity_fields(config: MappingConfig, org: OrgSchema) -> list[str]:
    """The Opportunity fields reconcile reads back (SOQL select list)."""
    fields = [
        *readback_fields(OPPORTUNITY, config, org),
        "Name",
        "Amount",
        "StageName",
        "CloseDate",
        f"Account.{config.account_external_id_field}",
    ]
    if org.multi_currency:
        fields.append("CurrencyIsoCode")
    return list(dict.fromkeys(fields))


# --------------------------------------------------------------------------------------------
# Frame builders (column arrays)
# --------------------------------------------------------------------------------------------


def _value_columns(rules: Mapping[str, Sequence[FieldRule]]) -> list[str]:
    return [column(s, r.field) for s, object_rules in rules.items() for r in object_rules]


@dataclass
class ExpectedColumns:
    """Accumulates the expected frame one mapped order at a time.

    ``org`` decides which fields are compared (``None``: the standard fields, with
    ``CurrencyIsoCode`` when ``multi_currency``).
    """

    config: MappingConfig
    multi_currency: bool = False
    org: OrgSchema | None = None
    rules: dict[str, list[FieldRule]] = field(init=False)
    columns: dict[str, list[Any]] = field(init=False)

    def __post_init__(self) -> None:
        org = _org(self.org, self.multi_currency)
        self.rules = {s: compared_rules(s, self.config, org) for s in (OPPORTUNITY, *RELATED)}
        names = [*EXPECTED_COLUMNS, *_value_columns(self.rules)]
        self.columns = {name: [] for name in names}

    def add(
        self, order_name: str | None, records: SalesforceRecords, updated_at: Any = None
    ) -> None:
        """Add one order from its mapped records (``updated_at`` orders a customer's orders)."""
        stage = None
        if records.cancelled and self.config.cancellation_updates_stage:
            stage = self.config.stage_when_cancelled
        contact_key = records.contact_key if records.contact is not None else None
        row = (
            records.order_key,
            order_name or records.order_key,
            records.account_key,
            contact_key,
            stage,
            updated_at,
        )
        for name, value in zip(EXPECTED_COLUMNS, row, strict=True):
            self.columns[name].append(value)
        bodies = {OPPORTUNITY: records.opportunity, ACCOUNT: records.account}
        bodies[CONTACT] = records.contact or {}
        for sobject, rules in self.rules.items():
            body = bodies[sobject]
            for rule in rules:
                value = comparable(rule.kind, body.get(rule.field))
                self.columns[column(sobject, rule.field)].append(value)

    def __len__(self) -> int:
        return len(self.columns["order_id"])

    def frame(self) -> pd.DataFrame:
        """The expected frame (the last row wins when an order was added twice)."""
        frame = _frame(self.columns, list(self.columns))
        frame = frame.drop_duplicates("order_id", keep="last").reset_index(drop=True)
        for sobject, key in ((ACCOUNT, "account_key"), (CONTACT, "contact_key")):
            _customer_values(frame, key, [column(sobject, r.field) for r in self.rules[sobject]])
        return frame


def _customer_values(frame: pd.DataFrame, key: str, names: list[str]) -> None:
    """Give every order of one customer the values the webhook path leaves behind: per field,
    the newest order's, else the newest that has one."""
    if not names or frame.empty:
        return
    shared = frame[key].notna() & frame[key].duplicated(keep=False)
    if not shared.any():
        return
    rows = frame[shared]
    newest_last = rows.assign(_at=pd.to_datetime(rows["updated_at"], utc=True, errors="coerce"))
    newest_last = newest_last.sort_values("_at", kind="stable", na_position="first")
    last = newest_last.groupby(key, sort=False)[names].last()
    for name in names:
        frame.loc[shared, name] = frame.loc[shared, key].map(last[name]).to_numpy()


@dataclass
class ActualColumns:
    """Accumulates the actual frame from Salesforce rows (REST JSON or Bulk CSV dicts)."""

    config: MappingConfig
    org: OrgSchema | None = None
    rules: list[FieldRule] = field(init=False)
    columns: dict[str, list[Any]] = field(init=False)
    _seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        org = _org(self.org, multi_currency=True)
        self.rules = compared_rules(OPPORTUNITY, self.config, org)
        names = [*ACTUAL_COLUMNS, *_value_columns({OPPORTUNITY: self.rules})]
        self.columns = {name: [] for name in names}

    def add(self, row: Mapping[str, Any]) -> bool:
        """Add one Opportunity row; rows already added (same ``Id``) are skipped."""
        sf_id = _text(row.get("Id"))
        if sf_id is None or sf_id in self._seen:
            return False
        self._seen.add(sf_id)
        account_field = self.config.account_external_id_field
        account = row.get("Account")
        if isinstance(account, Mapping):
            account_key = account.get(account_field)
        else:
            account_key = row.get(f"Account.{account_field}")
        values = (
            sf_id,
            _text(row.get(self.config.opportunity_external_id_field)),
            _text(row.get("Name")),
            money_text(row.get("Amount")),
            _text(row.get("StageName")),
            _text(row.get("CloseDate")),
            _text(row.get("CurrencyIsoCode")),
            _text(account_key),
        )
        for name, value in zip(ACTUAL_COLUMNS, values, strict=True):
            self.columns[name].append(value)
        for rule in self.rules:
            value = comparable(rule.kind, row.get(rule.field))
            self.columns[column(OPPORTUNITY, rule.field)].append(value)
        return True

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Add many rows; returns how many were new."""
        return sum(1 for row in rows if self.add(row))

    def __len__(self) -> int:
        return len(self.columns["sf_id"])

    def frame(self) -> pd.DataFrame:
        """The actual frame."""
        return _frame(self.columns, list(self.columns))


@dataclass
class RecordColumns:
    """Accumulates Accounts or Contacts read back by external id (REST or Bulk rows)."""

    sobject: str
    config: MappingConfig
    org: OrgSchema | None = None
    rules: list[FieldRule] = field(init=False)
    columns: dict[str, list[Any]] = field(init=False)
    _seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rules = compared_rules(self.sobject, self.config, _org(self.org, False))
        names = [*RECORD_COLUMNS, *_value_columns({self.sobject: self.rules})]
        self.columns = {name: [] for name in names}

    def add(self, row: Mapping[str, Any]) -> bool:
        """Add one record; records already added (same ``Id``) or without a key are skipped."""
        sf_id = _text(row.get("Id"))
        key = _text(row.get(self.config.key_field(self.sobject)))
        if sf_id is None or key is None or sf_id in self._seen:
            return False
        self._seen.add(sf_id)
        self.columns["key"].append(key)
        self.columns["sf_id"].append(sf_id)
        for rule in self.rules:
            value = comparable(rule.kind, row.get(rule.field))
            self.columns[column(self.sobject, rule.field)].append(value)
        return True

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Add many rows; returns how many were new."""
        return sum(1 for row in rows if self.add(row))

    def __len__(self) -> int:
        return len(self.columns["sf_id"])

    def frame(self) -> pd.DataFrame:
        """One row per record."""
        return _frame(self.columns, list(self.columns))


def _frame(columns: Mapping[str, list[Any]], names: Sequence[str]) -> pd.DataFrame:
    data = {name: pd.Series(columns[name], dtype="object") for name in names}
    return pd.DataFrame(data, columns=list(names))


# --------------------------------------------------------------------------------------------
# Diff
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiffResult:
    """The outcome of one diff.

    ``orders``: one row per expected order, columns ``order_id, order_name, status, drift,
    drift_fields, salesforce_ids``. ``candidates``: actual rows whose order is not in the window
    (possible orphans, to be confirmed against Shopify).
    """

    orders: pd.DataFrame
    candidates: pd.DataFrame

    def counts(self) -> dict[str, int]:
        """Orders per status (every status present, zero when none)."""
        found = self.orders["status"].value_counts()
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def ids(self, status: str) -> list[str]:
        """Order ids with this status."""
        ids: list[str] = self.orders.loc[self.orders["status"] == status, "order_id"].tolist()
        return ids

    def drifted_records(self) -> dict[str, int]:
        """Drifted records per object: Opportunities (orders with an Opportunity field or the
        Account link drifted), and distinct Accounts and Contacts with a drifted field."""
        drifted = self.orders[self.orders["status"] == "drifted"]
        split = drifted["drift_fields"].str.split(",")
        counts = {OPPORTUNITY: int(split.map(lambda f: any("." not in n for n in f)).sum())}
        for sobject, key in ((ACCOUNT, "account_key"), (CONTACT, "contact_key")):
            touched = split.map(lambda f, s=sobject: any(n.startswith(f"{s}.") for n in f))
            counts[sobject] = int(drifted.loc[touched, key].nunique())
        return counts

    def drift_fields(self) -> dict[str, list[str]]:
        """Drifted order id → the fields that differ."""
        drifted = self.orders[self.orders["status"] == "drifted"]
        return {
            oid: fields.split(",")
            for oid, fields in zip(drifted["order_id"], drifted["drift_fields"], strict=True)
        }


def _differs(left: pd.Series, right: pd.Series) -> pd.Series:
    return left.fillna("").astype(str) != right.fillna("").astype(str)


Check = tuple[str, pd.Series, pd.Series, pd.Series]


def diff(
    expected: pd.DataFrame,
    actual: pd.DataFrame,
    *,
    compare_currency: bool = False,
    accounts: pd.DataFrame | None = None,
    contacts: pd.DataFrame | None = None,
) -> DiffResult:
    """Compare what Salesforce should hold with what it holds.

    Compared: every ``Opportunity.<Field>`` column the expected and actual frames share
    (``CurrencyIsoCode`` only with ``compare_currency``), the Account link (``Account``: the
    Account's external id), ``StageName`` only where the expected frame sets ``stage`` (a
    cancelled order whose cancellation may move the stage), and, for an order whose Opportunity
    exists, every ``Account.<Field>`` / ``Contact.<Field>`` column against the record read back
    by its key (``accounts`` / ``contacts``: :class:`RecordColumns` frames; ``None``: not
    compared). A blank expected value is never drift; nothing else is ever drift.
    """
    wanted = set(expected["order_id"])
    in_window = actual["order_id"].isin(wanted)
    matched = actual[in_window]
    candidates = actual[~in_window].reset_index(drop=True)

    sizes = matched.groupby("order_id", sort=False).size()
    ids = matched.groupby("order_id", sort=False)["sf_id"].agg(lambda s: ";".join(sorted(s)))
    single = matched[matched["order_id"].map(sizes) == 1].set_index("order_id")

    orders = expected.set_index("order_id", drop=False)
    count = orders["order_id"].map(sizes).fillna(0).astype("int64")
    act = single.reindex(orders.index)
    present = count == 1

    checks = _opportunity_checks(orders, act, compare_currency)
    for sobject, key, frame in (
        (ACCOUNT, "account_key", accounts),
        (CONTACT, "contact_key", contacts),
    ):
        if frame is not None:
            checks += _record_checks(sobject, orders, orders[key], frame)
    fields, details = _drift(checks, present)

    status = pd.Series("in_sync", index=orders.index, dtype="object")
    status[present & (fields != "")] = "drifted"
    status[count == 0] = "missing"
    status[count > 1] = "duplicate"

    result = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy(),
            "order_name": orders["order_name"].to_numpy(),
            "status": status.to_numpy(),
            "drift": details.to_numpy(),
            "drift_fields": fields.to_numpy(),
            "salesforce_ids": orders["order_id"].map(ids).fillna("").to_numpy(),
            "account_key": orders["account_key"].to_numpy(),
            "contact_key": _optional(orders, "contact_key").to_numpy(),
        }
    )
    return DiffResult(orders=result, candidates=candidates)


def _optional(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series(None, index=frame.index, dtype="object")


def _opportunity_checks(
    orders: pd.DataFrame, act: pd.DataFrame, compare_currency: bool
) -> list[Check]:
    everywhere = pd.Series(True, index=orders.index)
    prefix = f"{OPPORTUNITY}."
    checks: list[Check] = []
    for name in orders.columns:
        if not name.startswith(prefix) or name not in act.columns:
            continue
        field_name = name[len(prefix) :]
        if field_name == "CurrencyIsoCode" and not compare_currency:
            continue
        checks.append((field_name, orders[name], act[name], orders[name].notna()))
    checks.append(("Account", orders["account_key"], act["account_key"], everywhere))
    checks.append(("StageName", orders["stage"], act["stage"], orders["stage"].notna()))
    return checks


def _record_checks(
    sobject: str, orders: pd.DataFrame, keys: pd.Series, records: pd.DataFrame
) -> list[Check]:
    """Checks of one related object: its compared columns against the record with the key."""
    found = records.drop_duplicates("key", keep="first").set_index("key")
    have = found.reindex(keys.to_numpy())
    have.index = orders.index
    exists = have["sf_id"].notna()
    prefix = f"{sobject}."
    return [
        (name, orders[name], have[name], orders[name].notna() & exists)
        for name in orders.columns
        if name.startswith(prefix) and name in have.columns
    ]


def _drift(checks: list[Check], present: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Per order, the drifted field names (comma-separated) and their details."""
    fields = pd.Series("", index=present.index, dtype="object")
    details = pd.Series("", index=present.index, dtype="object")
    for name, want, have, applies in checks:
        mask = present & applies & _differs(want, have)
        if not mask.any():
            continue
        sep = fields[mask].map(lambda s: "," if s else "")
        fields[mask] = fields[mask] + sep + name
        detail = [
            f"{name}: {_show(h)}{ARROW}{_show(w)}"
            for w, h in zip(want[mask], have[mask], strict=True)
        ]
        dsep = details[mask].map(lambda s: "; " if s else "")
        details[mask] = details[mask] + dsep + pd.Series(detail, index=fields[mask].index)
    return fields, details


def _show(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "∅"
    return str(value)


def confirm_orphans(candidates: pd.DataFrame, still_in_shopify: Iterable[str]) -> pd.DataFrame:
    """Orphans: candidate Opportunities whose order id Shopify does not have."""
    known = set(still_in_shopify)
    keep = ~candidates["order_id"].isin(known)
    return candidates[keep].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Repair plan
# --------------------------------------------------------------------------------------------


@dataclass
class RepairPlan:
    """Records to write per object, in write order, each list unique by its key.

    ``accounts`` go first, then the Contacts: ``contacts`` upserted by external id, ``adoptions``
    (existing Contacts found by e-mail, updated by ``Id``; a customer's gets our external id) and
    ``guest_contacts`` (guests' Contacts to create, one per e-mail). ``opportunities`` link their
    Account (and, on create, their Contact) through the parent's external id, or through
    ``ContactId`` for a guest, so they are written last; a guest Contact created by this plan
    gives its new Id to the Opportunities of ``guest_orders``. The ``*_orders`` maps say which
    orders a record's failure affects.
    """

    accounts: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    opportunities: list[dict[str, Any]] = field(default_factory=list)
    account_orders: dict[str, list[str]] = field(default_factory=dict)
    contact_orders: dict[str, list[str]] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)
    adoptions: list[dict[str, Any]] = field(default_factory=list)
    adoption_orders: dict[str, list[str]] = field(default_factory=dict)  # Contact Id → orders
    guest_contacts: list[dict[str, Any]] = field(default_factory=list)
    guest_orders: dict[str, list[str]] = field(default_factory=dict)  # Email → orders
    linked_contacts: dict[str, str] = field(default_factory=dict)  # order → existing Contact Id

    def counts(self) -> dict[str, int]:
        """Records per object and orders per action (``create`` / ``update``)."""
        return {
            "accounts": len(self.accounts),
            "contacts": len(self.contacts) + len(self.adoptions) + len(self.guest_contacts),
            "adopted_contacts": len(self.adoptions),
            "opportunities": len(self.opportunities),
            "create": sum(1 for a in self.actions.values() if a == "create"),
            "update": sum(1 for a in self.actions.values() if a == "update"),
        }

    def __len__(self) -> int:
        return (
            len(self.accounts)
            + len(self.contacts)
            + len(self.adoptions)
            + len(self.guest_contacts)
            + len(self.opportunities)
        )

    def without_orders(self, order_ids: Iterable[str], config: MappingConfig) -> RepairPlan:
        """The plan without the Opportunities of these orders (their parents failed)."""
        drop = set(order_ids)
        key = config.key_field(OPPORTUNITY)
        return replace(
            self,
            opportunities=[r for r in self.opportunities if str(r.get(key)) not in drop],
            actions={k: v for k, v in self.actions.items() if k not in drop},
        )


def _touches(drift_fields: Sequence[str], sobject: str) -> bool:
    return any(name.startswith(f"{sobject}.") for name in drift_fields)


def _reference(sobject: str, key_field: str, key: str) -> dict[str, Any]:
    return {"attributes": {"type": sobject}, key_field: key}


def opportunity_update(
    records: SalesforceRecords, config: MappingConfig, *, relink: bool
) -> dict[str, Any]:
    """The update body of an existing Opportunity: owned fields only (plus StageName for a
    cancellation), and with ``relink`` the link to its Account by external id."""
    body = update_body(OPPORTUNITY, records.opportunity, config, cancelled=records.cancelled)
    if relink:
        body["Account"] = _reference(ACCOUNT, config.key_field(ACCOUNT), records.account_key)
    return body


@dataclass
class _Planner:
    """Builds one :class:`RepairPlan`; keyed maps dedupe records (later items win)."""

    config: MappingConfig
    contacts_found: Mapping[str, Sequence[Mapping[str, Any]]]
    plan: RepairPlan = field(default_factory=RepairPlan)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    adoptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    guests: dict[str, dict[str, Any]] = field(default_factory=dict)
    opportunities: dict[str, dict[str, Any]] = field(default_factory=dict)
    adopted_by: dict[str, str] = field(default_factory=dict)  # customer key → adopted Id
    new_by_email: dict[str, str] = field(default_factory=dict)  # e-mail → new keyed Contact

    def add(self, status: str, records: SalesforceRecords, drift_fields: Sequence[str]) -> None:
        order_id = records.order_key
        if status == "missing":
            body = dict(records.opportunity)
            body["Account"] = _reference(
                ACCOUNT, self.config.key_field(ACCOUNT), records.account_key
            )
            self._contact(records, body)
            self._account(records, dict(records.account))
            action = "create"
        elif status == "drifted":
            relink = "Account" in drift_fields
            body = opportunity_update(records, self.config, relink=relink)
            if relink:
                self._account(records, dict(records.account))
            elif _touches(drift_fields, ACCOUNT):
                owned = update_body(
                    ACCOUNT, records.account, self.config, cancelled=records.cancelled
                )
                self._account(records, owned)
            if _touches(drift_fields, CONTACT):
                self._drifted_contact(records)
            action = "update"
        else:
            return
        self.opportunities[order_id] = body
        self.plan.actions[order_id] = action

    def _account(self, records: SalesforceRecords, body: dict[str, Any]) -> None:
        """Plan an Account write (merged with one planned for an earlier order: later values
        win, a field the later body lacks keeps the earlier value, as on the webhook path)."""
        self.accounts.setdefault(records.account_key, {}).update(body)
        self.plan.account_orders.setdefault(records.account_key, []).append(records.order_key)

    def _drifted_contact(self, records: SalesforceRecords) -> None:
        """Plan the owned fields of a drifted Contact, upserted by its key."""
        key = records.contact_key
        if records.contact is None or key is None:
            return
        body = update_body(CONTACT, records.contact, self.config)
        self.contacts.setdefault(key, {}).update(body)
        self.plan.contact_orders.setdefault(key, []).append(records.order_key)

    def _contact(self, records: SalesforceRecords, opportunity: dict[str, Any]) -> None:
        """Plan the Contact of a missing order and link the Opportunity to it (create only)."""
        if records.contact is None:
            return
        key_field = self.config.key_field(CONTACT)
        order_id, key = records.order_key, records.contact_key
        found = self.contacts_found.get((records.contact_lookup_email or "").lower(), ())
        if key is not None and key in self.adopted_by:
            adopt: str | None = self.adopted_by[key]
        else:
            taken = set(self.adopted_by.values())
            adopt = contact_to_adopt(found, key_field, key, taken=taken)
        lookup = (records.contact_lookup_email or "").lower()
        if adopt is None and key is not None:
            body = dict(records.contact)
            exists = any(str(c.get(key_field) or "") == key for c in found)
            self.contacts[key] = self._with_account(body, records) if not exists else body
            self.plan.contact_orders.setdefault(key, []).append(order_id)
            opportunity["Contact"] = _reference(CONTACT, key_field, key)
            self.new_by_email.setdefault(lookup, key)
            return
        if adopt is None:  # a guest nobody knows yet: one new Contact per e-mail
            body = self.guests.setdefault(
                lookup, self._with_account(dict(records.contact), records)
            )
            self.plan.guest_orders.setdefault(str(body.get("Email")), []).append(order_id)
            return
        self._adopt(adopt, records)
        if key is not None:
            opportunity["Contact"] = _reference(CONTACT, key_field, key)
        else:
            self.plan.linked_contacts[order_id] = adopt

    def _adopt(self, contact_id: str, records: SalesforceRecords) -> None:
        """Update the existing Contact by Id; a customer's gets our key. Like the webhook path,
        an existing Contact keeps its Account unless ``AccountId`` is not create-only."""
        body = dict(records.contact or {})
        key_field = self.config.key_field(CONTACT)
        if records.contact_key is not None:
            body[key_field] = records.contact_key
            self.adopted_by[records.contact_key] = contact_id
        elif contact_id in self.adoptions:
            body = {}  # a customer adopts this Contact in the same plan: leave it to that one
        if body and "AccountId" not in self.config.create_only_fields.get(CONTACT, []):
            body = self._with_account(body, records)
        if body or contact_id not in self.adoptions:
            self.adoptions[contact_id] = {**body, "Id": contact_id}
        self.plan.adoption_orders.setdefault(contact_id, []).append(records.order_key)

    def _with_account(self, body: dict[str, Any], records: SalesforceRecords) -> dict[str, Any]:
        body["Account"] = _reference(ACCOUNT, self.config.key_field(ACCOUNT), records.account_key)
        return body

    def _guests_to_new_contacts(self) -> None:
        """A guest whose e-mail a customer's new Contact of this plan has is linked to that
        Contact (the webhook path would find it by e-mail) instead of getting a twin."""
        key_field = self.config.key_field(CONTACT)
        for lookup in [email for email in self.guests if email in self.new_by_email]:
            key = self.new_by_email[lookup]
            body = self.guests.pop(lookup)
            for order_id in self.plan.guest_orders.pop(str(body.get("Email")), []):
                self.opportunities[order_id]["Contact"] = _reference(CONTACT, key_field, key)
                self.plan.contact_orders.setdefault(key, []).append(order_id)

    def finish(self) -> RepairPlan:
        self._guests_to_new_contacts()
        self.plan.accounts = list(self.accounts.values())
        self.plan.contacts = list(self.contacts.values())
        self.plan.adoptions = list(self.adoptions.values())
        self.plan.guest_contacts = list(self.guests.values())
        self.plan.opportunities = list(self.opportunities.values())
        return self.plan


def plan_repair(
    items: Iterable[tuple[str, SalesforceRecords, Sequence[str]]],
    config: MappingConfig,
    contacts: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> RepairPlan:
    """Build the repair plan from ``(status, mapped records, drift fields)`` per order.

    ``missing`` orders get full create bodies for Account, Contact and Opportunity, the
    Opportunity linked to both. The Contact follows the webhook path's rule
    (:mod:`tasks.core.adoption`) over ``contacts`` (lower-cased e-mail → the Contacts Salesforce has
    with it, oldest first): a customer new to Salesforce adopts an unkeyed Contact with its
    e-mail instead of creating a twin; a guest is linked to the Contact with its e-mail, or gets
    a new one. ``drifted`` orders get the Opportunity's owned fields only (plus StageName for a
    cancellation); their Account whole when the link drifted, else its owned fields when an
    ``Account.`` field drifted; their Contact's owned fields (upserted by key) when a
    ``Contact.`` field drifted (the Opportunity's ``ContactId`` is create-only and never sent).
    Later items win for a shared key (pass oldest update first).
    """
    planner = _Planner(config, contacts or {})
    for status, records, drift_fields in items:
        planner.add(status, records, drift_fields)
    return planner.finish()


class LedgerState(Protocol):
    """What the re-check reads from a ledger entry (``state.LedgerRecord`` has it)."""

    @property
    def order_updated_at(self) -> datetime: ...

    @property
    def synced_at(self) -> datetime: ...


def still_due(
    action: str, updated_at: datetime, ledger: LedgerState | None, since: datetime
) -> str | None:
    """The write an order still needs just before it is written: ``create``, ``update``, or
    ``None`` (nothing: Salesforce already has this state or a newer one).

    ``action`` is what the plan made of the run's listing and read-back, ``updated_at`` the
    order's ``updated_at`` in that listing, and ``since`` when the run began. The drain may
    have synced the order in between:

    - the ledger holds a newer state → ``None``: an older state never overwrites a newer one;
    - the ledger was written since the run began (the Opportunity exists now) → ``None`` for
      the same state, else ``update`` (owned fields only, never the create-only ones);
    - otherwise the plan's own ``action``.
    """
    if ledger is None:
        return action
    if ledger.order_updated_at > updated_at:
        return None
    if ledger.synced_at >= since:
        return None if ledger.order_updated_at == updated_at else "update"
    return action


def flatten_for_bulk(record: Mapping[str, Any]) -> dict[str, Any]:
    """A Bulk API CSV row: nested parent references become ``Rel.ExternalId__c`` columns."""
    row: dict[str, Any] = {}
    for name, value in record.items():
        if isinstance(value, Mapping):
            for inner, inner_value in value.items():
                if inner != "attributes":
                    row[f"{name}.{inner}"] = inner_value
        else:
            row[name] = value
    return row


def without_attributes(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record with ``attributes`` removed from nested parent references."""
    return {
        name: (
            {k: v for k, v in value.items() if k != "attributes"}
            if isinstance(value, Mapping)
            else value
        )
        for name, value in record.items()
    }


# --------------------------------------------------------------------------------------------
# Write results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """One order whose repair failed: which record, Salesforce's first reason, and every error
    Salesforce reported for that record (``errors``).

    ``error`` is the failure as Salesforce's classifier sees it, for ``tasks.core.disposition``;
    ``transient``: a later run may succeed (it counts as a failed night).
    """

    order_id: str
    stage: str
    code: str
    message: str
    fields: tuple[str, ...] = ()
    transient: bool = False
    errors: tuple[Any, ...] = ()  # RecordError
    error: SyncError | None = field(default=None, compare=False)

    @property
    def classified(self) -> SyncError:
        """The failure for ``tasks.core.disposition``: ``error``, else (a Failure built without
        one) a transient or permanent error with its code and reason."""
        if self.error is not None:
            return self.error
        kind = RetryableError if self.transient else PermanentError
        return kind(self.message, code=self.code, fields=list(self.fields), stage=self.stage)


def failures_by_order(
    results: Iterable[Any], orders_of: Mapping[str, Sequence[str]] | None, stage: str
) -> dict[str, Failure]:
    """Failed ``RecordResult``s → the orders they affect (``orders_of`` maps key → orders;
    ``None`` means the key is the order id). Each result's ``error`` is already classified."""
    found: dict[str, Failure] = {}
    for result in results:
        error = result.error
        if error is None:
            continue
        affected = [result.key] if orders_of is None else orders_of.get(result.key, [])
        for order_id in affected:
            found.setdefault(
                order_id,
                Failure(
                    order_id,
                    stage,
                    str(error.code),
                    error.message,
                    tuple(error.fields),
                    transient=is_transient(error),
                    errors=tuple(result.errors),
                    error=error,
                ),
            )
    return found


REPORT_COLUMNS = (
    "order_id",
    "order_name",
    "status",
    "outcome",
    "error",
    "detail",
    "salesforce_ids",
    "opportunity_id",
    "account_id",
    "contact_id",
)
WOULD = {"missing": "would create", "drifted": "would update"}
REPORTED = "reported only (needs a human; never deleted)"
WRITTEN_OBJECTS = {"opportunity_id": OPPORTUNITY, "account_id": ACCOUNT, "contact_id": CONTACT}


def row_outcome(
    status: str, *, dry_run: bool, failed: bool, repaired: bool, stopped: bool = False
) -> str:
    """What the run did about one discrepancy: ``would create`` / ``would update`` (dry run),
    ``repaired`` / ``failed`` (a real run), or why nothing was written."""
    if status not in WOULD:
        return REPORTED
    if dry_run:
        return WOULD[status]
    if failed:
        return "failed"
    if repaired:
        return "repaired"
    if stopped:
        return "not written: the run stopped early (the next run repairs it)"
    return "not written: the webhook path wrote it during the run"


def failure_text(failure: Failure) -> str:
    """A failure as one cell: the record that failed, Salesforce's code and message."""
    return f"{failure.stage}: {failure.code}: {failure.message}"


def discrepancy_rows(
    result: DiffResult,
    orphans: pd.DataFrame,
    failures: Mapping[str, Failure],
    *,
    dry_run: bool = False,
    written: Mapping[str, Mapping[str, str]] | None = None,
    stopped: bool = False,
) -> pd.DataFrame:
    """Every discrepancy as one table (columns ``REPORT_COLUMNS``), failed rows first, then the
    other non-``in_sync`` orders, then orphans.

    ``outcome`` says what the run did about each row (:func:`row_outcome`), ``error`` why a
    repair failed (code and message); a repaired row names the Salesforce ids written
    (``written``: order id → object → id; the Opportunity always, its Account and Contact when
    this run wrote or linked them).
    """
    written = written or {}
    orders = result.orders[result.orders["status"] != "in_sync"]
    ids = list(orders["order_id"])
    outcomes = [
        row_outcome(
            status,
            dry_run=dry_run,
            failed=order_id in failures,
            repaired=order_id in written,
            stopped=stopped,
        )
        for order_id, status in zip(ids, orders["status"], strict=True)
    ]
    table = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy(),
            "order_name": orders["order_name"].to_numpy(),
            "status": orders["status"].to_numpy(),
            "outcome": pd.Series(outcomes, dtype="object").to_numpy(),
            "error": pd.Series(
                [failure_text(failures[i]) if i in failures else None for i in ids],
                dtype="object",
            ).to_numpy(),
            "detail": orders["drift"].to_numpy(),
            "salesforce_ids": orders["salesforce_ids"].to_numpy(),
            **{
                column: pd.Series(
                    [written.get(i, {}).get(sobject) for i in ids], dtype="object"
                ).to_numpy()
                for column, sobject in WRITTEN_OBJECTS.items()
            },
        },
        columns=list(REPORT_COLUMNS),
    )
    orphan_table = pd.DataFrame(
        {
            "order_id": orphans["order_id"].to_numpy(),
            "order_name": orphans["name"].to_numpy(),
            "status": ["orphan"] * len(orphans),
            "outcome": [REPORTED] * len(orphans),
            "detail": [f"Salesforce-only Opportunity (Amount {a})" for a in orphans["amount"]],
            "salesforce_ids": orphans["sf_id"].to_numpy(),
        },
        columns=list(REPORT_COLUMNS),
    ).astype(object)
    if orphan_table.empty:
        return failed_first(table)
    if table.empty:
        return orphan_table
    return failed_first(pd.concat([table, orphan_table], ignore_index=True))


def failed_first(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its ``failed`` rows first, every other row in its order."""
    if table.empty:
        return table.reset_index(drop=True)
    rank = (table["outcome"] != "failed").astype(int)
    return table.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
