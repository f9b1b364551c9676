"""Reconciliation's repair plan, pure: from the diff's ``missing`` and ``drifted`` orders to the
records to write per object, in write order (Accounts, Contacts, Opportunities), and the
re-check just before a write (:func:`still_due`) that keeps an older state from overwriting what
the webhook path wrote meanwhile. The flow writes the plan (``flows/reconcile_write.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from tasks.core.adoption import contact_to_adopt
from tasks.core.buyer import Placeholder
from tasks.core.mapping import (
    ACCOUNT,
    CONTACT,
    OPPORTUNITY,
    MappingConfig,
    SalesforceRecords,
    has_placeholder,
    update_body,
)

__all__ = [
    "LedgerState",
    "RepairPlan",
    "opportunity_update",
    "placeholder_keys",
    "plan_repair",
    "still_due",
]


@dataclass
class RepairPlan:
    """Records to write per object, in write order, each list unique by its key.

    ``accounts`` go first, then the Contacts: ``contacts`` upserted by external id, ``adoptions``
    (existing Contacts found by e-mail, updated by ``Id``; a customer's gets our external id) and
    ``guest_contacts`` (guests' Contacts to create, one per e-mail). ``opportunities`` link their
    Account (and, on create, their Contact) through the parent's external id, or through
    ``ContactId`` for a guest, so they are written last; a guest Contact created by this plan
    gives its new Id to the Opportunities of ``guest_orders``. A drifted guest's Contact (no key)
    is updated by ``Id`` among the ``adoptions`` (``guest_updates`` names those that are only
    that). The ``*_orders`` maps say which orders a record's failure affects.
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
    guest_updates: list[str] = field(default_factory=list)  # Ids of drifted guests' Contacts

    def counts(self) -> dict[str, int]:
        """Records per object and orders per action (``create`` / ``update``)."""
        return {
            "accounts": len(self.accounts),
            "contacts": len(self.contacts) + len(self.adoptions) + len(self.guest_contacts),
            "adopted_contacts": len(self.adoptions) - len(self.guest_updates),
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
    existing: Mapping[str, Collection[str]] = field(default_factory=dict)
    guest_contacts: Mapping[str, str] = field(default_factory=dict)  # order → guest's Contact
    plan: RepairPlan = field(default_factory=RepairPlan)
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    contacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    adoptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    guests: dict[str, dict[str, Any]] = field(default_factory=dict)
    opportunities: dict[str, dict[str, Any]] = field(default_factory=dict)
    adopted_by: dict[str, str] = field(default_factory=dict)  # customer key → adopted Id
    drift_only: dict[str, None] = field(default_factory=dict)  # guest Contact Ids, in order
    new_by_email: dict[str, str] = field(default_factory=dict)  # e-mail → new keyed Contact

    def add(self, status: str, records: SalesforceRecords, drift_fields: Sequence[str]) -> None:
        order_id = records.order_key
        if status == "missing":
            body = dict(records.opportunity)
            body["Account"] = _reference(
                ACCOUNT, self.config.key_field(ACCOUNT), records.account_key
            )
            self._contact(records, body)
            self._account(records, self._whole_account(records))
            action = "create"
        elif status == "drifted":
            relink = "Account" in drift_fields
            body = opportunity_update(records, self.config, relink=relink)
            if relink:
                self._account(records, self._whole_account(records))
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

    def _exists(self, sobject: str, key: str) -> bool:
        return key in self.existing.get(sobject, ())

    def _whole_account(self, records: SalesforceRecords) -> dict[str, Any]:
        """The Account's whole body, upserted by key; its owned fields only when Salesforce is
        known to have the Account (placeholders and create-only fields are Salesforce users'
        after create: a real name there stays)."""
        if self._exists(ACCOUNT, records.account_key):
            return update_body(ACCOUNT, records.account, self.config)
        return dict(records.account)

    def _account(self, records: SalesforceRecords, body: dict[str, Any]) -> None:
        """Plan an Account write (merged with one planned for an earlier order: later values
        win, a field the later body lacks keeps the earlier value, as on the webhook path)."""
        _merge(self.accounts.setdefault(records.account_key, {}), body)
        self.plan.account_orders.setdefault(records.account_key, []).append(records.order_key)

    def _drifted_contact(self, records: SalesforceRecords) -> None:
        """Plan the owned fields of a drifted Contact, upserted by its key; a guest's (no key)
        updated by the Id its Opportunity links (``guest_contacts``)."""
        key = records.contact_key
        if records.contact is None:
            return
        if key is None:
            self._drifted_guest(records)
            return
        body = update_body(CONTACT, records.contact, self.config)
        _merge(self.contacts.setdefault(key, {}), body)
        self.plan.contact_orders.setdefault(key, []).append(records.order_key)

    def _drifted_guest(self, records: SalesforceRecords) -> None:
        """Plan the owned fields of a drifted guest's Contact, updated by ``Id`` (merged with
        what this plan already writes there: later values win)."""
        contact_id = self.guest_contacts.get(records.order_key)
        if contact_id is None or records.contact is None:
            return
        body = update_body(CONTACT, records.contact, self.config)
        if contact_id not in self.adoptions:
            self.drift_only[contact_id] = None
        _merge(self.adoptions.setdefault(contact_id, {}), body)
        self.adoptions[contact_id]["Id"] = contact_id
        self.plan.adoption_orders.setdefault(contact_id, []).append(records.order_key)

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
            if exists or self._exists(CONTACT, key):  # an existing Contact: owned fields only
                body = update_body(CONTACT, body, self.config)
                exists = True
            self.contacts[key] = self._with_account(body, records) if not exists else body
            self.plan.contact_orders.setdefault(key, []).append(order_id)
            opportunity["Contact"] = _reference(CONTACT, key_field, key)
            self.new_by_email.setdefault(lookup, key)
            return
        if adopt is None:  # a guest nobody knows yet: one new Contact per e-mail
            body = self.guests.get(lookup) or {}
            if body:  # a later order of the guest: its values win (not the e-mail's spelling)
                _merge(body, {k: v for k, v in records.contact.items() if k != "Email"})
            else:
                body = self.guests[lookup] = self._with_account(dict(records.contact), records)
            self.plan.guest_orders.setdefault(str(body.get("Email")), []).append(order_id)
            return
        self._adopt(adopt, records)
        if key is not None:
            opportunity["Contact"] = _reference(CONTACT, key_field, key)
        else:
            self.plan.linked_contacts[order_id] = adopt

    def _adopt(self, contact_id: str, records: SalesforceRecords) -> None:
        """Update the existing Contact by Id; a customer's gets our key. Like the webhook path,
        an existing Contact keeps its Account unless ``AccountId`` is not create-only, and its
        real name (no placeholder of redacted buyer data is written over it)."""
        body = update_body(CONTACT, records.contact or {}, self.config)  # it exists: owned only
        key_field = self.config.key_field(CONTACT)
        if records.contact_key is not None:
            body[key_field] = records.contact_key
            self.adopted_by[records.contact_key] = contact_id
        elif contact_id in self.adopted_by.values():
            body = {}  # a customer adopts this Contact in the same plan: leave it to that one
        if body and "AccountId" not in self.config.create_only_fields.get(CONTACT, []):
            body = self._with_account(body, records)
        if records.contact_key is None and contact_id in self.adoptions:
            # a later order of the guest: its values win, as on the webhook path
            _merge(self.adoptions[contact_id], body)
        elif body or contact_id not in self.adoptions:
            self.adoptions[contact_id] = {**body, "Id": contact_id}
        self.drift_only.pop(contact_id, None)
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
        self.plan.guest_updates = list(self.drift_only)
        self.plan.guest_contacts = list(self.guests.values())
        self.plan.opportunities = list(self.opportunities.values())
        return self.plan


def _merge(planned: dict[str, Any], body: Mapping[str, Any]) -> None:
    """Later values win, except that a placeholder (:class:`~tasks.core.buyer.Placeholder`,
    create-only) never replaces a real value planned for an earlier order of the customer."""
    for name, value in body.items():
        earlier = planned.get(name)
        if isinstance(value, Placeholder) and earlier and not isinstance(earlier, Placeholder):
            continue
        planned[name] = value


def placeholder_keys(
    items: Iterable[tuple[str, SalesforceRecords, Sequence[str]]],
) -> list[tuple[str, str]]:
    """``(object, external id)`` of the Accounts and Contacts the plan would write whole
    although their bodies carry a placeholder (the Account of a ``missing`` order, or of a
    ``drifted`` one whose Account link drifted; the keyed Contact of a ``missing`` order):
    whether Salesforce has them decides whether the placeholders go (see :func:`plan_repair`).
    Each once, in order."""
    found: dict[tuple[str, str], None] = {}
    for status, records, drift_fields in items:
        whole_account = status == "missing" or (status == "drifted" and "Account" in drift_fields)
        if whole_account and has_placeholder(records.account):
            found[(ACCOUNT, records.account_key)] = None
        contact_key = records.contact_key
        if status == "missing" and contact_key is not None and has_placeholder(records.contact):
            found[(CONTACT, contact_key)] = None
    return list(found)


def plan_repair(
    items: Iterable[tuple[str, SalesforceRecords, Sequence[str]]],
    config: MappingConfig,
    contacts: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    existing: Mapping[str, Collection[str]] | None = None,
    guest_contacts: Mapping[str, str] | None = None,
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
    ``Contact.`` field drifted (the Opportunity's ``ContactId`` is create-only and never sent);
    a guest's Contact, which has no key, updated by the Id ``guest_contacts`` gives (drifted
    order → the Contact its Opportunity links: :meth:`~tasks.core.diff.DiffResult.guest_contacts`).
    Later items win for a shared key (pass oldest update first).

    ``existing`` (per object, the keys Salesforce has, asked for :func:`placeholder_keys`):
    an Account or Contact written whole that exists gets no placeholder standing in for
    redacted buyer data, so a real name there stays; one that does not is created with them.
    """
    planner = _Planner(config, contacts or {}, existing or {}, guest_contacts or {})
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
