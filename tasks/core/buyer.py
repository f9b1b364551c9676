"""The buyer as the mapping sees them, and the paths a mapped field's source may walk.

:func:`buyer_of` decides whose data goes on the Account and the Contact (README, "Mapping: what
goes where"). :func:`path_kind` types an ``order.<attribute>`` / ``buyer.<attribute>`` source
against the Order model and :class:`Buyer`. Pure; used by :mod:`tasks.core.mapping_table`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tasks.core.comparable import Kind
from tasks.core.orders import MAPPABLE, Address, Customer, Money, Order

__all__ = ["Buyer", "Placeholder", "buyer_of", "first", "guest_phone", "join", "path_kind"]


class Placeholder(str):
    """A value standing in for buyer data Shopify withheld (protected customer data redacted):
    ``Shopify customer 42`` for an Account's name, ``Unknown`` for a required last name.

    Salesforce needs it to create the record, but it is create-only: an update never sends it
    (:func:`tasks.core.records.update_body`, :func:`tasks.core.records.without_placeholders`),
    so it never overwrites a real name a user or an earlier payload put there. A record the
    sync does not know to exist is asked about first (by external id, once per batch:
    :func:`tasks.core.records.placeholder_parents`, ``tasks.sync.parents_known``).
    """

    __slots__ = ()


def first(*values: str | None) -> str | None:
    """The first non-empty value."""
    return next((v for v in values if v), None)


def join(*parts: str | None, sep: str = " ") -> str | None:
    """The non-empty parts joined, or ``None``."""
    text = sep.join(p for p in parts if p)
    return text or None


def guest_phone(order: Order) -> str | None:
    """A guest's phone: the order's, else the billing address's."""
    billing = order.billing_address
    return first(order.phone, billing.phone if billing else None)


@dataclass(frozen=True, slots=True)
class Buyer:
    """The buyer as the mapping sees them, whichever source each part came from."""

    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    address: Address | None

    @property
    def full_name(self) -> str | None:
        """First and last name, or ``None``."""
        return join(self.first_name, self.last_name)

    @property
    def required_last_name(self) -> str:
        """A last name Salesforce accepts: the last name, the e-mail's local part, ``Unknown``."""
        local = self.email.split("@", 1)[0].strip() if self.email else ""
        return self.last_name or local or Placeholder("Unknown")


def _name_pair(*sources: Address | None) -> tuple[str | None, str | None]:
    for source in sources:
        if source is not None and (source.first_name or source.last_name):
            return source.first_name, source.last_name
    return None, None


def buyer_of(order: Order) -> Buyer:
    """Who bought: the customer record first, the order's own contact data as fallback.

    Whose data goes where (README, "Mapping: what goes where"): the Account and Contact describe
    the *customer*. An order's billing address, and the phone on it, may be someone else's (a
    gift, a company card), so it is used only when it is the customer's: the customer has no
    default address and the billing name is the customer's name. A guest has no customer
    record: the billing address is the only identity there is, so it is taken as theirs.
    """
    billing = order.billing_address
    customer = order.customer
    if customer is None:
        first_name, last_name = _name_pair(billing)
        return Buyer(first_name, last_name, order.email, guest_phone(order), billing)
    if customer.first_name or customer.last_name:
        first_name, last_name = customer.first_name, customer.last_name
    else:
        first_name, last_name = _name_pair(customer.default_address)
    address = customer.default_address or _if_named(billing, first_name, last_name)
    return Buyer(
        first_name=first_name,
        last_name=last_name,
        email=first(customer.email, order.email),
        phone=first(customer.phone, address.phone if address else None, order.phone),
        address=address,
    )


def _if_named(address: Address | None, first_name: str | None, last: str | None) -> Address | None:
    """``address`` when the name on it is this person's (case and spacing aside), else None."""
    own = _folded_name(first_name, last)
    if address is None or not own:
        return None
    return address if _folded_name(address.first_name, address.last_name) == own else None


def _folded_name(first_name: str | None, last: str | None) -> str:
    return " ".join(f"{first_name or ''} {last or ''}".casefold().split())


# --------------------------------------------------------------------------------------------
# Paths into the Order and the Buyer
# --------------------------------------------------------------------------------------------

_ROOTS: Mapping[str, type] = {"order": Order, "buyer": Buyer}
_BUYER_PROPERTIES: Mapping[str, type] = {"full_name": str, "required_last_name": str}


def path_kind(source: str, named: list[str]) -> Kind:
    """The kind of a path source's value (``order.…`` / ``buyer.…``); ``ValueError`` naming
    what exists (``named``: the named sources, for the message) for an unknown one."""
    root, *path = source.split(".")
    if root not in _ROOTS or not path:
        raise ValueError(
            f"unknown source {source!r}: use one of {named}, order.<attribute> or buyer.<attribute>"
        )
    current: type = _ROOTS[root]
    for depth, name in enumerate(path):
        fields = _attributes(current, top=depth == 0 and root == "order")
        if name not in fields:
            raise ValueError(
                f"{source!r}: {'.'.join([root, *path[:depth]])} has no {name!r}; "
                f"it has {sorted(fields)}"
            )
        current = fields[name]
    return _kind_of_type(current, source)


def _attributes(cls: type, *, top: bool) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    if top:
        names = [n for n in names if n in MAPPABLE]
    found = {name: _unoptional(hints[name]) for name in names}
    if cls is Buyer:
        found.update(_BUYER_PROPERTIES)
    return found


def _unoptional(hint: Any) -> Any:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _kind_of_type(hint: Any, source: str) -> Kind:
    if hint in (Address, Customer, Money, Buyer):
        raise ValueError(f"{source!r} is a whole {hint.__name__}: name one of its attributes")
    kinds: dict[Any, Kind] = {
        bool: "bool",
        Decimal: "money",
        int: "number",
        datetime: "datetime",
        date: "date",
        str: "text",
    }
    return kinds.get(hint, "text")
