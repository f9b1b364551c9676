"""Salesforce-shaped errors raised inside the sandbox and turned into HTTP responses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ErrorItem:
    """One Salesforce error: ``errorCode`` (REST) / ``statusCode`` (collections, Bulk)."""

    code: str
    message: str
    fields: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. ``duplicateResult``

    def rest(self) -> dict[str, Any]:
        """The REST error-array element (research §4)."""
        return {"message": self.message, "errorCode": self.code, "fields": list(self.fields),
                **self.extra}

    def item(self) -> dict[str, Any]:
        """The sObject Collections per-record error (research §2: ``statusCode``)."""
        return {"statusCode": self.code, "message": self.message, "fields": list(self.fields),
                **self.extra}

    def bulk(self) -> str:
        """The Bulk API 2.0 ``sf__Error`` text, ``CODE:message:fields`` (research §3)."""
        fields = ",".join(self.fields) if self.fields else "--"
        return f"{self.code}:{self.message}:{fields}"


class SfError(Exception):
    """A failure that Salesforce reports with an HTTP status and an error array."""

    def __init__(
        self,
        code: str,
        message: str,
        fields: list[str] | None = None,
        status: int = 400,
        more: list[ErrorItem] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.items = [ErrorItem(code, message, list(fields or [])), *(more or [])]

    @classmethod
    def of(cls, items: list[ErrorItem], status: int = 400) -> SfError:
        """Build from several error items (first one is the headline)."""
        first, *rest = items
        error = cls(first.code, first.message, first.fields, status, rest)
        error.items[0] = first  # keeps its extra members (duplicateResult)
        return error

    @property
    def code(self) -> str:
        """The first error code."""
        return self.items[0].code

    def rest_body(self) -> list[dict[str, Any]]:
        """The REST response body: a JSON array of errors."""
        return [i.rest() for i in self.items]


def not_found(message: str = "The requested resource does not exist") -> SfError:
    """404 NOT_FOUND as REST returns it."""
    return SfError("NOT_FOUND", message, status=404)
