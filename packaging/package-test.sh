#!/usr/bin/env bash
# Installs the .deb the way a person does and checks it end to end, on this machine:
#   the package file (control fields, lintian), `apt-get install ./…deb`, where the files
#   land (`dpkg -L`), the desktop entry and AppStream file, `--version`, a settings file of
#   the previous schema, a start from the desktop entry (tray on D-Bus, window opens),
#   a `--hidden` start, the "Start at login" entry, Quit through the tray menu, an upgrade
#   (reinstall) that keeps settings, keyring entries and history, and a clean removal that
#   leaves only the user's data.
#
#   packaging/package-test.sh [path/to/alarm-tray_VERSION_ARCH.deb]     (`make package-test`)
#
# Runs inside scripts/desktop-session.sh (private D-Bus, Xvfb, keyring, dunst, throwaway
# HOME). Uses sudo for apt-get when not root. Refuses to run when alarm-tray is installed
# already: it would remove it. Prints PASS/FAIL lines and `N passed, M failed`; exit 1 on
# any failure. Everything it starts is stopped by PID.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
if [ -z "${ALARM_TRAY_DESKTOP:-}" ]; then
  exec "$ROOT/scripts/desktop-session.sh" "$HERE/package-test.sh" "$@"
fi

VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
ARCH=$(dpkg --print-architecture)
DEB=$(realpath "${1:-${CARGO_TARGET_DIR:-$ROOT/target}/package/alarm-tray_${VERSION}_${ARCH}.deb}")
BIN=/usr/bin/alarm-tray
DESKTOP="/usr/share/applications/Alarm Tray.desktop"
METAINFO=/usr/share/metainfo/org.alarmtray.AlarmTray.metainfo.xml
DATA_DIR="${XDG_DATA_HOME:-$HOME/.local/share}/org.alarmtray.AlarmTray"
AUTOSTART="$HOME/.config/autostart/Alarm Tray.desktop"
SOCKET="$XDG_RUNTIME_DIR/alarm-tray.sock"
TRAY_PATH=/org/ayatana/NotificationItem/tray_icon_tray_app_alarm_tray/Menu
WORK=$(mktemp -d /tmp/alarm-tray-pkgtest.XXXXXX)
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
APT=($SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -y -q)

passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
info() { echo "INFO $*"; }
# check "what" command…: PASS when the command succeeds; its output goes to the log.
check() {
  local what=$1
  shift
  if "$@" >>"$WORK/log" 2>&1; then pass "$what"; else fail "$what (see $WORK/log)"; return 1; fi
}
# No `cmd | grep -q` anywhere: with pipefail, grep quitting early makes the writer die of
# SIGPIPE and the pipeline fail at random. Outputs are captured first.
installed() { [[ "$(dpkg-query -W -f='${Status}' alarm-tray 2>/dev/null)" == *"ok installed"* ]]; }

PIDS=()
INSTALLED=
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ -n "$INSTALLED" ] && installed; then
    echo "cleanup: removing the alarm-tray package this test installed"
    "${APT[@]}" remove alarm-tray >/dev/null 2>&1 || true
  fi
  [ "$failed" = 0 ] && rm -rf "$WORK"
}
trap cleanup EXIT

finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
  exit $?
}

dbus() { dbus-send --session --print-reply --reply-timeout=1000 "$@" 2>/dev/null; }

# The unique bus name exporting the tray menu of process $1 (empty when none).
tray_name() {
  local pid=$1 name owner
  for name in $(dbus --dest=org.freedesktop.DBus / org.freedesktop.DBus.ListNames | grep -o '":[0-9.]*"' | tr -d '"'); do
    owner=$(dbus --dest=org.freedesktop.DBus / org.freedesktop.DBus.GetConnectionUnixProcessID "string:$name" | awk '/uint32/ {print $2}')
    [ "$owner" = "$pid" ] || continue
    if [[ "$(dbus --dest="$name" "$TRAY_PATH" org.freedesktop.DBus.Introspectable.Introspect)" == *com.canonical.dbusmenu* ]]; then
      echo "$name"
      return 0
    fi
  done
  return 1
}

