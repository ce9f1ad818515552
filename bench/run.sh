#!/usr/bin/env bash
# `make bench`: installs what the bench needs beyond `make deps-system`, builds the release
# binary and the bench (build time is reported but not part of the run), then runs the whole
# bench inside a throwaway desktop session (scripts/desktop-session.sh). Writes
# target/bench/report.json and prints the table. See docs/BENCH.md.
#
# Environment: BENCH_QUICK=1 for a smoke run; BENCH_SECTIONS, BENCH_MESSAGES, … (docs/BENCH.md).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
TOOLS="$ROOT/.tools"

# Qt's xcb platform plugin (gotify-tray) needs these on top of the app's own packages.
missing=$(for p in libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxkbcommon-x11-0 libxcb-render-util0 libxcb-image0 libxcb-shape0 libxcb-xkb1 python3-venv rabbitmq-server; do
  dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "bench: installing Debian packages: $missing"
  $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq $missing
fi

# Node.js may come from elsewhere than Debian (as `make deps` assumes too).
command -v npm >/dev/null || { DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq nodejs npm; }

# The vendor's sample client stack, pinned by bench/node/package-lock.json.
if [ ! -f bench/node/node_modules/.stamp ] || [ bench/node/package-lock.json -nt bench/node/node_modules/.stamp ]; then
  (cd bench/node && npm ci --no-audit --no-fund && touch node_modules/.stamp)
fi

# gotify-tray in its own venv (its PyQt6 is large; kept apart from the test peers' venv).
if [ ! -f "$TOOLS/gotify-venv/.stamp" ] || [ bench/requirements.txt -nt "$TOOLS/gotify-venv/.stamp" ]; then
  python3 -m venv "$TOOLS/gotify-venv"
  "$TOOLS/gotify-venv/bin/pip" install -q -r bench/requirements.txt
  touch "$TOOLS/gotify-venv/.stamp"
fi

# Release build of the app and the bench (cargo bench builds the binary the bench starts).
mkdir -p "$ROOT/target"
echo "bench: building (release) …"
t0=$(date +%s)
cargo bench -p alarm-tray --bench pipeline --no-run --message-format=json-render-diagnostics >"$ROOT/target/bench-build.json"
BENCH_BIN=$(python3 -c '
import json, sys
exe = None
for line in open(sys.argv[1]):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "pipeline" and m.get("executable"):
        exe = m["executable"]
print(exe or "")
' "$ROOT/target/bench-build.json")
[ -n "$BENCH_BIN" ] || { echo "bench: no bench executable was built"; exit 1; }
echo "bench: build took $(( $(date +%s) - t0 )) s (not part of the bench run)"

export ALARM_TRAY_BIN="${ALARM_TRAY_BIN:-$ROOT/target/release/alarm-tray}"
export BENCH_NODE_DIR="$ROOT/bench/node" BENCH_GOTIFY_TRAY="$TOOLS/gotify-venv/bin/gotify-tray"
export BENCH_REPORT="${BENCH_REPORT:-$ROOT/target/bench/report.json}"
# The session's D-Bus helpers chatter on stderr; the bench's own errors still show.
exec scripts/desktop-session.sh "$BENCH_BIN" --bench
