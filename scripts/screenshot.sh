#!/usr/bin/env bash
# Takes docs/dashboard.png: `chime serve` on examples/chime.toml in a scratch
# directory, one job paused and one run requested so the page shows each
# state, then headless Chromium at 1100x640. Needs /usr/bin/chromium
# (apt-get install chromium). Run from the repository: scripts/screenshot.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
cargo build --release -q --bin chime
chime="$repo/target/release/chime"
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
port=18080
# The example's health-ping calls 127.0.0.1:8080; point it at this server.
sed "s/127.0.0.1:8080/127.0.0.1:$port/" examples/chime.toml > "$work/chime.toml"
cd "$work"
"$chime" serve --config chime.toml --listen "127.0.0.1:$port" > serve.log 2>&1 &
server=$!
for _ in $(seq 100); do
    grep -q "chime is running" serve.log 2>/dev/null && break
    sleep 0.1
done
"$chime" jobs pause daily-report --reason "holiday week" > /dev/null
"$chime" jobs run weekday-backup --wait > /dev/null
"$chime" jobs run health-ping --wait > /dev/null
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/profile" --hide-scrollbars --window-size=1100,640 \
    --virtual-time-budget=2000 --screenshot="$repo/docs/dashboard.png" "http://127.0.0.1:$port/" 2> /dev/null
echo "wrote docs/dashboard.png"
