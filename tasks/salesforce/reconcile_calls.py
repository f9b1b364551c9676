"""The raw gateway methods the reconcile flow still calls, as one-line shims over the adapter.

Every other caller uses the intent methods of :class:`tasks.salesforce.port.SalesforcePort`;
each method here names the one that replaces it. Delete this module once reconcile has moved.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from tasks.salesforce.port import ApiUsage, RecordResult, Row, WriteKind


class _Raw(Protocol):
    """The gateway's private methods these shims call (``self`` is the gateway)."""

    _usage: ApiUsage | None

    def _limits(self) -> dict[str, Any]: ...

    def _query(self, soql: str) -> list[Row]: ...

    def _bulk_query(self, sobject: str, soql: str) -> Iterator[dict[str, str]]: ...

    def _contacts_by_soql(self, emails: Sequence[str], key_field: str) -> dict[str, list[Row]]: ...

    def _records_by_keys(
        self, sobject: str, key_field: str, keys: Sequence[str], fields: Sequence[str]
    ) -> list[Row]: ...

    def _collections(
        self, sobject: str, key_field: str, records: Sequence[Mapping[str, Any]], kind: WriteKind
    ) -> list[RecordResult]: ...

    def _bulk_ingest(
        self,
        sobject: str,
        operation: str,
        key_field: str,
        records: Sequence[Mapping[str, Any]],
        wait: int,
    ) -> list[RecordResult]: ...


class ReconcileCalls:
    """Mixed into the gateway (``self`` is one), over its private methods."""

    @property
    def api_usage(self: _Raw) -> ApiUsage | None:
        """→ ``usage()``."""
        return self._usage

    def limits(self: _Raw) -> dict[str, Any]:
        """→ ``usage(refresh=True)``."""
        return self._limits()

    def query(self: _Raw, soql: str) -> list[Row]:
        """→ ``records(..., closing=(first, last))``."""
        return self._query(soql)

    def bulk_query(self: _Raw, sobject: str, soql: str) -> Iterator[dict[str, str]]:
        """→ ``records(...)`` (more than 2,000 keys) / ``contacts_by_emails`` (over 1,000)."""
        return self._bulk_query(sobject, soql)

    def find_contacts_by_emails(
        self: _Raw, emails: Sequence[str], key_field: str
    ) -> dict[str, list[Row]]:
        """→ ``contacts_by_emails``."""
        return self._contacts_by_soql(emails, key_field)

    def records_by_keys(
        self: _Raw,
        sobject: str,
        key_field: str,
        keys: Sequence[str],
        fields: Sequence[str],
    ) -> list[Row]:
        """→ ``records(sobject, key_field, fields, keys=keys)``."""
        return self._records_by_keys(sobject, key_field, keys, fields)

    def upsert_collection(
        self: _Raw,
        sobject: str,
        key_field: str,
        records: Sequence[Mapping[str, Any]],
    ) -> list[RecordResult]:
        """→ ``save_many(sobject, key_field, records)``."""
        return self._collections(sobject, key_field, records, "upsert")

    def insert_collection(
        self: _Raw,
        sobject: str,
        match_field: str,
        records: Sequence[Mapping[str, Any]],
    ) -> list[RecordResult]:
        """→ ``save_many(sobject, match_field, records, kind="insert")``."""
        return self._collections(sobject, match_field, records, "insert")

    def update_collection(
        self: _Raw, sobject: str, records: Sequence[Mapping[str, Any]]
    ) -> list[RecordResult]:
        """→ ``save_many(sobject, "Id", records, kind="update")``."""
        return self._collections(sobject, "Id", records, "update")

    def bulk_upsert(
        self: _Raw,
        sobject: str,
        key_field: str,
        records: Sequence[Mapping[str, Any]],
        *,
        wait: int = 1,
    ) -> list[RecordResult]:
        """→ ``save_many`` (it chooses Bulk above 2,000 records)."""
        return self._bulk_ingest(sobject, "upsert", key_field, records, wait)

    def bulk_insert(
        self: _Raw,
        sobject: str,
        match_field: str,
        records: Sequence[Mapping[str, Any]],
        *,
        wait: int = 1,
    ) -> list[RecordResult]:
        """→ ``save_many(kind="insert")``."""
        return self._bulk_ingest(sobject, "insert", match_field, records, wait)

    def bulk_update(
        self: _Raw,
        sobject: str,
        records: Sequence[Mapping[str, Any]],
        *,
        wait: int = 1,
    ) -> list[RecordResult]:
        """→ ``save_many(kind="update")``."""
        return self._bulk_ingest(sobject, "update", "Id", records, wait)
