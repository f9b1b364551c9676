"""Reconciliation's diff, pure: the expected frame against the frames read back from Salesforce
(:mod:`tasks.core.diff_columns`), order by order. The repair plan is
:mod:`tasks.core.repair_plan`, the report table :mod:`tasks.core.diff_report`.

Outcomes per order: ``in_sync``, ``missing`` (no Opportunity), ``drifted`` (an owned field of
its Opportunity, Account or Contact differs; details ``Field: salesforce → shopify``, Account and
Contact fields prefixed ``Account.`` / ``Contact.``) and ``duplicate`` (several Opportunities
share the order id). Opportunities whose order is not in the window are orphan *candidates*:
the flow asks Shopify whether it still has them, and :func:`confirm_orphans` keeps the ones it
does not. Create-only fields (StageName after create, CloseDate, OwnerId, ContactId) are never
drift, except StageName of a cancelled order when the mapping lets a cancellation move the stage.
A value Shopify does not have (blank) is never drift.

A guest's Contact has no key: it is the Contact the webhook path linked the guest's Opportunity
to (found by e-mail, or created), so it is read back by the Opportunity's ``ContactId`` and
compared with the guest's values (a Contact carrying a customer's key is that customer's, compared
through its key, not as a guest's).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tasks.core.mapping import ACCOUNT, CONTACT, OPPORTUNITY

__all__ = ["STATUSES", "DiffResult", "confirm_orphans", "diff"]

STATUSES = ("in_sync", "missing", "drifted", "duplicate")
ARROW = " → "


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
        Account link drifted), and distinct Accounts and Contacts (keyed, or guests' by Id)
        with a drifted field."""
        drifted = self.orders[self.orders["status"] == "drifted"]
        split = drifted["drift_fields"].str.split(",")
        counts = {OPPORTUNITY: int(split.map(lambda f: any("." not in n for n in f)).sum())}
        guests = _optional(drifted, "guest_contact_id").map(lambda v: f"Id:{v}" if v else None)
        contacts = drifted["contact_key"].where(drifted["contact_key"].notna(), guests)
        for sobject, keys in ((ACCOUNT, drifted["account_key"]), (CONTACT, contacts)):
            touched = split.map(lambda f, s=sobject: any(n.startswith(f"{s}.") for n in f))
            counts[sobject] = int(keys[touched].nunique())
        return counts

    def guest_contacts(self) -> dict[str, str]:
        """Drifted order id → the Id of its guest's Contact, for the orders whose guest Contact
        drifted (it has no key: the repair updates it by Id)."""
        drifted = self.orders[self.orders["status"] == "drifted"]
        touched = (
            drifted["drift_fields"]
            .str.split(",")
            .map(lambda f: any(n.startswith(f"{CONTACT}.") for n in f))
        )
        rows = drifted[touched & _optional(drifted, "guest_contact_id").notna()]
        return dict(zip(rows["order_id"], rows["guest_contact_id"], strict=True))

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
    guest_contacts: pd.DataFrame | None = None,
) -> DiffResult:
    """Compare what Salesforce should hold with what it holds.

    Compared: every ``Opportunity.<Field>`` column the expected and actual frames share
    (``CurrencyIsoCode`` only with ``compare_currency``), the Account link (``Account``: the
    Account's external id), ``StageName`` only where the expected frame sets ``stage`` (a
    cancelled order whose cancellation may move the stage), and, for an order whose Opportunity
    exists, every ``Account.<Field>`` / ``Contact.<Field>`` column against the record read back
    by its key (``accounts`` / ``contacts``: :class:`RecordColumns` frames; ``None``: not
    compared), and a guest's ``Contact.<Field>`` columns against the Contact its Opportunity's
    ``ContactId`` names (``guest_contacts``: a ``by_id`` :class:`RecordColumns` frame; one with
    an external id is a customer's and is skipped). A blank expected value is never drift;
    nothing else is ever drift.
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
    guest_ids = _guest_contact_ids(orders, act, guest_contacts)
    if guest_contacts is not None:
        checks += _record_checks(CONTACT, orders, guest_ids, guest_contacts)
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
            "guest_contact_id": guest_ids.to_numpy(),
        }
    )
    return DiffResult(orders=result, candidates=candidates)


def _optional(frame: pd.DataFrame, name: str) -> pd.Series:
    if name in frame.columns:
        return frame[name]
    return pd.Series(None, index=frame.index, dtype="object")


def _guest_contact_ids(
    orders: pd.DataFrame, act: pd.DataFrame, guest_contacts: pd.DataFrame | None
) -> pd.Series:
    """Per order, the Id of its guest's Contact read back (the Opportunity's ``ContactId``),
    None for a customer's order, an order without a Contact, or a Contact not read back or
    carrying a customer's key."""
    none = pd.Series(None, index=orders.index, dtype="object")
    if guest_contacts is None or "contact_id" not in act.columns:
        return none
    guest = _optional(orders, "guest_email").notna() & _optional(orders, "contact_key").isna()
    unkeyed = guest_contacts.loc[guest_contacts["external_key"].isna(), "key"]
    ids = act["contact_id"].where(guest & act["contact_id"].isin(set(unkeyed)))
    return ids.astype("object").where(ids.notna(), None)


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
