"""Reconciliation, the pure part: what Salesforce should hold, what it holds, the difference, and
the repair plan. No I/O here: the flow feeds mapped orders and Salesforce rows in, and sends the
plan out.

Frames are built column by column (one Python list per column, turned into a DataFrame once), so
a 100,000-order window costs a few short strings per order, never a dict per row.

Expected frame (one row per Shopify order, from :func:`tasks.mapping.map_order`), columns
``order_id, order_name, account_key, name, amount, currency, stage`` where ``amount`` is the owned
``Opportunity.Amount`` as fixed-point text rounded to cents and ``stage`` is only set when a
cancellation may move ``StageName`` (``mapping.cancellation_updates_stage``).

Actual frame (one row per Salesforce Opportunity), columns ``sf_id, order_id, name, amount,
stage, close_date, currency, account_key``.

Outcomes per order: ``in_sync``, ``missing`` (no Opportunity), ``drifted`` (an owned field
differs; details ``Field: salesforce → shopify``) and ``duplicate`` (several Opportunities share
the order id). Opportunities whose order is not in the window are orphan *candidates*: the flow
asks Shopify whether it still has them, and :func:`confirm_orphans` keeps the ones it does not.
Create-only fields (StageName after create, CloseDate, OwnerId, ContactId) are never drift,
except StageName of a cancelled order when the mapping lets a cancellation move the stage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import pandas as pd

from tasks.mapping import (
    ACCOUNT,
    CONTACT,
    OPPORTUNITY,
    MappingConfig,
    OrgSchema,
    SalesforceRecords,
    update_body,
)

__all__ = [
    "ACTUAL_COLUMNS",
    "EXPECTED_COLUMNS",
    "STATUSES",
    "ActualColumns",
    "DiffResult",
    "ExpectedColumns",
    "RepairPlan",
    "confirm_orphans",
    "diff",
    "money_text",
    "opportunity_fields",
    "plan_repair",
]

STATUSES = ("in_sync", "missing", "drifted", "duplicate")
EXPECTED_COLUMNS = ("order_id", "order_name", "account_key", "name", "amount", "currency", "stage")
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
CENT = Decimal("0.01")
ARROW = " → "


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def money_text(value: Any) -> str | None:
    """Money as fixed-point text rounded to cents (``"12.30"``); ``None`` for blank/invalid.

    Accepts Decimal, int, str (Bulk CSV cells) and float (REST JSON numbers, via ``repr`` so that
    ``59.9`` stays ``59.90``, not ``59.899999…``).
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, Decimal):
            amount = value
        elif isinstance(value, float):
            amount = Decimal(repr(value))
        else:
            text = str(value).strip()
            if not text:
                return None
            amount = Decimal(text)
        if not amount.is_finite():
            return None
        return format(amount.quantize(CENT, rounding=ROUND_HALF_UP), "f")
    except (InvalidOperation, ValueError):
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text != "" else None


def opportunity_fields(config: MappingConfig, org: OrgSchema) -> list[str]:
    """The Opportunity fields reconcile reads back (SOQL select list)."""
    fields = [
        "Id",
        config.opportunity_external_id_field,
        "Name",
        "Amount",
        "StageName",
        "CloseDate",
        f"Account.{config.account_external_id_field}",
    ]
    if org.multi_currency:
        fields.append("CurrencyIsoCode")
    return fields


# --------------------------------------------------------------------------------------------
# Frame builders (column arrays)
# --------------------------------------------------------------------------------------------


@dataclass
class ExpectedColumns:
    """Accumulates the expected frame one mapped order at a time."""

    config: MappingConfig
    multi_currency: bool = False
    columns: dict[str, list[Any]] = field(
        default_factory=lambda: {name: [] for name in EXPECTED_COLUMNS}
    )

    def add(self, order_name: str | None, records: SalesforceRecords) -> None:
        """Add one order from its mapped records."""
        opportunity = records.opportunity
        stage = None
        if records.cancelled and self.config.cancellation_updates_stage:
            stage = self.config.stage_when_cancelled
        currency = opportunity.get("CurrencyIsoCode") if self.multi_currency else None
        row = (
            records.order_key,
            order_name or records.order_key,
            records.account_key,
            _text(opportunity.get("Name")),
            money_text(opportunity.get("Amount")),
            _text(currency),
            stage,
        )
        for name, value in zip(EXPECTED_COLUMNS, row, strict=True):
            self.columns[name].append(value)

    def __len__(self) -> int:
        return len(self.columns["order_id"])

    def frame(self) -> pd.DataFrame:
        """The expected frame (the last row wins when an order was added twice)."""
        frame = _frame(self.columns, EXPECTED_COLUMNS)
        return frame.drop_duplicates("order_id", keep="last").reset_index(drop=True)


