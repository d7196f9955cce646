"""APScheduler 3.11 (asyncio scheduler, memory job store) on chime's workloads.

Usage: python apscheduler_bench.py WORKLOAD N  -> one JSON line, like chime-bench.
"""

import asyncio
import json
import math
import os
import sys
import time
from datetime import datetime, timedelta, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

try:
    from zoneinfo import ZoneInfo
except ImportError:  # pragma: no cover
    ZoneInfo = None


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    rank = max(1, min(len(values), math.ceil(len(values) * p)))
    return values[rank - 1]


def scheduler():
    # misfire_grace_time=None: late runs still run, as chime's default.
    return AsyncIOScheduler(timezone=timezone.utc, job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1})


async def noop():
    pass


async def w1(n):
    s = scheduler()
    before = rss_bytes()
    start = time.perf_counter()
    for i in range(n):
        s.add_job(noop, "interval", hours=1, id=f"job-{i}")
    s.start()  # jobs added before start are only stored on start
    add_s = time.perf_counter() - start
    result = {"add_s": add_s, "add_per_s": n / add_s, "rss_bytes_per_job": (rss_bytes() - before) / n}
    s.shutdown(wait=False)
    return result


async def w2(n):
    s = scheduler()
    s.start()
    # W2_LEAD_S: see chime-bench's w2.
    due = datetime.now(timezone.utc) + timedelta(seconds=float(os.environ.get("W2_LEAD_S", "2")))
    lateness = []

    async def record():
        lateness.append((datetime.now(timezone.utc) - due).total_seconds() * 1000)

    for i in range(n):
        s.add_job(record, "date", run_date=due, id=f"job-{i}")
    deadline = time.monotonic() + 60
    while len(lateness) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    s.shutdown(wait=False)
    return {
        "drain_s": max(lateness) / 1000 if lateness else None,
        "jobs_per_s": len(lateness) / (max(lateness) / 1000) if lateness else None,
        "lateness_p50_ms": percentile(lateness, 0.5),
        "lateness_p99_ms": percentile(lateness, 0.99),
        "lateness_max_ms": percentile(lateness, 1.0),
        "executed": len(lateness),
        "missed": n - len(lateness),
    }


async def w3(n):
    s = scheduler()
    s.start()
    start = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    end = start + timedelta(seconds=9.5)
    lateness = []

    async def record():
        now = datetime.now(timezone.utc)
        # Every job fires on whole seconds from `start`.
        lateness.append(((now - start).total_seconds() % 1.0) * 1000)

    for i in range(n):
        s.add_job(record, "interval", seconds=1, start_date=start, end_date=end, id=f"job-{i}")
    cpu = time.process_time()
    deadline = time.monotonic() + 15
    while len(lateness) < n * 10 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    cpu = time.process_time() - cpu
    s.shutdown(wait=False)
    return {
        "executed": len(lateness),
        "expected": n * 10,
        "lateness_p50_ms": percentile(lateness, 0.5),
        "lateness_p99_ms": percentile(lateness, 0.99),
        "lateness_max_ms": percentile(lateness, 1.0),
        "process_cpu_s": cpu,
    }


async def w4(n):
    s = scheduler()
    s.start()
    due = datetime.now(timezone.utc) + timedelta(hours=1)
    for i in range(n):
        s.add_job(noop, "date", run_date=due, id=f"job-{i}")
    await asyncio.sleep(0.2)
    cpu = time.process_time()
    await asyncio.sleep(10)
    result = {"idle_cpu_s": time.process_time() - cpu}
    s.shutdown(wait=False)
    return result


async def w5(n):
    tz = ZoneInfo("America/New_York")
    trigger = CronTrigger(minute="*/7", hour="9-17", day_of_week="mon-fri", timezone=tz)
    at = datetime(2026, 1, 1, tzinfo=tz)
    prev = None
    start = time.perf_counter()
    for _ in range(n):
        prev = trigger.get_next_fire_time(prev, at)
        at = prev + timedelta(microseconds=1)
    s = time.perf_counter() - start
    return {"next_fire_s": s, "next_fire_per_s": n / s, "last": prev.isoformat()}


def main():
    workload, n = sys.argv[1], int(sys.argv[2])
    fn = {"w1": w1, "w2": w2, "w3": w3, "w4": w4, "w5": w5}[workload]
    result = asyncio.run(fn(n))
    print(json.dumps({"scheduler": "apscheduler", "workload": workload, "n": n, "result": result}))


if __name__ == "__main__":
    main()
