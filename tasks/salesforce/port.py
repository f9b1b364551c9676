"""The Salesforce interface, by intent: what the product asks of Salesforce, and the values
that cross it. No implementation here (that is ``tasks.salesforce.gateway``) and no SOQL: the
adapter decides how to ask (composite, sObject Collections or Bulk 2.0, SOQL ``IN`` chunks or a
Bulk query), so callers say what they want, and a test can stand in an in-memory fake.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal, NamedTuple, Protocol

from tasks.core.errors import RecordError, SyncError
from tasks.salesforce.composite import ContactWrite, OrderWrite, OrderWriteResult
from tasks.salesforce.errors import classify_record

WriteKind = Literal["upsert", "insert", "update"]

# How the adapter chooses (the same thresholds the reconcile chose by before):
KEYS_BY_SOQL_MAX = 2_000  # records of up to this many keys: SOQL IN chunks; more: one Bulk query
EMAILS_BY_SOQL_MAX = 1_000  # Contacts of up to this many e-mails: SOQL; more: one Bulk query
RECORDS_BY_COLLECTIONS_MAX = 2_000  # writes of up to this many records: Collections; more: Bulk

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ApiUsage:
    """The org's rolling 24-hour API usage, from ``Sforce-Limit-Info`` or ``/limits``."""

    used: int
    limit: int


@dataclass(frozen=True, slots=True)
class RecordResult:
    """The outcome for one record of a collections or bulk write, matched by external id."""

    key: str
    success: bool
    id: str | None = None
    created: bool = False
    errors: tuple[RecordError, ...] = ()

    @property
    def error(self) -> SyncError | None:
        """The record's failure, classified like every Salesforce answer (None: it succeeded)."""
        return None if self.success else classify_record(self.errors)


class KeyLookup(NamedTuple):
    """Records of one object asked for by their external id ``key_field``."""

    sobject: str
    key_field: str
    keys: Sequence[str]


# Per object, each asked-for external id's record Id (None: not in Salesforce).
IdsByKey = dict[str, dict[str, str | None]]


class BatchLookups(NamedTuple):
    """A batch's lookups: Contacts by lower-cased e-mail, record Ids by external id, and
    (``parents``) the Ids of the Accounts and Contacts asked for by key, per object."""

    contacts: dict[str, list[Row]]
    ids: dict[str, str | None]
    parents: IdsByKey


def read_path(keys: int) -> str:
    """How :meth:`SalesforcePort.records` reads this many keys: ``"soql"`` or ``"bulk"``."""
    return "soql" if keys <= KEYS_BY_SOQL_MAX else "bulk"


class SalesforcePort(Protocol):
    """What the product needs from Salesforce, by intent."""

    def write_order(self, write: OrderWrite) -> OrderWriteResult:
        """One order's Account, Contact and Opportunity in one call (all or nothing)."""
        ...

    def save_many(
        self,
        sobject: str,
        key_field: str,
        records: Sequence[Mapping[str, Any]],
        *,
        kind: WriteKind = "upsert",
    ) -> list[RecordResult]:
        """Upsert by ``key_field``, insert (results matched by ``key_field``, unique within
        ``records``) or update by ``Id``; Collections for small sets, Bulk 2.0 above."""
        ...

    def records(
        self,
        sobject: str,
        key_field: str,
        fields: Sequence[str],
        *,
        keys: Sequence[str] = (),
        closing: tuple[date, date] | None = None,
    ) -> Iterator[Row]:
        """The records whose external id is in ``keys``, plus (``closing``) those keyed with
        a ``CloseDate`` in the range; ``key_field`` and ``fields`` selected."""
        ...

    def records_by_ids(
        self, sobject: str, ids: Sequence[str], fields: Sequence[str]
    ) -> Iterator[Row]:
        """The records with these Ids (``Id`` and ``fields`` selected), in as few calls as can
        be (none when no Id is asked for)."""
        ...

    def contacts_by_emails(self, emails: Sequence[str], key_field: str) -> dict[str, list[Row]]:
        """Contacts by lower-cased e-mail (every e-mail asked for is a key), oldest first."""
        ...

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
        """A batch's Contacts by e-mail and ``sobject`` Ids by key, plus (``parents``) which
        Accounts and Contacts exist by key, in as few calls as can be."""
        ...

    def ids_by_keys(self, lookups: Sequence[KeyLookup]) -> IdsByKey:
        """Per object, the Id of each record whose external id is asked for (None: not in
        Salesforce), in as few calls as can be (no call when nothing is asked)."""
        ...

    def merged_into(self, sobject: str, record_id: str) -> str | None:
        """The record a merge kept in place of a deleted one (None: deleted, not merged)."""
        ...

    def describe(self, sobject: str) -> dict[str, Any]:
        """The describe of one object."""
        ...

    def person_record_types(self) -> list[Row]:
        """The active Person Account record types (Id, DeveloperName, Name)."""
        ...

    def duplicate_rules(self) -> list[Row]:
        """The active duplicate rules on Account, Contact and Opportunity."""
        ...

    def usage(self, *, refresh: bool = False) -> ApiUsage | None:
        """The org's API usage as last seen; ``refresh`` asks ``/limits`` (one call)."""
        ...

    def delete(self, sobject: str, record_id: str) -> None:
        """Delete one record by Id (``shopsync smoke`` cleans up with it)."""
        ...


__all__ = [
    "EMAILS_BY_SOQL_MAX",
    "KEYS_BY_SOQL_MAX",
    "RECORDS_BY_COLLECTIONS_MAX",
    "ApiUsage",
    "BatchLookups",
    "ContactWrite",
    "IdsByKey",
    "KeyLookup",
    "OrderWrite",
    "OrderWriteResult",
    "RecordResult",
    "SalesforcePort",
    "WriteKind",
    "read_path",
]
