"""Measure: seed N Opportunities, then one upsert by external id over HTTP.

Run: ``.venv/bin/python -m sandbox.salesforce.measure [N]`` (default 100,000). Prints seconds
and the process RSS; nothing is asserted.
"""

from __future__ import annotations

import resource
import sys
import time

import httpx

from sandbox.salesforce import SalesforceSandbox
from sandbox.salesforce.client import simple_salesforce
from sandbox.server import BackgroundServer

OPP = "External_Shopify_Order_ID__c"


def _rss_mb() -> float:
    """Current resident set size in MB (Linux /proc), else the peak."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _opportunities(n: int) -> list[dict[str, object]]:
    return [
        {"Name": f"Shopify Order #{i}", "StageName": "New Order", "CloseDate": "2026-05-01",
         "Amount": 100.0 + i % 50, OPP: str(5_000_000_000 + i)}
        for i in range(n)
    ]


def main(n: int = 100_000) -> dict[str, float]:
    """Run the measurement and print one line per figure."""
    rss0 = _rss_mb()
    sb = SalesforceSandbox()
    with BackgroundServer(sb.app) as srv:
        rows = _opportunities(n)
        start = time.perf_counter()
        httpx.post(f"{srv.url}/__sandbox/seed", json={"records": {"Opportunity": rows}},
                   timeout=600).raise_for_status()
        seed_s = time.perf_counter() - start
        del rows
        sf = simple_salesforce(srv.url)
        key = str(5_000_000_000 + n // 2)
        start = time.perf_counter()
        status = sf.Opportunity.upsert(f"{OPP}/{key}", {"Amount": 1.0})
        upsert_s = time.perf_counter() - start
        start = time.perf_counter()
        found = sf.query(f"SELECT Id FROM Opportunity WHERE {OPP} = '{key}'")  # noqa: S608
        query_s = time.perf_counter() - start
        figures = {
            "records": float(len(sb.store.records["Opportunity"])),
            "seed_http_s": seed_s,
            "upsert_s": upsert_s,
            "upsert_status": float(status),
            "indexed_query_s": query_s,
            "query_hits": float(found["totalSize"]),
            "rss_mb": _rss_mb(),
            "rss_before_mb": rss0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    for name, value in figures.items():
        print(f"{name}: {value:.3f}")  # noqa: T201 - a measuring script prints
    return figures


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)
