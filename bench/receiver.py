"""Benchmark 3: the webhook receiver's requests/s and latency, product vs ``floor``.

Each receiver runs alone in its own uvicorn process on 127.0.0.1 with a fresh SQLite inbox
(WAL, ``synchronous=FULL``). ``wrk`` (Debian package) sends one pre-signed real order body with a
unique ``X-Shopify-Webhook-Id`` per request (a Lua ``request()`` function) at a fixed number of
connections for a fixed time. Rounds alternate floor / product / product-nudge so that load from
other work on the machine hits all of them alike; the medians are reported, with the receiver
process's CPU time per request (less sensitive to that load than requests/s).

Kinds: ``floor`` (bench.baselines.floor), ``product`` (``build_receiver`` as ``shopsync serve``
runs it: the real ``StateStore``, and after each stored delivery the warm drain's poke, an
``Event.set``; nothing drains here), ``product-nudge`` (``build_receiver`` as ``shopsync webhooks
serve`` runs it, a receiver on its own: its nudger looks at the inbox and emits a Prefect event to
the run's Prefect server when a drain run is needed).

Without ``wrk`` on the PATH the benchmark reports "not measured" (``apt-get install wrk``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import (
    SHOP,
    WEBHOOK_SECRET,
    Profile,
    Results,
    children,
    log,
    median,
    product_env,
    ratio,
    sandbox_get,
    start_child,
    start_shopify,
    wait_http,
)
from sandbox.server import free_port
from webhooks.deliveries import sign

NAME = "receiver"
KINDS = ("floor", "product", "product-nudge")
TARGET = ">= 0.7 x floor's requests/s, p99 <= 2 x floor's p99 (same run)"

LUA = """
wrk.method = "POST"
local body = [==[%(body)s]==]
local base = {
  ["Content-Type"] = "application/json",
  ["X-Shopify-Topic"] = "orders/create",
  ["X-Shopify-Hmac-Sha256"] = "%(signature)s",
  ["X-Shopify-Shop-Domain"] = "%(shop)s",
  ["X-Shopify-API-Version"] = "2026-10",
  ["X-Shopify-Triggered-At"] = "2026-11-28T10:00:00.000000Z",
}
local threads = {}
local counter = 0
local tag = "t"

