"""Which existing Contact an order's Contact becomes: the e-mail adoption rule of every path.

Pure functions, shared by the webhook path (``tasks.sync``) and the reconcile repair
(``tasks.core.repair_plan``), so that both find the same Contact for the same order
(DESIGN.md §3, §9):

- a known Shopify customer (a Contact key) seen for the first time adopts the oldest Contact with
  the order's e-mail that has no external id, unless a Contact with that e-mail already carries
  this customer's key (then the upsert by key matches it);
- a guest (no Contact key) is linked to the oldest Contact with the order's e-mail, keyed or not;
  only when there is none is a Contact created.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

__all__ = ["contact_to_adopt", "contacts_by_email", "oldest_first"]


def contact_to_adopt(
    contacts: Sequence[Mapping[str, Any]],
    key_field: str,
    contact_key: str | None,
    *,
    taken: Collection[str] = (),
) -> str | None:
    """The Id of the Contact to adopt (or, for a guest, to link), else ``None``.

    ``contacts`` are the Contacts with the order's e-mail, oldest first. ``taken`` are Ids
    already adopted by another customer in the same batch: a Contact is adopted once.
    """
    if contact_key is None:
        return str(contacts[0]["Id"]) if contacts else None
    if any(str(c.get(key_field) or "") == contact_key for c in contacts):
        return None  # already keyed to this customer: the upsert by key matches it
    for contact in contacts:
        if not contact.get(key_field) and str(contact["Id"]) not in taken:
            return str(contact["Id"])
    return None


def oldest_first(contacts: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Contacts ordered by ``CreatedDate`` (ISO text sorts in time order); a stable sort, so
    rows without one keep the order the query gave them."""
    return sorted(contacts, key=lambda c: str(c.get("CreatedDate") or ""))


def contacts_by_email(
    rows: Iterable[Mapping[str, Any]], emails: Collection[str]
) -> dict[str, list[Mapping[str, Any]]]:
    """Rows of a Contact query grouped by lower-cased ``Email`` (only the e-mails asked for,
    each one a key), every group oldest first."""
    found: dict[str, list[Mapping[str, Any]]] = {email.lower(): [] for email in emails}
    for row in rows:
        email = str(row.get("Email") or "").lower()
        if email in found:
            found[email].append(row)
    return {email: oldest_first(group) for email, group in found.items()}
