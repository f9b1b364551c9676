"""Salesforce: the gateway interface flows depend on, and its one real adapter."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from tasks.salesforce.composite import ContactWrite, OrderWrite, OrderWriteResult
from tasks.salesforce.gateway import ApiUsage, RecordResult, SimpleSalesforceGateway


class SalesforceGateway(Protocol):
    """What the product needs from Salesforce."""

    @property
    def api_usage(self) -> ApiUsage | None: ...

    def check_budget(self) -> None: ...

    def describe(self, sobject: str) -> dict[str, Any]: ...

    def limits(self) -> dict[str, Any]: ...

    def query(self, soql: str) -> list[dict[str, Any]]: ...

    def merged_into(self, sobject: str, record_id: str) -> str | None: ...

    def find_contacts_by_email(self, email: str, key_field: str) -> list[dict[str, Any]]: ...

    def find_contacts_by_emails(
        self, emails: Sequence[str], key_field: str
    ) -> dict[str, list[dict[str, Any]]]: ...

    def query_many(self, soqls: Sequence[str]) -> list[list[dict[str, Any]]]: ...

    def find_contacts_and_records(
        self,
        emails: Sequence[str],
        contact_key_field: str,
        sobject: str,
        key_field: str,
        keys: Sequence[str],
    ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str | None]]: ...

    def records_by_keys(
        self, sobject: str, key_field: str, keys: Sequence[str], fields: Sequence[str]
    ) -> list[dict[str, Any]]: ...

    def write_order(self, write: OrderWrite) -> OrderWriteResult: ...

    def upsert_collection(
        self, sobject: str, key_field: str, records: Sequence[Mapping[str, Any]]
    ) -> list[RecordResult]: ...

    def bulk_upsert(
        self, sobject: str, key_field: str, records: Sequence[Mapping[str, Any]], *, wait: int = 1
    ) -> list[RecordResult]: ...

    def insert_collection(
        self, sobject: str, match_field: str, records: Sequence[Mapping[str, Any]]
    ) -> list[RecordResult]: ...

    def update_collection(
        self, sobject: str, records: Sequence[Mapping[str, Any]]
    ) -> list[RecordResult]: ...

    def delete(self, sobject: str, record_id: str) -> None: ...

    def bulk_insert(
        self, sobject: str, match_field: str, records: Sequence[Mapping[str, Any]], *, wait: int = 1
    ) -> list[RecordResult]: ...

    def bulk_update(
        self, sobject: str, records: Sequence[Mapping[str, Any]], *, wait: int = 1
    ) -> list[RecordResult]: ...

    def bulk_query(self, sobject: str, soql: str) -> Iterator[dict[str, str]]: ...


__all__ = [
    "ApiUsage",
    "ContactWrite",
    "OrderWrite",
    "OrderWriteResult",
    "RecordResult",
    "SalesforceGateway",
    "SimpleSalesforceGateway",
]