@dataclass
class ActualColumns:
    """Accumulates the actual frame from Salesforce rows (REST JSON or Bulk CSV dicts)."""

    config: MappingConfig
    columns: dict[str, list[Any]] = field(
        default_factory=lambda: {name: [] for name in ACTUAL_COLUMNS}
    )
    _seen: set[str] = field(default_factory=set)

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
        return True

    def extend(self, rows: Iterable[Mapping[str, Any]]) -> int:
        """Add many rows; returns how many were new."""
        return sum(1 for row in rows if self.add(row))

    def __len__(self) -> int:
        return len(self.columns["sf_id"])

    def frame(self) -> pd.DataFrame:
        """The actual frame."""
        return _frame(self.columns, ACTUAL_COLUMNS)


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
        return self.orders.loc[self.orders["status"] == status, "order_id"].tolist()

    def drift_fields(self) -> dict[str, list[str]]:
        """Drifted order id → the fields that differ."""
        drifted = self.orders[self.orders["status"] == "drifted"]
        return {
            oid: fields.split(",")
            for oid, fields in zip(drifted["order_id"], drifted["drift_fields"], strict=True)
        }


def _differs(left: pd.Series, right: pd.Series) -> pd.Series:
    return left.fillna("").astype(str) != right.fillna("").astype(str)


def diff(
    expected: pd.DataFrame,
    actual: pd.DataFrame,
    *,
    compare_currency: bool = False,
) -> DiffResult:
    """Compare what Salesforce should hold with what it holds.

    Compared (owned) fields: ``Name``, ``Amount`` (cents), ``CurrencyIsoCode`` when
    ``compare_currency``, the Account link (``Account``: the Account's external id) and
    ``StageName`` only where the expected frame sets ``stage`` (a cancelled order whose
    cancellation may move the stage). Nothing else is ever drift.
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

    checks: list[tuple[str, pd.Series, pd.Series, pd.Series]] = [
        ("Name", orders["name"], act["name"], pd.Series(True, index=orders.index)),
        ("Amount", orders["amount"], act["amount"], pd.Series(True, index=orders.index)),
        ("Account", orders["account_key"], act["account_key"], pd.Series(True, index=orders.index)),
        ("StageName", orders["stage"], act["stage"], orders["stage"].notna()),
    ]
    if compare_currency:
        checks.append(
            ("CurrencyIsoCode", orders["currency"], act["currency"], orders["currency"].notna())
        )

    present = count == 1
    fields = pd.Series("", index=orders.index, dtype="object")
    details = pd.Series("", index=orders.index, dtype="object")
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
        }
    )
    return DiffResult(orders=result, candidates=candidates)


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
    """Records to write per object, in write order, each list unique by external id.

    ``accounts`` and ``contacts`` go first; ``opportunities`` link their Account (and, on create,
    their Contact) through the parent's external id, so they must be written last. The ``*_orders``
    maps say which orders a record's failure affects.
    """

    accounts: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, Any]] = field(default_factory=list)
    opportunities: list[dict[str, Any]] = field(default_factory=list)
    account_orders: dict[str, list[str]] = field(default_factory=dict)
    contact_orders: dict[str, list[str]] = field(default_factory=dict)
    actions: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Records per object and orders per action (``create`` / ``update``)."""
        return {
            "accounts": len(self.accounts),
            "contacts": len(self.contacts),
            "opportunities": len(self.opportunities),
            "create": sum(1 for a in self.actions.values() if a == "create"),
            "update": sum(1 for a in self.actions.values() if a == "update"),
        }

    def __len__(self) -> int:
        return len(self.accounts) + len(self.contacts) + len(self.opportunities)

    def without_orders(self, order_ids: Iterable[str], config: MappingConfig) -> RepairPlan:
        """The plan without the Opportunities of these orders (their parents failed)."""
        drop = set(order_ids)
        key = config.key_field(OPPORTUNITY)
        return RepairPlan(
            accounts=self.accounts,
            contacts=self.contacts,
            opportunities=[r for r in self.opportunities if str(r.get(key)) not in drop],
            account_orders=self.account_orders,
            contact_orders=self.contact_orders,
            actions={k: v for k, v in self.actions.items() if k not in drop},
        )


def _reference(sobject: str, key_field: str, key: str) -> dict[str, Any]:
    return {"attributes": {"type": sobject}, key_field: key}


