"""Reconcile, steps 2 and 3 (read, diff): read the window's records back from Salesforce (the
Opportunities of the listed orders and those closing in the window; the Accounts and Contacts
of the orders whose Opportunity exists: by external id, and a guest's Contact, which has no key,
by the Id its Opportunity's ``ContactId`` names), then diff them with the expected frame
(:func:`tasks.core.diff.diff`) and confirm the orphan candidates with Shopify.

The adapter chooses how to read (:meth:`~tasks.salesforce.port.SalesforcePort.records`: SOQL
``IN`` chunks for small sets of keys, one Bulk 2.0 query above).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from flows.reconcile_list import Listed, Listing
from flows.reconcile_run import Request
from tasks.core.diff import DiffResult, confirm_orphans, diff
from tasks.core.diff_columns import (
    ActualColumns,
    RecordColumns,
    opportunity_fields,
    readback_fields,
)
from tasks.core.mapping import ACCOUNT, CONTACT, OPPORTUNITY
from tasks.core.reconcile_window import close_date_range
from tasks.reporting.progress import report as report_progress
from tasks.runtime import Runtime
from tasks.salesforce import SalesforcePort
from tasks.salesforce.port import read_path
from tasks.shopify.port import ShopifyPort
from tasks.steps import retry_if_transient, with_retries
from tasks.sync import SyncContext


@dataclass(frozen=True)
class Customers:
    """The Accounts and Contacts read back (:class:`~tasks.core.diff_columns.RecordColumns`
    frames)."""

    accounts: pd.DataFrame
    contacts: pd.DataFrame
    read_path: str = "soql"
    guests: pd.DataFrame | None = None  # guests' Contacts, read by Id (``by_id`` columns)

    def counts(self) -> dict[str, int]:
        """Records read back per object (guests' Contacts among the Contacts)."""
        guests = 0 if self.guests is None else len(self.guests)
        return {ACCOUNT: len(self.accounts), CONTACT: len(self.contacts) + guests}


@dataclass(frozen=True)
class ReadBack:
    """What Salesforce holds for the window: its Opportunities (the actual frame), the Accounts
    and Contacts of the orders it has, and how the Opportunities were read (``soql``/``bulk``)."""

    actual: pd.DataFrame
    customers: Customers
    read_path: str


@dataclass(frozen=True)
class Comparison:
    """The diff of the window, its confirmed orphans, and what the listing and the read-back
    found (the frames themselves are not kept: the repair maps the spool again)."""

    result: DiffResult
    orphans: pd.DataFrame
    listing: Listing
    read_path: str
    customers_read: Mapping[str, int]
    counts: Mapping[str, int]
    drifted_records: Mapping[str, int]


def read_back(runtime: Runtime, request: Request, ctx: SyncContext, listed: Listed) -> ReadBack:
    """Read back the Opportunities of the listed orders (and those closing in the window), then
    the Accounts and Contacts of the orders Salesforce has."""
    close_dates = close_date_range(
        request.window_start,
        request.window_end,
        ctx.shop_timezone,
        ctx.mapping.close_date_offset_days,
    )
    report_progress("diff", 0, len(listed.expected))
    actual, read_path = with_retries(read_salesforce, runtime.settings)(
        runtime.salesforce, ctx, listed.expected["order_id"].tolist(), close_dates
    )
    accounts, contacts = customer_keys(listed.expected, actual)
    customers = with_retries(read_customers, runtime.settings)(
        runtime.salesforce, ctx, accounts, contacts, guest_contact_ids(listed.expected, actual)
    )
    return ReadBack(actual, customers, read_path)


def compare(runtime: Runtime, ctx: SyncContext, listed: Listed, read: ReadBack) -> Comparison:
    """Diff what Salesforce should hold with what it holds; confirm orphans with Shopify."""
    result = diff(
        listed.expected,
        read.actual,
        compare_currency=ctx.org.multi_currency,
        accounts=read.customers.accounts,
        contacts=read.customers.contacts,
        guest_contacts=read.customers.guests,
    )
    orphans: pd.DataFrame = with_retries(confirm_orphan_candidates, runtime.settings)(
        runtime.shopify, result.candidates
    )
    report_progress("diff", len(listed.expected), len(listed.expected))
    return Comparison(
        result,
        orphans,
        listed.listing,
        read.read_path,
        read.customers.counts(),
        result.counts(),
        result.drifted_records(),
    )


@task(name="read-salesforce", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def read_salesforce(
    gateway: SalesforcePort,
    ctx: SyncContext,
    order_ids: Sequence[str],
    close_dates: tuple[date, date],
) -> tuple[pd.DataFrame, str]:
    """The Opportunities of these orders, plus those with a CloseDate in range (orphan
    candidates), and how they were read (``soql`` for small windows, ``bulk`` for large)."""
    key = ctx.mapping.key_field(OPPORTUNITY)
    fields = opportunity_fields(ctx.mapping, ctx.org)
    columns = ActualColumns(ctx.mapping, org=ctx.org)
    columns.extend(
        gateway.records(OPPORTUNITY, key, fields, keys=list(order_ids), closing=close_dates)
    )
    return columns.frame(), read_path(len(order_ids))


def customer_keys(expected: pd.DataFrame, actual: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The Account and Contact keys of the orders whose Opportunity exists: only those can
    drift (a missing order's records are written whole anyway)."""
    present = expected[expected["order_id"].isin(set(actual["order_id"].dropna()))]
    accounts = sorted(set(present["account_key"].dropna()))
    contacts = sorted(set(present["contact_key"].dropna()))
    return accounts, contacts


def guest_contact_ids(expected: pd.DataFrame, actual: pd.DataFrame) -> list[str]:
    """The Ids of the Contacts the Opportunities of guests' orders link (``ContactId``): the
    Contact the webhook path found by e-mail or created, and writes by Id, for a guest."""
    if "contact_id" not in actual.columns or "guest_email" not in expected.columns:
        return []
    guests = expected.loc[expected["guest_email"].notna(), "order_id"]
    linked = actual.loc[actual["order_id"].isin(set(guests)), "contact_id"].dropna()
    return sorted(set(linked))


@task(name="read-customers", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def read_customers(
    gateway: SalesforcePort,
    ctx: SyncContext,
    account_keys: Sequence[str],
    contact_keys: Sequence[str],
    guest_ids: Sequence[str] = (),
) -> Customers:
    """The Accounts and Contacts of these keys, with the fields the mapping owns (the adapter
    chooses SOQL ``IN`` chunks or one Bulk 2.0 query per object), and the guests' Contacts of
    these Ids (SOQL ``IN`` chunks bundled into ``/composite`` calls, 1,500 Ids a call); an
    object that owns no field is not read."""
    frames: dict[str, pd.DataFrame] = {}
    path = "soql"
    for sobject, keys in ((ACCOUNT, account_keys), (CONTACT, contact_keys)):
        columns = RecordColumns(sobject, ctx.mapping, ctx.org)
        if columns.rules:  # an object that owns no field: nothing to compare, nothing to read
            key = ctx.mapping.key_field(sobject)
            fields = readback_fields(sobject, ctx.mapping, ctx.org)
            columns.extend(gateway.records(sobject, key, fields, keys=list(keys)))
            if read_path(len(keys)) == "bulk":
                path = "bulk"
        frames[sobject] = columns.frame()
    guests = RecordColumns(CONTACT, ctx.mapping, ctx.org, by_id=True)
    if guests.rules and guest_ids:
        fields = readback_fields(CONTACT, ctx.mapping, ctx.org)
        guests.extend(gateway.records_by_ids(CONTACT, list(guest_ids), fields))
    return Customers(frames[ACCOUNT], frames[CONTACT], path, guests.frame())


@task(name="confirm-orphans", cache_policy=NO_CACHE, retry_condition_fn=retry_if_transient)
def confirm_orphan_candidates(shopify: ShopifyPort, candidates: pd.DataFrame) -> pd.DataFrame:
    """Keep the candidate Opportunities whose order Shopify does not have."""
    if candidates.empty:
        return candidates
    known = shopify.existing_order_ids(candidates["order_id"].dropna().tolist())
    return confirm_orphans(candidates, known)
