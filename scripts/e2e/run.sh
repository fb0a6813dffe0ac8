#!/usr/bin/env bash
# Runs a command inside a throwaway desktop session: Xvfb on a free display, a private session D-Bus,
# a headless tray host (status-notifier-watcher) and a notification daemon (dunst).
# Everything it starts is stopped on exit.
#   scripts/e2e/run.sh cargo test -p yollayah-tray --test e2e_tray
set -euo pipefail
(($#)) || { echo "usage: run.sh COMMAND [ARGS...]" >&2; exit 2; }

if [ -z "${YOLLAYAH_E2E_INNER:-}" ]; then
  # Outer half: the X server, then re-enter this script inside a fresh session bus.
  # Other sessions on this machine may run their own Xvfb: unless E2E_DISPLAY names one,
  # let Xvfb pick a free display number and tell us (-displayfd) once it accepts clients.
  log=$(mktemp /tmp/yollayah-e2e-xvfb.XXXXXX.log)
  dfile=$(mktemp /tmp/yollayah-e2e-display.XXXXXX)
  if [ -n "${E2E_DISPLAY:-}" ]; then
    Xvfb "$E2E_DISPLAY" -screen 0 1280x800x24 -nolisten tcp >"$log" 2>&1 &
  else
    Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$dfile" >"$log" 2>&1 &
  fi
  xvfb_pid=$!
  trap 'kill "$xvfb_pid" 2>/dev/null; wait "$xvfb_pid" 2>/dev/null || true; rm -f "$dfile"' EXIT
  display=${E2E_DISPLAY:-}
  for _ in $(seq 100); do
    kill -0 "$xvfb_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    if [ -z "${E2E_DISPLAY:-}" ] && [ -s "$dfile" ]; then display=":$(tr -d '[:space:]' <"$dfile")"; fi
    [ -n "$display" ] && [ -e "/tmp/.X11-unix/X${display#:}" ] && break
    sleep 0.1
  done
  [ -n "$display" ] || { echo "Xvfb did not report a display" >&2; cat "$log" >&2; exit 1; }
  # Xvfb exits when the display is taken; make sure it is ours that listens.
  sleep 0.2
  kill -0 "$xvfb_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
  echo "e2e: Xvfb on $display" >&2
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
