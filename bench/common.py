"""Shared plumbing for the benchmarks: profiles, child processes, sandboxes, measurements.

Every measured thing runs in its own process: the sandboxes (``bench.sandboxes``), the Prefect
server, the product's receiver and drain (``bench.worker``), and the baselines. A process reports
its own CPU time and peak RSS (``resource.getrusage``), or the orchestrator reads them from
``/proc/<pid>`` for a server it stops itself.
"""

from __future__ import annotations

import json
import math
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sandbox.server import free_port

SHOP = "sandbox-shop.myshopify.com"
SHOP_TOKEN = "shpat_bench"  # noqa: S105 - the local sandbox's, not a real secret
WEBHOOK_SECRET = "bench-webhook-secret"  # noqa: S105 - sandbox only
SHOP_TIMEZONE = "America/New_York"
CLK_TCK = os.sysconf("SC_CLK_TCK")
RESULT = "BENCH-RESULT "
READY = "BENCH-READY"

REPO = Path(__file__).resolve().parents[1]  # the repository root (bench is not installed)


@dataclass(frozen=True)
class Profile:
    """How big each benchmark is."""

    name: str
    mix_orders: int  # benchmark 1: orders on the webhook path
    repair_orders: int  # benchmark 1: missing orders to repair
    blueprint_repair_sample: int  # orders the blueprint repairs for real (the rest extrapolated)
    reconcile_sizes: tuple[int, ...]  # benchmark 2
    gap_rate: float  # benchmark 2
    receiver_seconds: int  # benchmark 3: wrk duration per round
    receiver_rounds: int
    receiver_connections: tuple[int, ...]  # benchmark 3: one wrk load per count
    e2e_orders: int  # benchmark 4, product
    e2e_baseline_orders: int  # benchmark 4, run-per-webhook
    workers_orders: int  # benchmark 5: orders drained by 1, then by 3 workers
    flash_orders: int  # benchmark 6: burst through `shopsync serve`, per_order vs adaptive
    trickle_seconds: int  # benchmark 7: one order every 2 s for this long
    trickle_warm_orders: int  # benchmark 7: synced first, so that some customers are known


PROFILES = {
    "quick": Profile(
        name="quick",
        mix_orders=300,
        repair_orders=10_000,
        blueprint_repair_sample=500,
        # 100,000 (three runs, ~6 minutes here) does not fit in the 10-minute budget with the rest;
        # `--reconcile-sizes 10000,100000` or the full profile has it (see BENCHMARKS.md).
        reconcile_sizes=(10_000, 20_000),
        gap_rate=0.03,
        receiver_seconds=6,
        receiver_rounds=2,
        receiver_connections=(8, 32),
        e2e_orders=300,
        e2e_baseline_orders=20,
        workers_orders=1_000,
        flash_orders=600,
        trickle_seconds=60,
        trickle_warm_orders=100,
    ),
    "full": Profile(
        name="full",
        mix_orders=2_000,
        repair_orders=10_000,
        blueprint_repair_sample=10_000,
        reconcile_sizes=(10_000, 100_000, 1_000_000),
        gap_rate=0.03,
        receiver_seconds=15,
        receiver_rounds=3,
        receiver_connections=(8, 32),
        e2e_orders=1_000,
        e2e_baseline_orders=30,
        workers_orders=2_000,
        flash_orders=2_000,
        trickle_seconds=60,
        trickle_warm_orders=300,
    ),
}


# -- results --------------------------------------------------------------------------------


@dataclass
class Results:
    """The result lines of one run; each is printed as one JSON object when added."""

    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, benchmark: str, name: str, **values: Any) -> dict[str, Any]:
        """Record and print one result."""
        row = {"benchmark": benchmark, "name": name, **values}
        self.rows.append(row)
        print(json.dumps(row, default=str), flush=True)
        return row


def log(message: str) -> None:
    """Progress, on stderr (stdout carries only the JSON result lines)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator`` rounded, or None when either is missing or zero."""
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The ``pct`` percentile (nearest rank), or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(pct / 100 * len(ordered))
    return ordered[max(0, min(len(ordered), rank) - 1)]


def median(values: Sequence[float]) -> float | None:
    """The median, or None for no values."""
    return statistics.median(values) if values else None


def self_usage() -> dict[str, float]:
    """This process's CPU seconds (user + system) and peak RSS in MB."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def proc_usage(pid: int) -> dict[str, float]:
    """CPU seconds (own + reaped children) and peak RSS (VmHWM, MB) of a live process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    fields = stat.rsplit(")", 1)[1].split()
    # fields[11..14] are utime, stime, cutime, cstime (man 5 proc, counted from field 3).
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    children = (int(fields[13]) + int(fields[14])) / CLK_TCK
    hwm = next((ln.split()[1] for ln in status.splitlines() if ln.startswith("VmHWM")), "0")
    return {
        "cpu_s": round(own, 3),
        "children_cpu_s": round(children, 3),
        "peak_rss_mb": round(int(hwm) / 1024, 1),
    }


# -- child processes ------------------------------------------------------------------------


