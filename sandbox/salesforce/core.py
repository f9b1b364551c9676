"""Shared state of one sandbox: org, store, engine, tokens, faults, counters, cursors, jobs."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .faults import FaultBook
from .oauth import TokenBook
from .records import Engine
from .schema import OrgProfile, build_schema
from .store import Store


@dataclass
class Stats:
    """API-call and bulk counters (records written live in ``Store.written``)."""

    api_calls: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    composite: int = 0
    composite_subrequests: int = 0
    collections: int = 0
    bulk_ingest_jobs: int = 0
    bulk_query_jobs: int = 0
    bulk_batches: int = 0
    bulk_records_processed: int = 0
    bulk_records_failed: int = 0
    faults_fired: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        """The ``GET /__sandbox/stats`` counters."""
        return {
            "api_calls": {
                "total": self.api_calls,
                "by_kind": dict(self.by_kind),
                "by_endpoint": dict(self.by_endpoint),
            },
            "composite": {"requests": self.composite, "subrequests": self.composite_subrequests},
            "collections": {"requests": self.collections},
            "bulk": {
                "ingest_jobs": self.bulk_ingest_jobs,
                "query_jobs": self.bulk_query_jobs,
                "batches": self.bulk_batches,
                "records_processed": self.bulk_records_processed,
                "records_failed": self.bulk_records_failed,
            },
            "faults_fired": dict(self.faults_fired),
            "rejected": dict(self.rejected),
        }


class Core:
    """Everything a request handler needs; one per ``SalesforceSandbox``."""

    def __init__(
        self,
        org: OrgProfile,
        api_limit: int,
        token_ttl: float,
        client_id: str | None,
        client_secret: str | None,
    ) -> None:
        self.initial = (org, api_limit)
        self.org = org
        self.store = Store(build_schema(org))
        self.engine = Engine(self.store, org)
        self.tokens = TokenBook(token_ttl, client_id, client_secret)
        self.faults = FaultBook()
        self.engine.record_faults = self.faults.check_record
        self.engine.race_check = self.faults.check_race
        self.stats = Stats()
        self.api_limit = api_limit
        self.api_used = 0
        self.lock = threading.RLock()
        self.cursors: dict[str, Any] = {}
        self.ingest_jobs: dict[str, Any] = {}
        self.query_jobs: dict[str, Any] = {}
        self._record_types()

    def set_org(self, org: OrgProfile) -> None:
        """Switch the org variant (schema, indexes, record types)."""
        with self.lock:
            self.org = org
            self.engine.org = org
            self.store.set_schema(build_schema(org))
            self._record_types()

    def _record_types(self) -> None:
        if "RecordType" not in self.store.schema or self.store.records.get("RecordType"):
            return
        for name, person in (("Business Account", False), ("Person Account", True)):
            rid = self.store.ids.new("012")
            self.store.records["RecordType"][rid] = {
                "Id": rid, "Name": name, "DeveloperName": name.replace(" ", ""),
                "SobjectType": "Account", "IsPersonType": person, "IsActive": True,
                "IsDeleted": False, "CreatedDate": "2020-01-01T00:00:00.000+0000",
                "LastModifiedDate": "2020-01-01T00:00:00.000+0000",
                "SystemModstamp": "2020-01-01T00:00:00.000+0000",
            }
        self.store.set_schema(self.store.schema)

    def reset(self, keep_org: bool = False) -> None:
        """Empty records, counters, jobs, cursors, faults and rules (tokens stay valid)."""
        with self.lock:
            self.store.clear()
            self.store.written.clear()
            self.stats = Stats()
            self.tokens.requests.clear()
            self.tokens.revoked = False
            self.api_used = 0
            self.cursors.clear()
            self.ingest_jobs.clear()
            self.query_jobs.clear()
            self.faults.clear()
            self.engine.rules.clear()
            self.engine.duplicate_rules.clear()
            if not keep_org:
                self.api_limit = self.initial[1]
                self.set_org(self.initial[0])
            self.store.records.pop("RecordType", None)
            self._record_types()

    def limit_info(self) -> str:
        """The ``Sforce-Limit-Info`` header value."""
        return f"api-usage={self.api_used}/{self.api_limit}"

    def stats_json(self) -> dict[str, Any]:
        """Counters plus records written per object and API usage."""
        data = self.stats.to_json()
        data["records"] = self.store.counts()
        data["api_usage"] = {"used": self.api_used, "limit": self.api_limit}
        data["tokens_issued"] = self.tokens.issued
        data["token_requests"] = self.tokens.request_stats()
        return data
