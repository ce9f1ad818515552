#!/usr/bin/env bash
# Runs a command inside a throwaway desktop session: a private D-Bus session bus, Xvfb,
# an unlocked gnome-keyring (Secret Service) and dunst (notification daemon), with a
# temporary HOME and XDG_RUNTIME_DIR. Everything started here is stopped by PID on exit.
#
#   scripts/desktop-session.sh <command> [args…]
#
# Inside, the command sees DISPLAY, DBUS_SESSION_BUS_ADDRESS, HOME, XDG_RUNTIME_DIR and
# ALARM_TRAY_DESKTOP=1. Set KEEP_SESSION_DIR=1 to keep the temp folder for inspection.
set -euo pipefail

if [ -z "${ALARM_TRAY_IN_BUS:-}" ]; then
  export ALARM_TRAY_IN_BUS=1
  exec dbus-run-session -- "$0" "$@"
fi

# Issue 25: the language tests run the app under de_DE.UTF-8 and fr_FR.UTF-8; generate them
# once (as root, as tests and CI run here; a user without the rights gets a note and the tests
# fall back to LANGUAGE, which the app and WebKit also read).
for loc in de_DE fr_FR; do
  if ! locale -a 2>/dev/null | grep -qix "$loc.utf-\?8"; then
    if [ "$(id -u)" = 0 ] && command -v localedef >/dev/null; then
      localedef -i "$loc" -f UTF-8 "$loc.UTF-8" || echo "desktop-session: could not generate $loc.UTF-8" >&2
    else
      echo "desktop-session: locale $loc.UTF-8 missing (run as root or install it)" >&2
    fi
  fi
done

SESSION_DIR=$(mktemp -d /tmp/alarm-tray-session.XXXXXX)
# Toolchains found through HOME must still be found with the throwaway HOME.
export RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
[ -d "$HOME/.pyenv" ] && export PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
export HOME="$SESSION_DIR/home" XDG_RUNTIME_DIR="$SESSION_DIR/run"
export XDG_CONFIG_HOME="$HOME/.config" XDG_DATA_HOME="$HOME/.local/share" XDG_CACHE_HOME="$HOME/.cache"
mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME"
mkdir -m 700 -p "$XDG_RUNTIME_DIR"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -n "${KEEP_SESSION_DIR:-}" ] || rm -rf "$SESSION_DIR"
}
trap cleanup EXIT

# A free display number: the machine may be shared.
for n in $(seq 90 140); do
  [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ] || { DISPLAY_NUM=$n; break; }
done
Xvfb ":$DISPLAY_NUM" -screen 0 1280x800x24 -nolisten tcp >"$SESSION_DIR/xvfb.log" 2>&1 &
PIDS+=($!)
export DISPLAY=":$DISPLAY_NUM"
for _ in $(seq 1 50); do [ -e "/tmp/.X11-unix/X$DISPLAY_NUM" ] && break; sleep 0.1; done

# Unlocked login keyring with a throwaway password.
eval "$(printf 'test-session-password' | gnome-keyring-daemon --unlock --components=secrets --daemonize 2>/dev/null | sed 's/^/export /')" || true
KEYRING_PID=${GNOME_KEYRING_PID:-$(pgrep -n -u "$(id -u)" gnome-keyring-d || true)}
[ -n "$KEYRING_PID" ] && PIDS+=("$KEYRING_PID")

dunst -config /dev/null >"$SESSION_DIR/dunst.log" 2>&1 &
PIDS+=($!)
# Wait for the notification service to own its bus name.
for _ in $(seq 1 50); do
  dbus-send --session --print-reply --reply-timeout=500 --dest=org.freedesktop.DBus / org.freedesktop.DBus.NameHasOwner string:org.freedesktop.Notifications 2>/dev/null | grep -q "boolean true" && break
  sleep 0.1
done
export ALARM_TRAY_DESKTOP=1 ALARM_TRAY_SESSION_DIR="$SESSION_DIR"
set +e
"$@"
rc=$?
exit $rc
