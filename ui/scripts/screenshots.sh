#!/bin/sh
# Renders every page of the UI against the canned backend (dev/mockBackend.ts) in headless
# Chromium and saves PNGs at 900x700: a quick look without the app. The real window's
# screenshots come from the end-to-end tests.
# Usage: sh scripts/screenshots.sh [OUT_DIR]   (default: ../target/screenshots/ui-mock)
set -eu
cd "$(dirname "$0")/.."
OUT=${1:-../target/screenshots/ui-mock}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
CHROME=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
[ -n "$CHROME" ] || { echo "chromium is not installed (apt-get install chromium)" >&2; exit 1; }
npx vite build --mode mock --logLevel warn
LOG=$(mktemp)
python3 -m http.server 0 --bind 127.0.0.1 --directory dist-mock >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -f "$LOG"' EXIT
PORT=""
for _ in 1 2 3 4 5 6 7 8 9 10; do
  PORT=$(grep -o 'port [0-9]*' "$LOG" | awk '{print $2}' || true)
  [ -n "$PORT" ] && break
  sleep 0.3
done
[ -n "$PORT" ] || { echo "static server did not start" >&2; exit 1; }
shot() { # name hash [flags]
  name=$1; hash=$2; shift 2
  timeout 60 "$CHROME" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=900,700 \
    --virtual-time-budget=4000 "$@" --screenshot="$OUT/$name.png" "http://127.0.0.1:$PORT/mock.html#$hash" >/dev/null 2>&1
  echo "$OUT/$name.png"
}
shot settings-accounts ""
shot settings-accounts-empty "empty"
shot settings-saveris-edit "click=account-edit-s1"
shot settings-saveris-custom "empty,click=add-saveris+saveris-advanced+saveris-custom"
shot settings-element-edit "click=account-edit-e1"
shot settings-channels "click=section-channels"
shot settings-subscription-edit "click=section-channels+sub-edit-sub1"
shot settings-rules "click=section-rules"
shot settings-rule-edit "click=section-rules+rule-edit-r2"
shot settings-general "click=section-general"
shot history-alarms "history,focus"
shot history-unparsed "history,click=history-unparsed"
shot dashboard "dashboard"
shot dashboard-dark "dashboard" --force-dark-mode --blink-settings=preferredColorScheme=0
shot settings-dark "click=section-general" --force-dark-mode --blink-settings=preferredColorScheme=0
shot not-running "notrunning"
shot notice "notice"
