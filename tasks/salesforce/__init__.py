"""Salesforce: the interface flows depend on (``port``) and its one real adapter (``gateway``).

Importing the package loads the interface only; the adapter is ``tasks.salesforce.gateway``
(built by ``tasks.runtime``).
"""

from __future__ import annotations

from tasks.salesforce.port import (
    ApiUsage,
    BatchLookups,
    ContactWrite,
    KeyLookup,
    OrderWrite,
    OrderWriteResult,
    RecordResult,
    SalesforcePort,
)

__all__ = [
    "ApiUsage",
    "BatchLookups",
    "ContactWrite",
    "KeyLookup",
    "OrderWrite",
    "OrderWriteResult",
    "RecordResult",
    "SalesforcePort",
]
