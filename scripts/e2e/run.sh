#!/usr/bin/env bash
# Runs a command inside a throwaway desktop session: Xvfb on :99, a private session D-Bus,
# a headless tray host (status-notifier-watcher) and a notification daemon (dunst).
# Everything it starts is stopped on exit.
#   scripts/e2e/run.sh cargo test -p yollayah-tray --test e2e_tray
set -euo pipefail
(($#)) || { echo "usage: run.sh COMMAND [ARGS...]" >&2; exit 2; }

display=${E2E_DISPLAY:-:99}
if [ -z "${YOLLAYAH_E2E_INNER:-}" ]; then
  # Outer half: the X server, then re-enter this script inside a fresh session bus.
  Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >/tmp/yollayah-e2e-xvfb.log 2>&1 &
  xvfb_pid=$!
  trap 'kill "$xvfb_pid" 2>/dev/null; wait "$xvfb_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    [ -e "/tmp/.X11-unix/X${display#:}" ] && break
    kill -0 "$xvfb_pid" 2>/dev/null || { cat /tmp/yollayah-e2e-xvfb.log >&2; exit 1; }
    sleep 0.1
  done
  YOLLAYAH_E2E_INNER=1 DISPLAY="$display" dbus-run-session -- "$0" "$@"
  exit $?
fi

# Inner half: on the private session bus.
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
status-notifier-watcher >/tmp/yollayah-e2e-watcher.log 2>&1 &
pids+=($!)
dunst >/tmp/yollayah-e2e-dunst.log 2>&1 &
pids+=($!)
for name in org.kde.StatusNotifierWatcher org.freedesktop.Notifications; do
  for _ in $(seq 100); do
    dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
      org.freedesktop.DBus.NameHasOwner "string:$name" 2>/dev/null | grep -q "boolean true" && break
    sleep 0.1
  done
done
export YOLLAYAH_E2E=1
"$@"