function setup(thread)
  thread:set("tag", "t" .. #threads)
  table.insert(threads, thread)
end

function request()
  counter = counter + 1
  local headers = {}
  for k, v in pairs(base) do headers[k] = v end
  headers["X-Shopify-Webhook-Id"] = "%(run)s-" .. tag .. "-" .. counter
  return wrk.format(nil, "/webhooks/shopify", headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, '
    .. '"status": %%d, "timeout": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, '
    .. '"max_us": %%d, "mean_us": %%.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
"""


def sample_body(run_dir: Path) -> bytes:
    """A real generated order's webhook body (compact JSON, as Shopify sends it)."""
    shop = start_shopify(run_dir, orders=10, name="receiver-shop")
    with children(shop):
        info = sandbox_get(shop.url, "shop")
        order = sandbox_get(shop.url, f"orders/{info['first_order_id']}")["order"]
    return json.dumps(order, ensure_ascii=False, separators=(",", ":")).encode()


def lua_script(body: bytes, path: Path, run: str) -> Path:
    """Write the wrk script for this body."""
    text = body.decode()
    if "]==]" in text:
        raise ValueError("the sample body cannot be embedded in a Lua long string")
    path.write_text(
        LUA
        % {
            "body": text,
            "signature": sign(body, WEBHOOK_SECRET.encode()),
            "shop": SHOP,
            "run": run,
        }
    )
    return path


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict[str, Any]:
    """Run wrk once (one thread, ``connections`` connections, bounded by time)."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {done.stdout}\n{done.stderr}")
    return json.loads(line[len("WRKJSON ") :])


def one_round(
    kind: str,
    round_no: int,
    connections: int,
    run_dir: Path,
    env: dict[str, str],
    body: bytes,
    profile: Profile,
) -> dict[str, Any]:
    """Start one receiver, load it with ``connections`` connections, stop it; its figures."""
    data = run_dir / f"{kind}-{connections}c-{round_no}"
    port = free_port()
    child = start_child(
        f"{kind}-{round_no}",
        ["-m", "bench.serve_receiver", kind, "--port", str(port)],
        run_dir,
        {**env, "SHOPSYNC_DATA_DIR": str(data)},
    )
    with children(child):
        wait_http(f"http://127.0.0.1:{port}/healthz", child)
        name = f"{kind}-{connections}c-{round_no}"
        script = lua_script(body, run_dir / f"{name}.lua", name)
        wrk(f"http://127.0.0.1:{port}", script, 2, 1)  # warm-up
        before = child.usage()
        load = wrk(
            f"http://127.0.0.1:{port}",
            script,
            connections,
            profile.receiver_seconds,
        )
        after = child.usage()
    errors = sum(load[k] for k in ("connect", "read", "write", "status", "timeout"))
    cpu = after.get("cpu_s", 0) - before.get("cpu_s", 0)
    seconds = load["duration_us"] / 1e6
    return {
        "kind": kind,
        "connections": connections,
        "round": round_no,
        "requests": load["requests"],
        "errors": errors,
        "rps": round(load["requests"] / seconds, 1),
        "p50_ms": round(load["p50_us"] / 1000, 2),
        "p99_ms": round(load["p99_us"] / 1000, 2),
        "max_ms": round(load["max_us"] / 1000, 2),
        "cpu_ms_per_request": round(cpu * 1000 / load["requests"], 3) if load["requests"] else None,
        "peak_rss_mb": after.get("peak_rss_mb"),
    }


def run(profile: Profile, run_dir: Path, prefect_api: str, results: Results) -> None:
    """Alternate floor / product / product-nudge for ``receiver_rounds`` rounds."""
    if shutil.which("wrk") is None:
        results.add(NAME, "receiver", status="not measured: wrk is not installed")
        return
    work = run_dir / "receiver"
    work.mkdir(parents=True, exist_ok=True)
    body = sample_body(work)
    env = {
        **product_env("http://127.0.0.1:9", "http://127.0.0.1:9", work),
        "PREFECT_API_URL": prefect_api,
    }
    rounds: list[dict[str, Any]] = []
    for connections in profile.receiver_connections:
        mine = []
        for round_no in range(profile.receiver_rounds):
            for kind in KINDS:
                figures = one_round(kind, round_no, connections, work, env, body, profile)
                log(f"receiver: {figures}")
                mine.append(figures)
                time.sleep(0.5)
        report(connections, mine, len(body), profile, results)
        rounds.extend(mine)
    results.add(NAME, "rounds", rounds=rounds)


def report(
    connections: int,
    rounds: list[dict[str, Any]],
    body_bytes: int,
    profile: Profile,
    results: Results,
) -> None:
    """Medians per kind at one connection count, product kinds against the floor."""
    summary: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        mine = [r for r in rounds if r["kind"] == kind]
        summary[kind] = {
            key: median([r[key] for r in mine if r[key] is not None])
            for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request", "peak_rss_mb")
        }
        summary[kind]["errors"] = sum(r["errors"] for r in mine)
        summary[kind]["requests"] = sum(r["requests"] for r in mine)
    floor = summary["floor"]
    for kind in ("product", "product-nudge"):
        mine = summary[kind]
        rps_ratio = ratio(mine["rps"], floor["rps"])
        p99_ratio = ratio(mine["p99_ms"], floor["p99_ms"])
        results.add(
            NAME,
            f"{kind}_vs_floor_{connections}c",
            connections=connections,
            seconds_per_round=profile.receiver_seconds,
            rounds=profile.receiver_rounds,
            body_bytes=body_bytes,
            product=mine,
            floor=floor,
            rps_ratio=rps_ratio,
            p99_ratio=p99_ratio,
            cpu_per_request_ratio=ratio(mine["cpu_ms_per_request"], floor["cpu_ms_per_request"]),
            target=TARGET,
            met=(rps_ratio or 0) >= 0.7 and (p99_ratio or 99) <= 2,
        )