# The PID of a process running $BIN that exports a tray menu (empty when none).
installed_tray_pid() {
  local name pid
  for name in $(dbus --dest=org.freedesktop.DBus / org.freedesktop.DBus.ListNames | grep -o '":[0-9.]*"' | tr -d '"'); do
    pid=$(dbus --dest=org.freedesktop.DBus / org.freedesktop.DBus.GetConnectionUnixProcessID "string:$name" | awk '/uint32/ {print $2}')
    [ -n "$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$BIN" ] || continue
    if [[ "$(dbus --dest="$name" "$TRAY_PATH" org.freedesktop.DBus.Introspectable.Introspect)" == *com.canonical.dbusmenu* ]]; then
      echo "$pid"
      return 0
    fi
  done
  return 1
}

# Tray menu labels of process $1, one per line.
tray_labels() {
  local name
  name=$(tray_name "$1") || return 1
  dbus --dest="$name" "$TRAY_PATH" com.canonical.dbusmenu.GetLayout int32:0 int32:-1 array:string: |
    grep -A1 'string "label"' | grep -o 'variant *string "[^"]*"' | sed 's/.*string "\(.*\)"/\1/'
}

# The dbusmenu id of the tray item of process $1 whose label is $2 (empty when none yet).
tray_item_id() {
  local name
  name=$(tray_name "$1") || return 1
  # GetLayout prints each item as `int32 <id>` and then its properties, the label among them.
  dbus --dest="$name" "$TRAY_PATH" com.canonical.dbusmenu.GetLayout int32:0 int32:-1 array:string: |
    awk -v want="\"$2\"" '{t = $0; sub(/^ +/, "", t)} t ~ /^int32 / {split(t, a, " "); id = a[2]}
      /string "label"/ {getline; if (index($0, want)) {print id; found = 1; exit}} END {exit !found}'
}

# Clicks the tray item of process $1 whose label is $2, as a desktop's tray host does. The
# menu is exported on the bus a moment before its items are filled in: wait for the item.
tray_click() {
  local pid=$1 label=$2 name id
  wait_until 20 tray_item_id "$pid" "$label" || return 1
  name=$(tray_name "$pid") && id=$(tray_item_id "$pid" "$label") || return 1
  dbus --dest="$name" "$TRAY_PATH" com.canonical.dbusmenu.Event "int32:$id" string:clicked variant:int32:0 uint32:0 >/dev/null
}

# wait_until SECONDS command…: polls every 0.2 s.
wait_until() {
  local end=$((SECONDS + $1))
  shift
  while [ $SECONDS -lt $end ]; do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}

alive() { kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }
gone() { ! alive "$1"; }
ipc() { python3 "$HERE/ipc.py" "$SOCKET" "$@"; }
window_child() { pgrep -P "$1" -f "alarm-tray window" >/dev/null; }
no_window_child() { ! window_child "$1"; }
window_has_class() {
  local w
  for w in $(xdotool search --pid "$1" 2>/dev/null); do
    [[ "$(xprop -id "$w" WM_CLASS 2>/dev/null)" == *"\"$2\""* ]] && return 0
  done
  return 1
}
# json_get KEY…: the value at that path of the JSON on stdin, as JSON.
json_get() { python3 -c $'import json, sys\nd = json.load(sys.stdin)\nfor k in sys.argv[1:]: d = d[k]\nprint(json.dumps(d))' "$@"; }
# PIDs of processes running the installed binary (also after it was replaced or removed).
bin_pids() {
  local d
  for d in /proc/[0-9]*; do
    case "$(readlink "$d/exe" 2>/dev/null)" in "$BIN" | "$BIN (deleted)") echo "${d#/proc/}" ;; esac
  done
}
no_bin_pids() { [ -z "$(bin_pids)" ]; }

# Starts $BIN with the given args, records its PID in PIDS and $STARTED.
start_bin() {
  "$BIN" "$@" >>"$WORK/app.log" 2>&1 &
  STARTED=$!
  PIDS+=("$STARTED")
}

# ---------------------------------------------------------------- preconditions
echo "package: $DEB"
if [ ! -f "$DEB" ]; then
  fail "the package file exists (run make package)"
  finish
fi
if installed; then
  fail "alarm-tray is not installed before the test (remove it first: this test installs and removes it)"
  finish
