#!/usr/bin/env bash
# Soak: `chime serve` on SQLite with 200 command jobs every second
# (history_keep = 100); every 10 s, one line: seconds since start, the
# database's size with its WAL, the rows of chime_run, the server's CPU
# seconds and RSS, and the p50 / p99 / max lateness (start minus scheduled
# time) of the runs scheduled in the last 10 s that have started.
# Usage: bench/soak.sh [CHIME_BINARY] [SECONDS]
# (default target/release/chime, 600 s).
set -euo pipefail
bin="$(realpath "${1:-target/release/chime}")"
duration="${2:-600}"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
{
    printf '[scheduler]\nhistory_keep = 100\nstore = "sqlite://%s/soak.db"\n\n[http]\nlisten = "127.0.0.1:0"\n\n' "$dir"
    for i in $(seq -w 0 199); do
        printf '[[job]]\nid = "j%s"\nevery = "1s"\ncommand = ["true"]\n\n' "$i"
    done
} > "$dir/chime.toml"
"$bin" serve --config "$dir/chime.toml" > "$dir/serve.log" 2>&1 &
pid=$!
start=$(date +%s)
while [ $(( $(date +%s) - start )) -lt "$duration" ]; do
    sleep 10
    size=$(du -cb "$dir"/soak.db* 2>/dev/null | tail -1 | cut -f1)
    cpu=$(awk '{print ($14 + $15) / 100}' "/proc/$pid/stat")
    rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
    runs=$(python3 - "$dir/soak.db" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
rows = db.execute("SELECT COUNT(*) FROM chime_run").fetchone()[0]
since = int((time.time() - 10) * 1e6)
late = sorted(r[0] / 1000 for r in db.execute(
    "SELECT started_at - scheduled_for FROM chime_run WHERE scheduled_for >= ? AND started_at IS NOT NULL", (since,)))
pick = lambda p: late[min(len(late) - 1, int(len(late) * p))] if late else float("nan")
print(f"rows={rows} late_ms_p50={pick(0.5):.1f} late_ms_p99={pick(0.99):.1f} late_ms_max={pick(1.0):.1f} started={len(late)}")
PY
)
    echo "t=$(( $(date +%s) - start )) size=$size $runs cpu_s=$cpu rss_kb=$rss"
done
kill -TERM "$pid"
wait "$pid" || true
echo "serve log lines: $(wc -l < "$dir/serve.log")"
