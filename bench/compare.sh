#!/usr/bin/env bash
# Runs chime, APScheduler 3.11.3 and tokio-cron-scheduler on the same workloads
# and prints one comparison table (medians of $RUNS runs). Takes ~10 minutes.
#   bench/compare.sh            all workloads
#   RUNS=1 bench/compare.sh w2  one workload, once
set -euo pipefail
cd "$(dirname "$0")"
RUNS="${RUNS:-3}"
# Every scheduler finishes adding its w2 burst before the burst falls due.
export W2_LEAD_S="${W2_LEAD_S:-10}"
WORKLOADS=("${@:-w1 w2 w3 w4 w5}")
read -r -a WORKLOADS <<< "${WORKLOADS[*]}"
declare -A SIZE=([w1]=100000 [w2]=100000 [w3]=10000 [w4]=100000 [w5]=100000)
# chime is also measured at the sizes of its own targets.
declare -A CHIME_EXTRA=([w1]=1000000 [w4]=1000000)

(cd .. && cargo build --release -q -p chime-bench)
(cd tcs && cargo build --release -q)
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
    .venv/bin/pip install -q "apscheduler==3.11.3" "tzdata"
fi

out="$(mktemp)"
for w in "${WORKLOADS[@]}"; do
    n="${SIZE[$w]}"
    for _ in $(seq "$RUNS"); do
        ../target/release/chime-bench "$w" "$n" >> "$out"
        tcs/target/release/tcs-bench "$w" "$n" >> "$out"
        if [ "$w" = w2 ]; then tcs/target/release/tcs-bench "$w" "$n" "$n" >> "$out"; fi
        .venv/bin/python apscheduler_bench.py "$w" "$n" >> "$out"
        if [ -n "${CHIME_EXTRA[$w]:-}" ]; then ../target/release/chime-bench "$w" "${CHIME_EXTRA[$w]}" >> "$out"; fi
    done
done
python3 table.py "$out"
echo "raw results: $out" >&2
