"""SOQL: every query the product sends to Salesforce is built here, and nowhere else.

Pure functions returning query text. Values (keys, e-mails, Ids, dates) are quoted and escaped
by simple-salesforce's ``format_soql`` (research/salesforce.md §4). Object and field names cannot
be quoted in SOQL; they come from our configuration and describe, and are checked to be API
names (``Opportunity``, ``Shopify_Order_Id__c``, ``Account.ns__Key__c``) before they are used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import date

from simple_salesforce import format_soql

from tasks.core.errors import ConfigError

SOQL_IN_CHUNK = 300  # research §4: GET URLs cap at 16 KB; 300 quoted ids stay well inside
EMAIL_CHUNK = 100  # e-mails are longer than ids; 100 quoted ones stay well under 16 KB

_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*")

# The active Person Account record types (an org with Person Accounts creates one, more may
# exist); research/salesforce.md §7.
PERSON_RECORD_TYPES = (
    "SELECT Id, DeveloperName, Name FROM RecordType "
    "WHERE SobjectType = 'Account' AND IsPersonType = true AND IsActive = true"
)
# Active duplicate rules that may refuse the sync's saves (needs View Setup and Configuration).
ACTIVE_DUPLICATE_RULES = (
    "SELECT DeveloperName, MasterLabel, SobjectType FROM DuplicateRule "
    "WHERE IsActive = true AND SobjectType IN ('Account', 'Contact', 'Opportunity') "
    "ORDER BY SobjectType, DeveloperName"
)


def api_name(name: str) -> str:
    """``name`` when it is a Salesforce API name (or a relationship path of them).

    Raises:
        ConfigError: anything else, which would change the query's meaning if pasted in.
    """
    if not isinstance(name, str) or not _API_NAME.fullmatch(name):
        raise ConfigError(f"{name!r} is not a Salesforce object or field API name")
    return name


def select_list(fields: Iterable[str]) -> str:
    """``A, B, C``: the fields once each, in order, each checked."""
    return ", ".join(api_name(f) for f in dict.fromkeys(fields))


def merged_into(sobject: str, record_id: str) -> str:
    """A record and its ``MasterRecordId`` (send with queryAll: the record is deleted)."""
    return format_soql(
        "SELECT Id, MasterRecordId FROM {:literal} WHERE Id = {}", api_name(sobject), record_id
    )


def contacts_by_emails(emails: Sequence[str], key_field: str) -> str:
    """Contacts with any of these e-mails, oldest first."""
    return format_soql(
        "SELECT Id, AccountId, Email, {:literal} FROM Contact WHERE Email IN {} "
        "ORDER BY CreatedDate ASC",
        api_name(key_field),
        list(emails),
    )


def contacts_with_email(key_field: str) -> str:
    """Every Contact that has an e-mail (a Bulk 2.0 query; the caller filters)."""
    select = select_list(["Id", "AccountId", "Email", "CreatedDate", key_field])
    return f"SELECT {select} FROM Contact WHERE Email != null"  # noqa: S608


def records_by_keys(
    sobject: str, key_field: str, keys: Sequence[str], fields: Sequence[str]
) -> str:
    """The records whose external id ``key_field`` is one of ``keys`` (the key is selected too).

    The caller keeps ``keys`` short enough for a GET URL (the gateway sends 300 at a time).
    """
    select = select_list([key_field, *fields])
    return format_soql(
        f"SELECT {select} FROM {api_name(sobject)} WHERE {{:literal}} IN {{}}",  # noqa: S608
        api_name(key_field),
        list(keys),
    )


def keyed_closing_between(
    sobject: str, key_field: str, fields: Sequence[str], first: date, last: date
) -> str:
    """The records with an external id and a ``CloseDate`` from ``first`` to ``last``."""
    return format_soql(
        f"SELECT {select_list(fields)} FROM {api_name(sobject)} "  # noqa: S608
        "WHERE {:literal} != null AND CloseDate >= {:literal} AND CloseDate <= {:literal}",
        api_name(key_field),
        first.isoformat(),
        last.isoformat(),
    )


def keyed_records(sobject: str, key_field: str, fields: Sequence[str]) -> str:
    """Every record with an external id (a Bulk 2.0 query; the caller filters)."""
    select = select_list(fields)
    return f"SELECT {select} FROM {api_name(sobject)} WHERE {api_name(key_field)} != null"  # noqa: S608


def contacts_by_emails_chunked(emails: Sequence[str], key_field: str) -> list[str]:
    """:func:`contacts_by_emails` for any number of e-mails: 100 e-mails a query."""
    return [
        contacts_by_emails(emails[start : start + EMAIL_CHUNK], key_field)
        for start in range(0, len(emails), EMAIL_CHUNK)
    ]


def records_by_keys_chunked(
    sobject: str, key_field: str, keys: Sequence[str], fields: Sequence[str]
) -> list[str]:
    """:func:`records_by_keys` for any number of keys: 300 keys a query."""
    return [
        records_by_keys(sobject, key_field, keys[start : start + SOQL_IN_CHUNK], fields)
        for start in range(0, len(keys), SOQL_IN_CHUNK)
    ]