fi
missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v desktop-file-validate >/dev/null || missing+=(desktop-file-utils)
command -v appstreamcli >/dev/null || missing+=(appstream)
command -v gio >/dev/null || missing+=(libglib2.0-bin)
command -v xdotool >/dev/null || missing+=(xdotool)
command -v xprop >/dev/null || missing+=(x11-utils)
command -v dpkg-parsechangelog >/dev/null || missing+=(dpkg-dev)
if [ ${#missing[@]} -gt 0 ]; then
  info "installing ${missing[*]}"
  "${APT[@]}" install "${missing[@]}" >>"$WORK/log" 2>&1 || { fail "install ${missing[*]}"; finish; }
fi

# ---------------------------------------------------------------- the package file
info "package size: $(stat -c %s "$DEB") bytes ($(du -h "$DEB" | cut -f1)), installed size $(dpkg-deb -f "$DEB" Installed-Size) KiB"
check "control: Package is alarm-tray" test "$(dpkg-deb -f "$DEB" Package)" = alarm-tray
check "control: Version is $VERSION (Cargo.toml)" test "$(dpkg-deb -f "$DEB" Version)" = "$VERSION"
depends=$(dpkg-deb -f "$DEB" Depends)
info "Depends: $depends"
for dep in libc6 libwebkit2gtk-4.1-0 libgtk-3-0 libayatana-appindicator3-1 libssl3; do
  check "control: depends on $dep" grep -q "$dep" <<<"$depends"
done

lintian -I --tag-display-limit 0 "$DEB" >"$WORK/lintian.txt" 2>&1
errors=$(grep -c '^E: ' "$WORK/lintian.txt")
warnings=$(grep -c '^W: ' "$WORK/lintian.txt")
infos=$(grep -c '^I: ' "$WORK/lintian.txt")
info "lintian: $errors errors, $warnings warnings, $infos info"
sed 's/^/  lintian| /' "$WORK/lintian.txt"
check "lintian: no errors" test "$errors" = 0
# Every warning must be one listed (with the reason) in packaging/lintian-notes.md.
accepted=$(sed -n '/^## Accepted warnings/,/^## /p' "$HERE/lintian-notes.md" | sed -n 's/^- `\([a-z0-9-]*\)`.*/\1/p')
unexpected=$(grep '^W: ' "$WORK/lintian.txt" | awk '{print $3}' | sort -u | grep -vxF -f <(echo "$accepted") || true)
check "lintian: every warning is an accepted one (packaging/lintian-notes.md)${unexpected:+: not accepted: $unexpected}" test -z "$unexpected"

# ---------------------------------------------------------------- install
check "apt-get install ./$(basename "$DEB")" "${APT[@]}" install "$DEB"
installed && INSTALLED=1
check "dpkg: alarm-tray is installed" test -n "$INSTALLED"
[ -n "$INSTALLED" ] || finish

dpkg -L alarm-tray >"$WORK/files.txt"
expected=("$BIN" "$DESKTOP" "$METAINFO" /usr/share/doc/alarm-tray/copyright
  /usr/share/doc/alarm-tray/changelog.gz /usr/share/man/man1/alarm-tray.1.gz)
for s in 16 24 32 48 64 128 256 512; do
  expected+=("/usr/share/icons/hicolor/${s}x${s}/apps/alarm-tray.png")
done
for f in "${expected[@]}"; do
  check "dpkg -L lists and disk has $f" bash -c 'grep -qxF "$1" "$2" && test -s "$1"' _ "$f" "$WORK/files.txt"
done
check "the binary is executable" test -x "$BIN"
check "every shared library of the binary resolves (ldd)" bash -c 'ldd "$1" && ! ldd "$1" | grep -q "not found"' _ "$BIN"
# A fresh machine gets only what Depends pulls in: every library the binary loads must come
# from a package in the Depends closure (not from a -dev package installed for building).
apt-cache depends --recurse --installed --no-recommends --no-suggests --no-conflicts --no-breaks \
  --no-replaces --no-enhances alarm-tray 2>/dev/null | grep -v '^ ' | sed 's/:.*//' | sort -u >"$WORK/closure.txt"
for lib in $(ldd "$BIN" | awk '/=> \// {print $3}'); do
  owner=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(realpath "$lib")" 2>/dev/null) || owner="(no package): $lib"
  echo "${owner%%:*}"
done | sort -u >"$WORK/lib-packages.txt"
not_pulled=$(comm -23 "$WORK/lib-packages.txt" "$WORK/closure.txt" | paste -sd ' ')
check "every library the binary loads comes with the Depends ($(wc -l <"$WORK/lib-packages.txt") packages)${not_pulled:+: not pulled in: $not_pulled}" test -z "$not_pulled"
outside=$(grep -v '^/usr\(/\|$\)' "$WORK/files.txt" | grep -vx '/\.' || true)
check "every packaged file is under /usr (nothing in /etc, /opt or home)${outside:+: $outside}" test -z "$outside"
check "desktop-file-validate: the desktop entry is valid" desktop-file-validate "$DESKTOP"
check "the desktop entry runs alarm-tray from PATH" bash -c 'grep -qx "Exec=alarm-tray" "$1" && test "$(command -v alarm-tray)" = /usr/bin/alarm-tray' _ "$DESKTOP"
check "the desktop entry's icon is the packaged one" grep -qx "Icon=alarm-tray" "$DESKTOP"
check "appstreamcli validate: the metainfo is valid" appstreamcli validate --no-net "$METAINFO"
check "the metainfo names the packaged desktop entry" grep -q "<launchable type=\"desktop-id\">$(basename "$DESKTOP")</launchable>" "$METAINFO"
check "the metainfo lists release $VERSION" grep -q "<release version=\"$VERSION\"" "$METAINFO"
check "the Debian changelog parses and its newest entry is $VERSION" bash -c 'zcat "$1" >"$3/changelog" && test "$(dpkg-parsechangelog -l "$3/changelog" -S Version)" = "$2"' _ /usr/share/doc/alarm-tray/changelog.gz "$VERSION" "$WORK"
check "alarm-tray --version prints $VERSION" test "$("$BIN" --version)" = "alarm-tray $VERSION"

# ---------------------------------------------------------------- settings of the previous schema
mkdir -p "$DATA_DIR"
cat >"$DATA_DIR/settings.json" <<'EOF'
{"settings":{"version":1,"paused":true,"quiet_start":"23:00","quiet_end":"06:30","retention_days":45}}
EOF

# ---------------------------------------------------------------- start from the desktop entry
gio launch "$DESKTOP" >>"$WORK/app.log" 2>&1
pid=
wait_until 60 installed_tray_pid && pid=$(installed_tray_pid)
[ -n "$pid" ] && PIDS+=("$pid")
check "started from its desktop entry: the tray menu is on D-Bus" test -n "$pid"
if [ -n "$pid" ]; then
  check "the socket answers" wait_until 20 test -S "$SOCKET"
  check "the settings window opens (no --hidden)" wait_until 40 window_child "$pid"
  window_pid=$(pgrep -P "$pid" -f "alarm-tray window" | head -1)
  [ -n "$window_pid" ] && PIDS+=("$window_pid")
  # Docks and task bars match a window to its menu entry by WM_CLASS = StartupWMClass.
  wm_class=$(sed -n 's/^StartupWMClass=//p' "$DESKTOP")
  check "the window's WM_CLASS matches the entry's StartupWMClass ($wm_class)" wait_until 40 window_has_class "${window_pid:-0}" "$wm_class"
  check "the tray menu has Quit" wait_until 20 tray_item_id "$pid" Quit
  check "the tray menu offers Resume (paused, from the schema-1 file)" wait_until 20 tray_item_id "$pid" "Resume notifications"
  info "tray menu: $(tray_labels "$pid" | paste -sd '|')"
  ipc info >"$WORK/info.json" 2>>"$WORK/log"
  check "the running monitor reports version $VERSION" test "$(json_get version <"$WORK/info.json")" = "\"$VERSION\""
  check "no settings notice (the schema-1 file was usable)" test "$(json_get notice <"$WORK/info.json")" = null
  ipc settings >"$WORK/settings.json" 2>>"$WORK/log"
  check "schema-1 settings migrated: paused" test "$(json_get notifications paused <"$WORK/settings.json")" = true
  check "schema-1 settings migrated: quiet hours on" test "$(json_get notifications quiet_hours enabled <"$WORK/settings.json")" = true
  check "schema-1 settings migrated: quiet hours 23:00-06:30" test "$(json_get notifications quiet_hours start <"$WORK/settings.json") $(json_get notifications quiet_hours end <"$WORK/settings.json")" = '"23:00" "06:30"'
  check "schema-1 settings migrated: retention kept" test "$(json_get retention_days <"$WORK/settings.json")" = 45
  if check "Quit through the tray menu" tray_click "$pid" Quit; then
    check "the monitor exits after Quit" wait_until 20 gone "$pid"
    check "its window exits with it" wait_until 20 gone "${window_pid:-0}"
  fi
fi

# ---------------------------------------------------------------- --hidden, autostart
start_bin --hidden
pid=$STARTED
check "--hidden: the tray menu is on D-Bus" wait_until 60 tray_name "$pid"
sleep 2
check "--hidden: it is the running monitor (not handed off to another one)" alive "$pid"
check "--hidden: no window opens" no_window_child "$pid"
check "autostart on: the settings are saved" ipc set autostart true
check "autostart on: the XDG entry starts the installed binary with --hidden" grep -qx "Exec=$BIN --hidden" "$AUTOSTART"
check "autostart on: TryExec makes a leftover entry inert once the package is removed" grep -qx "TryExec=$BIN" "$AUTOSTART"
check "the settings file was rewritten as schema 2" bash -c 'python3 -c "import json,sys; s=json.load(open(sys.argv[1]))[\"settings\"]; sys.exit(not (s[\"version\"] == 2 and s[\"autostart\"] and s[\"notifications\"][\"paused\"]))" "$1"' _ "$DATA_DIR/settings.json"
check "autostart off: the settings are saved" ipc set autostart false
check "autostart off: the XDG entry is removed" test ! -e "$AUTOSTART"
check "a keyring entry is stored" ipc set-secret pkgtest "not-a-real-key-$$"
check "the history database exists" test -s "$DATA_DIR/history.sqlite3"
if check "Quit through the tray menu (--hidden)" tray_click "$pid" Quit; then
  check "the monitor exits after Quit (--hidden)" wait_until 20 gone "$pid"
  wait "$pid" 2>/dev/null
  rc=$?
  check "the monitor's exit status is 0" test "$rc" = 0
fi

# ---------------------------------------------------------------- upgrade keeps the user's data
(cd "$DATA_DIR" && sha256sum settings.json history.sqlite3) >"$WORK/data.sha256"
check "upgrade: apt-get install --reinstall" "${APT[@]}" install --reinstall "$DEB"
check "upgrade: settings and history are unchanged" bash -c 'cd "$1" && sha256sum -c --quiet "$2"' _ "$DATA_DIR" "$WORK/data.sha256"
start_bin --hidden
pid=$STARTED
check "after the upgrade: the tray menu is on D-Bus" wait_until 60 tray_name "$pid"
check "after the upgrade: it is the running monitor" alive "$pid"
check "after the upgrade: the keyring entry is still there" test "$(ipc has-secret pkgtest 2>>"$WORK/log")" = true
check "after the upgrade: the settings are still there" test "$(ipc settings 2>>"$WORK/log" | json_get retention_days)" = 45
if check "Quit through the tray menu (after the upgrade)" tray_click "$pid" Quit; then
  check "the monitor exits after Quit (after the upgrade)" wait_until 20 gone "$pid"
fi

# ---------------------------------------------------------------- removal
check "apt-get remove alarm-tray" "${APT[@]}" remove alarm-tray
check "dpkg: alarm-tray is gone (no config files left)" bash -c '! dpkg-query -W -f="\${Status}" alarm-tray 2>/dev/null | grep -q "installed"'
left=$(while read -r f; do [ -f "$f" ] || [ -L "$f" ] && echo "$f"; done <"$WORK/files.txt")
check "every packaged file is gone${left:+: left: $left}" test -z "$left"
check "no process of the installed binary is left" no_bin_pids
check "the user's data is kept (settings, history)" test -s "$DATA_DIR/settings.json" -a -s "$DATA_DIR/history.sqlite3"
check "no autostart entry is left behind" test ! -e "$AUTOSTART"
INSTALLED=

finish
