"""Reconcile's frames: what Salesforce should hold (the expected frame, one row per Shopify
order) and what it holds (Opportunities, Accounts and Contacts read back), built column by column
(one Python list per column, turned into a DataFrame once), so a 100,000-order window costs a few
short strings per order, never a dict per row. Pure; the diff of the frames is
:mod:`tasks.core.diff`.

Which fields are compared is the mapping tables' (:func:`tasks.core.mapping_table.compared_rules`):
every mapped field the configuration owns, for Account, Contact and Opportunity, including the
fields added by configuration. Values are :func:`tasks.core.mapping_table.comparable` text (money
in cents, e-mails case-folded…).

Expected frame (from :func:`tasks.core.mapping.map_order`): columns ``order_id, order_name,
account_key, contact_key, guest_email, stage, updated_at`` and one column ``<Object>.<Field>``
per compared field. ``guest_email`` is the e-mail a guest's Contact is found by (set only for a
guest whose Contact is written: it has no key). ``stage`` is only set when a cancellation may
move ``StageName`` (``mapping.cancellation_updates_stage``). The Account and Contact values of
orders sharing a customer are those the webhook path leaves behind: per field, the newest
order's value, or an older one's where the newest has none (absent means "leave alone"); a
guest's orders share their Contact by e-mail, as the webhook path finds it. A placeholder
standing in for redacted buyer data (:class:`~tasks.core.buyer.Placeholder`) is absent too: it is
create-only, so a real name Salesforce holds is not drift.

Actual frames: Opportunities (columns ``sf_id, order_id, name, amount, stage, close_date,
currency, account_key, contact_id`` and ``Opportunity.<Field>``), and Accounts and Contacts read
back by external id (columns ``key, sf_id`` and ``<Object>.<Field>``). Guests' Contacts are read
back by ``Id``, the Opportunity's ``ContactId`` (:class:`RecordColumns` with ``by_id``: ``key`` is
the Id, ``external_key`` the external id a customer's Contact carries).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tasks.core.buyer import Placeholder
from tasks.core.mapping import (
    ACCOUNT,
    CONTACT,
    OPPORTUNITY,
    MappingConfig,
    OrgSchema,
    SalesforceRecords,
)
from tasks.core.mapping_table import FieldRule, comparable, compared_rules, money_text

__all__ = [
    "ACTUAL_COLUMNS",
    "BY_ID_COLUMNS",
    "EXPECTED_COLUMNS",
    "RECORD_COLUMNS",
    "ActualColumns",
    "ExpectedColumns",
    "RecordColumns",
    "column",
    "opportunity_fields",
    "readback_fields",
]

EXPECTED_COLUMNS = (
    "order_id",
    "order_name",
    "account_key",
    "contact_key",
    "guest_email",
    "stage",
    "updated_at",
)
ACTUAL_COLUMNS = (
    "sf_id",
    "order_id",
    "name",
    "amount",
    "stage",
    "close_date",
    "currency",
    "account_key",
    "contact_id",
)
RECORD_COLUMNS = ("key", "sf_id")
BY_ID_COLUMNS = ("key", "sf_id", "external_key")
RELATED = (ACCOUNT, CONTACT)  # read back by external id, beside the Opportunities


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text != "" else None


def _expected(rule: FieldRule, body: Mapping[str, Any]) -> Any:
    """The comparable value a body expects (None, never drift: absent, or a placeholder)."""
    value = body.get(rule.field)
    return None if isinstance(value, Placeholder) else comparable(rule.kind, value)


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
    if compared_rules(CONTACT, config, org):  # a guest's Contact is read back by this Id
        fields.append("ContactId")
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
        guest_email = None
        if records.contact is not None and contact_key is None:
            guest_email = records.contact_lookup_email
        row = (
            records.order_key,
            order_name or records.order_key,
            records.account_key,
            contact_key,
            guest_email,
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
                self.columns[column(sobject, rule.field)].append(_expected(rule, body))

    def __len__(self) -> int:
        return len(self.columns["order_id"])

    def frame(self) -> pd.DataFrame:
        """The expected frame (the last row wins when an order was added twice)."""
        frame = _frame(self.columns, list(self.columns))
        frame = frame.drop_duplicates("order_id", keep="last").reset_index(drop=True)
        for sobject, key in (
            (ACCOUNT, "account_key"),
            (CONTACT, "contact_key"),
            (CONTACT, "guest_email"),
        ):
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


class _RowColumns:
    """What :class:`ActualColumns` and :class:`RecordColumns` share: columns accumulated from
    Salesforce rows (REST JSON or Bulk CSV dicts), each record once (by ``Id``)."""

    columns: dict[str, list[Any]]
    _seen: set[str]

    def add(self, row: Mapping[str, Any]) -> bool:  # pragma: no cover - every subclass has one
        """Add one row; whether it was new."""
        raise NotImplementedError

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Add many rows; returns how many were new."""
        return sum(1 for row in rows if self.add(row))

    def __len__(self) -> int:
        return len(self.columns["sf_id"])

    def frame(self) -> pd.DataFrame:
        """One row per record."""
        return _frame(self.columns, list(self.columns))

    def _first(self, sf_id: str | None) -> bool:
        """Whether a record with this Id is to be added (it has one, not seen before)."""
        if sf_id is None or sf_id in self._seen:
            return False
        self._seen.add(sf_id)
        return True

    def _add_values(self, sobject: str, rules: Sequence[FieldRule], row: Mapping[str, Any]) -> None:
        for rule in rules:
            self.columns[column(sobject, rule.field)].append(
                comparable(rule.kind, row.get(rule.field))
            )


@dataclass
class ActualColumns(_RowColumns):
    """Accumulates the actual frame from Salesforce Opportunity rows."""

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
        if not self._first(sf_id):
            return False
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
            _text(row.get("ContactId")),
        )
        for name, value in zip(ACTUAL_COLUMNS, values, strict=True):
            self.columns[name].append(value)
        self._add_values(OPPORTUNITY, self.rules, row)
        return True


@dataclass
class RecordColumns(_RowColumns):
    """Accumulates Accounts or Contacts read back by external id, or (``by_id``: guests'
    Contacts) by ``Id``: then ``key`` is the Id and ``external_key`` the record's external id,
    if it has one."""

    sobject: str
    config: MappingConfig
    org: OrgSchema | None = None
    by_id: bool = False
    rules: list[FieldRule] = field(init=False)
    columns: dict[str, list[Any]] = field(init=False)
    _seen: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rules = compared_rules(self.sobject, self.config, _org(self.org, False))
        first = BY_ID_COLUMNS if self.by_id else RECORD_COLUMNS
        names = [*first, *_value_columns({self.sobject: self.rules})]
        self.columns = {name: [] for name in names}

    def add(self, row: Mapping[str, Any]) -> bool:
        """Add one record; records already added (same ``Id``) or without a key are skipped."""
        sf_id = _text(row.get("Id"))
        external = _text(row.get(self.config.key_field(self.sobject)))
        key = sf_id if self.by_id else external
        if key is None or not self._first(sf_id):
            return False
        self.columns["key"].append(key)
        self.columns["sf_id"].append(sf_id)
        if self.by_id:
            self.columns["external_key"].append(external)
        self._add_values(self.sobject, self.rules, row)
        return True


def _frame(columns: Mapping[str, list[Any]], names: Sequence[str]) -> pd.DataFrame:
    data = {name: pd.Series(columns[name], dtype="object") for name in names}
    return pd.DataFrame(data, columns=list(names))