def plan_repair(
    items: Iterable[tuple[str, SalesforceRecords, Sequence[str]]], config: MappingConfig
) -> RepairPlan:
    """Build the repair plan from ``(status, mapped records, drift fields)`` per order.

    ``missing`` orders get full create bodies for Account, Contact (when it has a key; a guest's
    Contact is found by e-mail on the webhook path and is left out here) and Opportunity, the
    Opportunity linked to both by external id. ``drifted`` orders get the Opportunity's owned
    fields only (plus StageName for a cancellation), and their Account when the link drifted.
    Later items win for a shared Account or Contact key (pass orders oldest update first).
    """
    account_field = config.key_field(ACCOUNT)
    contact_field = config.key_field(CONTACT)
    accounts: dict[str, dict[str, Any]] = {}
    contacts: dict[str, dict[str, Any]] = {}
    opportunities: dict[str, dict[str, Any]] = {}
    plan = RepairPlan()
    for status, records, drift_fields in items:
        order_id = records.order_key
        account_ref = _reference(ACCOUNT, account_field, records.account_key)
        if status == "missing":
            body = dict(records.opportunity)
            body["Account"] = account_ref
            if records.contact is not None and records.contact_key is not None:
                contact = dict(records.contact)
                contact["Account"] = _reference(ACCOUNT, account_field, records.account_key)
                contacts[records.contact_key] = contact
                plan.contact_orders.setdefault(records.contact_key, []).append(order_id)
                body["Contact"] = _reference(CONTACT, contact_field, records.contact_key)
            action = "create"
        elif status == "drifted":
            body = update_body(
                OPPORTUNITY, records.opportunity, config, cancelled=records.cancelled
            )
            if "Account" not in drift_fields:
                opportunities[order_id] = body
                plan.actions[order_id] = "update"
                continue
            body["Account"] = account_ref
            action = "update"
        else:
            continue
        accounts[records.account_key] = dict(records.account)
        plan.account_orders.setdefault(records.account_key, []).append(order_id)
        opportunities[order_id] = body
        plan.actions[order_id] = action
    plan.accounts = list(accounts.values())
    plan.contacts = list(contacts.values())
    plan.opportunities = list(opportunities.values())
    return plan


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
    Salesforce reported for that record (``errors``)."""

    order_id: str
    stage: str
    code: str
    message: str
    fields: tuple[str, ...] = ()
    transient: bool = False
    errors: tuple[Any, ...] = ()  # RecordError


def failures_by_order(
    results: Iterable[Any],
    orders_of: Mapping[str, Sequence[str]] | None,
    stage: str,
    transient_codes: frozenset[str],
) -> dict[str, Failure]:
    """Failed ``RecordResult``s → the orders they affect (``orders_of`` maps key → orders;
    ``None`` means the key is the order id)."""
    found: dict[str, Failure] = {}
    for result in results:
        if result.success:
            continue
        first = result.errors[0] if result.errors else None
        code = first.code if first else "UNKNOWN_ERROR"
        failure_fields = tuple(first.fields) if first else ()
        message = first.message if first else "Salesforce reported a failure without a reason"
        affected = [result.key] if orders_of is None else orders_of.get(result.key, [])
        for order_id in affected:
            found.setdefault(
                order_id,
                Failure(
                    order_id,
                    stage,
                    code,
                    message,
                    failure_fields,
                    transient=code in transient_codes,
                    errors=tuple(result.errors),
                ),
            )
    return found


def discrepancy_rows(
    result: DiffResult, orphans: pd.DataFrame, failures: Mapping[str, Failure]
) -> pd.DataFrame:
    """Every discrepancy as one table: non-``in_sync`` orders, then orphans."""
    orders = result.orders[result.orders["status"] != "in_sync"]
    table = pd.DataFrame(
        {
            "order_id": orders["order_id"].to_numpy(),
            "order_name": orders["order_name"].to_numpy(),
            "status": orders["status"].to_numpy(),
            "detail": orders["drift"].to_numpy(),
            "salesforce_ids": orders["salesforce_ids"].to_numpy(),
        }
    )
    if failures:
        table["repair_error"] = table["order_id"].map(
            {k: f"{f.stage}: {f.code}: {f.message}" for k, f in failures.items()}
        )
    else:
        table["repair_error"] = pd.Series([None] * len(table), dtype="object")
    orphan_table = pd.DataFrame(
        {
            "order_id": orphans["order_id"].to_numpy(),
            "order_name": orphans["name"].to_numpy(),
            "status": ["orphan"] * len(orphans),
            "detail": [f"Salesforce-only Opportunity (Amount {a})" for a in orphans["amount"]],
            "salesforce_ids": orphans["sf_id"].to_numpy(),
            "repair_error": [None] * len(orphans),
        }
    )
    if orphan_table.empty:
        return table.reset_index(drop=True)
    if table.empty:
        return orphan_table
    return pd.concat([table, orphan_table], ignore_index=True)
