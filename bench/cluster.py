"""A several-workers setup on one machine, as README "Running on several machines" describes it:
a Prefect server on PostgreSQL, a ``process`` work pool, the deployments of
``deployments/prefect.yaml``, N ``prefect worker`` processes, and a PostgreSQL state store.

Used by the multi-worker end-to-end test (tests/postgres/) and the worker-scaling benchmark. Every
process listens on loopback only and is stopped (its whole process group) on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from deployments.local import prefect_server

REPO = Path(__file__).resolve().parents[1]
POOL = "shopsync"
DRAIN = "sync-pending-orders/webhook"
_FOREIGN = ("PREFECT_", "SHOPSYNC_", "SHOPIFY_", "SALESFORCE_")


@dataclass
class Cluster:
    """The running pieces; ``env`` is what every worker (and receiver) runs with."""

    root: Path
    api: str
    state_url: str
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _drain_id: str | None = field(default=None, repr=False)

    def start_workers(self, count: int, limit: int = 2) -> None:
        """Start ``count`` more ``prefect worker start --pool shopsync`` processes."""
        for _ in range(count):
            n = len(self.workers)
            with (self.root / f"worker-{n}.log").open("ab") as log:
                self.workers.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL,
                         "--name", f"worker-{n}", "--limit", str(limit)],
                        env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )  # fmt: skip

    def flow_runs_of(self, index: int) -> set[int]:
        """Pids of the processes worker ``index`` started: its flow runs (Prefect starts each in
        a session of its own, so they are found by parentage, not by process group)."""
        return descendants(self.workers[index].pid)

    def worker_of(self, pid: int) -> int | None:
        """The index of the live worker that started process ``pid``, if any."""
        for index, worker in enumerate(self.workers):
            if worker.poll() is None and pid in self.flow_runs_of(index):
                return index
        return None

    def kill_worker(self, index: int) -> None:
        """SIGKILL a worker and every flow run it started: the machine died."""
        for pid in self.flow_runs_of(index):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _killpg(self.workers[index], signal.SIGKILL)
        self.workers[index].wait(timeout=30)

    def drain_deployment_id(self) -> str:
        """The id of the ``sync-pending-orders/webhook`` deployment."""
        if self._drain_id is None:
            response = httpx.get(f"{self.api}/deployments/name/{DRAIN}", timeout=60)
            response.raise_for_status()
            self._drain_id = str(response.json()["id"])
        return self._drain_id

    def start_drains(self, count: int) -> None:
        """Ask for ``count`` drain runs now (the deployment's concurrency limit cancels extras)."""
        deployment = self.drain_deployment_id()
        for _ in range(count):
            httpx.post(
                f"{self.api}/deployments/{deployment}/create_flow_run", json={}, timeout=60
            ).raise_for_status()

    def nudge(self) -> None:
        """One more drain run, as the receivers' events and the safety-net schedule ask for;
        a busy server that does not answer in time is left alone (the schedule comes anyway)."""
        with contextlib.suppress(httpx.HTTPError):
            self.start_drains(1)

    def drain_runs(self) -> list[dict[str, Any]]:
        """Every flow run of the drain deployment."""
        body = {"deployments": {"id": {"any_": [self.drain_deployment_id()]}}, "limit": 200}
        runs: list[dict[str, Any]] = []
        while True:
            response = httpx.post(
                f"{self.api}/flow_runs/filter", json={**body, "offset": len(runs)}, timeout=120
            )
            response.raise_for_status()
            page = response.json()
            runs.extend(page)
            if len(page) < 200:
                return runs

    def drains_idle(self) -> bool:
        """No drain run is pending or running (scheduled ones may wait for their time)."""
        return all(run["state_type"] not in {"PENDING", "RUNNING"} for run in self.drain_runs())

    def stop(self) -> None:
        """Stop every worker and its flow runs."""
        flow_runs = set().union(*(self.flow_runs_of(i) for i in range(len(self.workers))))
        for worker in self.workers:
            _killpg(worker, signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _killpg(worker, signal.SIGKILL)
                worker.wait()
        for pid in flow_runs:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def descendants(root: int) -> set[int]:
    """Every process below ``root`` (children, grandchildren, …), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def max_overlap(runs: list[dict[str, Any]]) -> int:
    """The most drain runs that were running at the same moment."""
    edges: list[tuple[datetime, int]] = []
    for run in runs:
        if run.get("start_time") and run.get("end_time"):
            edges.append((datetime.fromisoformat(run["start_time"]), 1))
            edges.append((datetime.fromisoformat(run["end_time"]), -1))
    best = current = 0
    for _, step in sorted(edges):
        current += step
        best = max(best, current)
    return best


def prefect(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    """Run the ``prefect`` CLI from the repository root; its output, or an error with it."""
    result = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"prefect {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@contextmanager
def cluster(
    root: Path,
    postgres: Any,
    product_env: dict[str, str],
    *,
    workers: int,
    drain_concurrency: int,
) -> Iterator[Cluster]:
    """Prefect server and state store on ``postgres`` (a ``sandbox.postgres.PostgresServer``),
    the work pool, the deployments of deployments/prefect.yaml, and ``workers`` workers."""
    root.mkdir(parents=True, exist_ok=True)
    prefect_db, state_db = postgres.create_database(), postgres.create_database()
    server_url = postgres.url(prefect_db, driver="asyncpg")
    with prefect_server(root / "prefect-server", port=0, database_url=server_url) as api:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
        env.update(product_env)
        env.update(
            {
                "PREFECT_API_URL": api,
                "PREFECT_HOME": str(root / "prefect-client"),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PREFECT_WORKER_QUERY_SECONDS": "2",
                "SHOPSYNC_DATABASE_URL": postgres.url(state_db),
                "SHOPSYNC_HOME": str(REPO),
                "SHOPSYNC_DRAIN_CONCURRENCY": str(drain_concurrency),
            }
        )
        prefect(["work-pool", "create", POOL, "--type", "process"], env)
        deploy = ["--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml"]
        prefect([*deploy, "--all"], env)
        prefect(
            [*deploy, "--name", DRAIN, "--concurrency-limit", str(drain_concurrency),
             "--collision-strategy", "CANCEL_NEW"],
            env,
        )  # fmt: skip
        running = Cluster(root, api, env["SHOPSYNC_DATABASE_URL"], env)
        try:
            running.start_workers(workers)
            yield running
        finally:
            running.stop()


def wait_until(condition: Any, timeout: float, every: float = 1.0, tick: Any = None) -> bool:
    """Poll ``condition()`` until true or ``timeout``; ``tick()`` runs between polls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if tick is not None:
            tick()
        time.sleep(every)
    return bool(condition())


def _killpg(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
