"""Prints the median of each figure per (workload, scheduler, N) as a Markdown table."""

import json
import statistics
import sys
from collections import defaultdict

FIGURES = {
    "w1": ["add_s", "add_per_s", "rss_bytes_per_job"],
    "w2": ["drain_s", "jobs_per_s", "lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms", "executed", "missed"],
    "w3": ["executed", "expected", "lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms", "process_cpu_s"],
    "w4": ["idle_cpu_s"],
    "w5": ["next_fire_s", "next_fire_per_s"],
}


def fmt(v):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    return f"{v:,}"


rows = defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    name = r["scheduler"] + (f" (channel {r['channel']})" if r.get("channel", 200) != 200 else "")
    rows[(r["workload"], name, r["n"])].append(r["result"])

for w, figures in FIGURES.items():
    keys = sorted(k for k in rows if k[0] == w)
    if not keys:
        continue
    print(f"\n### {w}\n")
    print("| scheduler | N | " + " | ".join(figures) + " |")
    print("| --- | --- |" + " --- |" * len(figures))
    for key in keys:
        results = rows[key]
        # A scheduler that starts runs before they are due has no meaningful drain time.
        for r in results:
            if w == "w2" and (r.get("drain_s") or 0) <= 0 or r.get("earliest_ms", 0) < 0:
                r["drain_s"] = r["jobs_per_s"] = None
        cells = []
        for f in figures:
            vals = [r.get(f) for r in results if r.get(f) is not None]
            cells.append(fmt(statistics.median(vals)) if vals else "n/a")
        print(f"| {key[1]} | {key[2]:,} | " + " | ".join(cells) + " |")
