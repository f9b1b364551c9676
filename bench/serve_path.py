"""The product as a user runs it, for the latency-realistic benchmarks: ``shopsync serve``.

One ``shopsync serve`` process per round (receiver, due-work watcher, the served deployments with
the drain's event trigger, flow runs as its subprocesses) against the run's Prefect server and the
two sandboxes. Nothing is started by hand: the shop's webhooks reach the receiver, the receiver's
event starts drain runs through Prefect's automation and the runner. The orchestrator only
watches: it samples the Salesforce sandbox's counters (Opportunities created, API calls) every
``SAMPLE_S`` seconds, and reads the serve process's CPU time and that of its reaped children
(the flow runs) from ``/proc``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import Child, children, product_env, start_child, wait_http
from sandbox.server import free_port

SAMPLE_S = 0.05
OPPORTUNITY_KEY = "External_Shopify_Order_ID__c"


@dataclass
class Served:
    """A running ``shopsync serve``: its process, receiver URL and state database."""

    child: Child
    webhook_url: str
    db: Path
    prefect_api: str

    def inbox(self) -> dict[str, int]:
        """Inbox rows by status (read-only look at the serve's SQLite state store)."""
        return _query_counts(self.db, "SELECT status, count(*) FROM inbox GROUP BY status")

    def flow_children(self) -> list[int]:
        """Live child processes of the serve process (running flow runs)."""
        pids: list[int] = []
        for task in Path(f"/proc/{self.child.pid}/task").glob("*"):
            try:
                pids += [int(p) for p in (task / "children").read_text().split()]
            except OSError:
                continue
        return pids

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no drain runs: no flow-run subprocess (their CPU is then counted as
        reaped) and no ``sync-pending-orders`` run Pending or Running in Prefect (the warm
        drain runs inside the serve process)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            processes = [p for p in self.flow_children() if not _is_resource_tracker(p)]
            if not processes and not active_drain_runs(self.prefect_api):
                return True
            time.sleep(0.2)
        return False


def active_drain_runs(prefect_api: str) -> int:
    """``sync-pending-orders`` runs that are Pending or Running now."""
    body = {
        "flows": {"name": {"any_": ["sync-pending-orders"]}},
        "flow_runs": {"state": {"type": {"any_": ["PENDING", "RUNNING"]}}},
    }
    with suppress(httpx.HTTPError):
        response = httpx.post(f"{prefect_api}/flow_runs/count", json=body, timeout=30)
        response.raise_for_status()
        return int(response.json())
    return 1  # unknown: not idle yet


def _is_resource_tracker(pid: int) -> bool:
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def _query_counts(db: Path, sql: str) -> dict[str, int]:
    if not db.exists():
        return {}
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {str(k): int(v) for k, v in connection.execute(sql).fetchall()}
    except sqlite3.OperationalError:
        return {}
    finally:
        connection.close()


@contextmanager
def shopsync_serve(
    name: str,
    work: Path,
    salesforce_url: str,
    shopify_url: str,
    prefect_api: str,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Served]:
    """Start ``shopsync serve`` (fresh data directory) and wait until its runner polls."""
    data = work / f"{name}-data"
    port = free_port()
    env = {
        **product_env(salesforce_url, shopify_url, data),
        "PREFECT_API_URL": prefect_api,
        "SHOPSYNC_WEBHOOK_PORT": str(port),
        # The drain's "drain finished: {...}" line (its own CPU) reaches Prefect's logs; the
        # rest of Prefect stays at WARNING (python_env).
        "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
        **(extra_env or {}),
    }
    child = start_child(name, ["-m", "deployments.cli", "serve"], work, env)
    with children(child):
        wait_http(f"http://127.0.0.1:{port}/healthz", child, timeout=180)
        deadline = time.monotonic() + 180
        while "being served" not in child.log_path.read_text(errors="replace"):
            if child.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start serving:\n{child.tail()}")
            time.sleep(0.2)
        yield Served(
            child, f"http://127.0.0.1:{port}/webhooks/shopify", data / "shopsync.db", prefect_api
        )


@dataclass
class Sample:
    """The Salesforce sandbox's counters at one moment (wall clock)."""

    at: float
    opportunities: int
    api_calls: int
    by_kind: dict[str, int]


@dataclass
class Watcher:
    """Samples the Salesforce sandbox's counters in a thread while a round runs.

    With ``keys`` it also dumps the Opportunities each time and records when each order's
    Opportunity (by its external id) was first visible: only for small rounds (the trickle).
    """

    salesforce_url: str
    keys: bool = False
    samples: list[Sample] = field(default_factory=list)
    first_seen: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Watcher:
        self._thread = threading.Thread(target=self._loop, name="sf-watcher", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        with httpx.Client(base_url=f"{self.salesforce_url}/__sandbox", timeout=30) as client:
            while not self._stop.is_set():
                with suppress(httpx.HTTPError):
                    self.sample(client)
                self._stop.wait(SAMPLE_S)

    def sample(self, client: httpx.Client) -> Sample:
        """Take one sample now."""
        stats = client.get("/stats").json()
        now = time.time()
        if self.keys:
            for record in client.get("/dump", params={"object": "Opportunity"}).json()["records"]:
                key = str(record.get(OPPORTUNITY_KEY) or "")
                if key and key not in self.first_seen:
                    self.first_seen[key] = now
        created = stats.get("records", {}).get("Opportunity", {}).get("created", 0)
        sample = Sample(
            now,
            int(created),
            int(stats["api_calls"]["total"]),
            dict(stats["api_calls"]["by_kind"]),
        )
        self.samples.append(sample)
        return sample

    def latest(self) -> Sample | None:
        """The last sample, if any."""
        return self.samples[-1] if self.samples else None

    def when(self, opportunities: int) -> float | None:
        """The first sample time at which at least ``opportunities`` were visible."""
        return next((s.at for s in self.samples if s.opportunities >= opportunities), None)

    def calls_between(self, start: float, end: float) -> tuple[int, dict[str, int]]:
        """API calls counted between the last sample before ``start`` and the last before
        ``end`` (by kind too)."""
        before = [s for s in self.samples if s.at <= start]
        upto = [s for s in self.samples if s.at <= end]
        if not upto:
            return 0, {}
        # Before the first sample: count from it (taken as the watcher started), not from zero,
        # which would charge the group with every call since the sandbox's stats were reset.
        a = before[-1] if before else (self.samples[0] if self.samples else Sample(start, 0, 0, {}))
        b = upto[-1]
        kinds = {k: v - a.by_kind.get(k, 0) for k, v in b.by_kind.items()}
        return b.api_calls - a.api_calls, {k: v for k, v in kinds.items() if v}


def usage_now(served: Served) -> dict[str, Any]:
    """The serve process's own CPU (receiver, runner) and its reaped flow runs' CPU."""
    return served.child.usage()


def receipts(deliveries: list[dict[str, Any]]) -> dict[str, float]:
    """``order id → wall time`` of the first successful delivery (the receiver's 200)."""
    out: dict[str, float] = {}
    for entry in deliveries:
        if not entry.get("ok") or entry.get("order_id") is None:
            continue
        from datetime import datetime

        at = datetime.fromisoformat(entry["at"]).timestamp()
        key = str(entry["order_id"])
        out[key] = min(out.get(key, at), at)
    return out


def drain_runs(prefect_api: str, since: float) -> list[dict[str, Any]]:
    """The ``sync-pending-orders`` flow runs created after ``since`` (wall time), oldest first:
    state, and created / started / ended as wall times (None when not reached)."""
    from datetime import UTC, datetime

    body = {
        "flows": {"name": {"any_": ["sync-pending-orders"]}},
        "sort": "EXPECTED_START_TIME_ASC",
        "limit": 200,
    }
    response = httpx.post(f"{prefect_api}/flow_runs/filter", json=body, timeout=30)
    response.raise_for_status()

    def ts(value: str | None) -> float | None:
        return datetime.fromisoformat(value).astimezone(UTC).timestamp() if value else None

    runs = []
    for run in response.json():
        created = ts(run.get("created"))
        if created is None or created < since or run.get("state_type") == "SCHEDULED":
            continue  # SCHEDULED: the hourly safety net's future runs, created at serve's start
        runs.append(
            {
                "id": run.get("id"),
                "state": run.get("state_type"),
                "created": created,
                "started": ts(run.get("start_time")),
                "ended": ts(run.get("end_time")),
            }
        )
    return sorted(runs, key=lambda r: r["created"])


def run_states(runs: list[dict[str, Any]]) -> dict[str, int]:
    """How many runs ended in each state."""
    out: dict[str, int] = {}
    for run in runs:
        out[str(run["state"])] = out.get(str(run["state"]), 0) + 1
    return out


def drain_reports(prefect_api: str, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What each drain run logged at its end (``drain finished: {...}``: outcomes, and its own
    CPU: before the first claim, first claim → last batch, total), read from Prefect's logs."""
    import ast

    reports = []
    for run in runs:
        if not run.get("id") or not run.get("started"):
            continue
        body = {
            "logs": {"flow_run_id": {"any_": [run["id"]]}},
            "sort": "TIMESTAMP_DESC",
            "limit": 50,
        }
        response = httpx.post(f"{prefect_api}/logs/filter", json=body, timeout=30)
        response.raise_for_status()
        for entry in response.json():
            message = str(entry.get("message", ""))
            if message.startswith("drain finished: "):
                with suppress(ValueError, SyntaxError):
                    reports.append(ast.literal_eval(message.removeprefix("drain finished: ")))
                break
    return reports


def drain_cpu_figures(reports: list[dict[str, Any]], orders: int) -> dict[str, Any]:
    """The drain runs' own CPU over ``orders``: start-up (process start → first claim) apart
    from the drain's work (first claim → last batch settled)."""

    def total(key: str) -> float:
        return sum(float(r.get(key) or 0) for r in reports)

    working, startup = total("cpu_s_working"), total("cpu_s_before_first_claim")
    return {
        "drain_reports": len(reports),
        "drain_startup_cpu_s": round(startup, 2),
        "drain_working_cpu_s": round(working, 2),
        "drain_working_cpu_ms_per_order": round(working * 1000 / orders, 2)
        if orders and reports
        else None,
        "lingered_s": round(total("lingered_s"), 1),
    }
