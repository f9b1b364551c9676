"""Smoke test of the benchmark helpers (the benchmarks themselves run with ``make bench``)."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from bench.baselines.floor import create_floor_app
from bench.common import percentile, ratio, worker_answer
from bench.receiver import lua_script
from bench.report import render
from bench.worker import summarise_latencies
from webhooks.deliveries import sign


def test_percentile_and_ratio() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 50) is None
    assert ratio(1, 4) == 0.25
    assert ratio(None, 4) is None
    assert ratio(1, 0) is None


def test_latencies_from_receipt_to_ledger() -> None:
    received = {"1": "2026-11-28 10:00:00", "2": "2026-11-28 10:00:01"}
    synced = {"1": "2026-11-28 10:00:02", "2": "2026-11-28 10:00:05"}
    figures = summarise_latencies(received, synced)
    assert figures["orders_synced"] == 2
    assert figures["span_s"] == 5.0
    assert figures["orders_per_s"] == 0.4
    assert figures["p50_s"] == 2.0
    assert figures["max_s"] == 4.0


def test_worker_answer_takes_the_last_marked_line() -> None:
    out = 'noise\nBENCH-RESULT {"a": 1}\n{"b": 2}\nBENCH-RESULT {"a": 3}\n'
    assert worker_answer(out) == {"a": 3}
    assert worker_answer("nothing") is None


def test_floor_receiver_checks_the_signature_and_stores(tmp_path: Path) -> None:
    app = create_floor_app(b"secret", tmp_path / "floor.db")
    body = b'{"id": 1}'
    with TestClient(app) as client:
        good = {"X-Shopify-Hmac-Sha256": sign(body, b"secret"), "X-Shopify-Webhook-Id": "w1"}
        assert client.post("/webhooks/shopify", content=body, headers=good).status_code == 200
        bad = {**good, "X-Shopify-Hmac-Sha256": sign(body, b"other")}
        assert client.post("/webhooks/shopify", content=body, headers=bad).status_code == 401


def test_wrk_script_embeds_a_signed_body(tmp_path: Path) -> None:
    script = lua_script(b'{"id": 7}', tmp_path / "x.lua", "run1").read_text()
    assert sign(b'{"id": 7}', b"bench-webhook-secret") in script
    assert "X-Shopify-Webhook-Id" in script


def test_report_renders_a_minimal_run() -> None:
    report = {
        "command": "python -m bench",
        "finished_at": "2026-11-28T00:00:00+00:00",
        "wall_s": 1.0,
        "machine": {"nproc": 2, "cpu": "cpu", "python": "3.11", "loadavg_at_start": [0, 0, 0]},
        "results": [{"benchmark": "receiver", "name": "error", "error": "boom"}],
    }
    assert "boom" in render(report)
