"""``python -m bench --profile quick|full``: run the benchmarks, print one JSON object per result,
write ``bench/results/latest.json``.

    python -m bench --profile quick                 # make bench (10-20 minutes)
    python -m bench --profile full                  # make bench-full
    python -m bench --only receiver,end_to_end      # a subset
    python -m bench --only reconcile --reconcile-sizes 10000,100000
    python -m bench --only workers                  # 1 vs 3 workers on PostgreSQL (full has it)
    python -m bench --only flash_sale,trickle       # 200 ms Salesforce, through shopsync serve

Everything runs on 127.0.0.1. The sandboxes, the Prefect server, the product and the baselines
each run in their own processes; every figure is reported next to its baseline from the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from bench.common import PROFILES, Profile, Results, log

RESULTS_DIR = Path(__file__).with_name("results")
ORDER = ("api_calls", "receiver", "end_to_end", "flash_sale", "trickle", "reconcile", "workers")
# Not in the quick profile's default set: it would take make bench past 10 minutes.
FULL_ONLY = ("workers",)


def machine(load_at_start: tuple[float, float, float]) -> dict[str, object]:
    """What the numbers were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": load_at_start,
        "loadavg_at_end": os.getloadavg(),
    }


def benchmark(name: str) -> Callable[[Profile, Path, str, Results], None]:
    """The ``run`` function of one benchmark module."""
    if name == "api_calls":
        from bench.api_calls import run
    elif name == "receiver":
        from bench.receiver import run
    elif name == "end_to_end":
        from bench.end_to_end import run
    elif name == "workers":
        from bench.workers import run
    elif name == "flash_sale":
        from bench.flash_sale import run
    elif name == "trickle":
        from bench.trickle import run
    else:
        from bench.reconcile import run
    return run


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks; exit 1 if any of them failed."""
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--profile", choices=sorted(PROFILES), default="quick")
    parser.add_argument("--only", help=f"comma-separated benchmarks of {', '.join(ORDER)}")
    parser.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    parser.add_argument(
        "--reconcile-sizes", help="override the profile's reconcile sizes, e.g. 10000,100000"
    )
    parser.add_argument("--flash-orders", type=int, help="override the flash sale's burst size")
    args = parser.parse_args(argv)
    profile = PROFILES[args.profile]
    if args.flash_orders:
        profile = replace(profile, flash_orders=args.flash_orders)
    if args.reconcile_sizes:
        sizes = tuple(int(s) for s in args.reconcile_sizes.split(","))
        profile = replace(profile, reconcile_sizes=sizes)
    default = [b for b in ORDER if profile.name == "full" or b not in FULL_ONLY]
    chosen = [b for b in ORDER if b in (args.only.split(",") if args.only else default)]
    run_dir = Path(tempfile.mkdtemp(prefix="shopsync-bench-"))
    results = Results()
    started = time.monotonic()
    load_at_start = os.getloadavg()
    failures: dict[str, str] = {}
    log(f"profile {profile.name}: {', '.join(chosen)}; logs in {run_dir}")
    from deployments.local import prefect_server

    try:
        with prefect_server(run_dir / "prefect", port=0) as api:
            log(f"Prefect server at {api}")
            for name in chosen:
                began = time.monotonic()
                try:
                    benchmark(name)(profile, run_dir, api, results)
                except Exception as exc:
                    failures[name] = f"{type(exc).__name__}: {exc}"
                    traceback.print_exc(file=sys.stderr)
                    results.add(name, "error", error=failures[name][:2000])
                log(f"{name} took {time.monotonic() - began:.0f} s")
    finally:
        report = {
            "profile": profile.name,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "wall_s": round(time.monotonic() - started, 1),
            "machine": machine(load_at_start),
            "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
            if (argv or sys.argv[1:])
            else "python -m bench",
            "results": results.rows,
            "failures": failures,
        }
        RESULTS_DIR.mkdir(exist_ok=True)
        text = json.dumps(report, indent=2, default=str) + "\n"
        (RESULTS_DIR / "latest.json").write_text(text)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        (RESULTS_DIR / f"{profile.name}-{stamp}.json").write_text(text)
        log(f"wrote {RESULTS_DIR / 'latest.json'} after {report['wall_s']} s")
        if args.keep or failures:
            log(f"logs kept in {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