@dataclass
class Child:
    """A child process started by the orchestrator, with its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def usage(self) -> dict[str, float]:
        """CPU and peak RSS so far (see :func:`proc_usage`)."""
        return proc_usage(self.pid)

    def stop(self, timeout: float = 15) -> None:
        """SIGINT, then SIGTERM, then SIGKILL: this process only."""
        if self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5)):
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue
        self.process.kill()
        self.process.wait(timeout=5)

    def tail(self, lines: int = 30) -> str:
        """The end of the log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for child processes: quiet Prefect, no analytics, plus ``extra``.

    The repository root leads ``PYTHONPATH``: ``bench`` and ``sandbox`` are not installed (the
    wheel holds the product only), and children run in their own directories."""
    paths = [str(REPO), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    }
    env.update(extra or {})
    return env


def start_child(
    name: str,
    args: Sequence[str],
    run_dir: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Child:
    """Start ``python -m …`` (``args`` after the interpreter) with output to a log file."""
    log_path = run_dir / f"{name}.log"
    handle = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, *args],
        env=python_env(env),
        stdout=handle,
        stderr=subprocess.STDOUT,
        cwd=str(cwd or run_dir),
    )
    handle.close()
    return Child(name, process, log_path)


def wait_http(url: str, child: Child | None = None, timeout: float = 90) -> None:
    """Wait until ``url`` answers (any status below 500)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child is not None and child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited early:\n{child.tail()}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


@contextmanager
def children(*started: Child) -> Iterator[tuple[Child, ...]]:
    """Stop the given children when the block ends, whatever happens."""
    try:
        yield started
    finally:
        for child in reversed(started):
            child.stop()


def start_salesforce(run_dir: Path, name: str = "salesforce-sandbox") -> Child:
    """The Salesforce sandbox in its own process, ready."""
    port = free_port()
    child = start_child(name, ["-m", "bench.sandboxes", "salesforce", "--port", str(port)], run_dir)
    child.url = f"http://127.0.0.1:{port}"
    wait_http(f"{child.url}/__sandbox/stats", child)
    return child


def start_shopify(
    run_dir: Path, orders: int, days: int = 20, name: str = "shopify-sandbox", seed: int = 2026
) -> Child:
    """A generated shop (30 % repeat customers, Shopify Plus) in its own process, ready."""
    port = free_port()
    args = ["-m", "bench.sandboxes", "shopify", "--port", str(port), "--orders", str(orders)]
    args += ["--days", str(days), "--seed", str(seed)]
    child = start_child(name, args, run_dir)
    child.url = f"http://127.0.0.1:{port}"
    wait_http(f"{child.url}/__sandbox/shop", child, timeout=180)
    return child


def product_env(salesforce_url: str, shopify_url: str, data_dir: Path) -> dict[str, str]:
    """The settings that point the product at the sandboxes, with state in ``data_dir``."""
    return {
        "SALESFORCE_LOGIN_URL": salesforce_url,
        "SALESFORCE_AUTH_MODE": "client_credentials",
        "SALESFORCE_CLIENT_ID": "bench-client",
        "SALESFORCE_CLIENT_SECRET": "bench-secret",
        "SHOPIFY_ADMIN_URL": shopify_url,
        "SHOPIFY_STORE_DOMAIN": SHOP,
        "SHOPIFY_ADMIN_API_ACCESS_TOKEN": SHOP_TOKEN,
        "SHOPIFY_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "SHOPSYNC_DATA_DIR": str(data_dir),
        "SHOPSYNC_SHOP_TIMEZONE": SHOP_TIMEZONE,
        "SHOPSYNC_RETRY_DELAYS_SECONDS": "0.2,0.5,1",
        "SHOPSYNC_INBOX_BACKOFF_SECONDS": "1,2,4",
    }


def run_worker(
    name: str,
    args: Sequence[str],
    run_dir: Path,
    env: dict[str, str],
    timeout: float,
) -> dict[str, Any]:
    """Run ``python -m bench.worker …`` to completion and return its JSON answer (last line)."""
    log_path = run_dir / f"{name}.log"
    with log_path.open("ab") as handle:
        done = subprocess.run(
            [sys.executable, "-m", "bench.worker", *args],
            env=python_env(env),
            stdout=subprocess.PIPE,
            stderr=handle,
            cwd=str(run_dir),
            timeout=timeout,
            check=False,
        )
    answer = worker_answer(done.stdout.decode(errors="replace"))
    if done.returncode != 0 or answer is None:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
        raise RuntimeError(f"worker {name} failed ({done.returncode}):\n{tail}")
    return answer


def worker_answer(output: str) -> dict[str, Any] | None:
    """The JSON after the last ``BENCH-RESULT`` marker in a worker's output, if any."""
    lines = [ln[len(RESULT) :] for ln in output.splitlines() if ln.startswith(RESULT)]
    return json.loads(lines[-1]) if lines else None


def start_worker(name: str, args: Sequence[str], run_dir: Path, env: dict[str, str]) -> Child:
    """Start ``python -m bench.worker …`` in the background; wait until it says it is ready."""
    child = start_child(name, ["-m", "bench.worker", *args], run_dir, env)
    deadline = time.monotonic() + 120
    while READY not in child.log_path.read_text(errors="replace"):
        if child.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker {name} did not get ready:\n{child.tail()}")
        time.sleep(0.1)
    return child


def wait_worker(child: Child, timeout: float) -> dict[str, Any]:
    """Wait for a background worker to finish and return its answer."""
    try:
        child.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.stop()
        raise RuntimeError(
            f"worker {child.name} ran over {timeout:.0f} s:\n{child.tail()}"
        ) from None
    answer = worker_answer(child.log_path.read_text(errors="replace"))
    if child.process.returncode != 0 or answer is None:
        raise RuntimeError(f"worker {child.name} failed:\n{child.tail()}")
    return answer


def sandbox_post(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """POST to a sandbox control route and return the JSON answer."""
    response = httpx.post(f"{url}/__sandbox/{path}", json=body or {}, timeout=600)
    response.raise_for_status()
    return response.json()


def sandbox_get(url: str, path: str, **params: Any) -> Any:
    """GET a sandbox control route and return the JSON answer."""
    response = httpx.get(f"{url}/__sandbox/{path}", params=params, timeout=600)
    response.raise_for_status()
    return response.json()
