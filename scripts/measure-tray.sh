#!/usr/bin/env bash
# Measures the tray app (release build, demo mode) on a throwaway virtual desktop: launch →
# tray registered, launch → first verdict in the menu, idle PSS and CPU with the chat window
# closed, "Open chat" click → window mapped and → first paint (the page reports it; the tray
# logs it), where that time goes (the chat process and the page log each start-up step against
# the click), then the median of OPENS (default 5) more opens, PSS with the chat open, WebKit
# processes and PSS 2 s after closing it. The OPENS more opens alternate between a cold click
# and the tray host's way: the menu opens (AboutToShow(0), Event(0, "opened"): the tray starts
# the chat hidden), then "Open chat" is clicked MENU_MS (default 400) ms later and the menu
# closes (MENU_MS=off: cold clicks only, e.g. for a yollayah-chat without --hidden given as
# YOLLAYAH_CHAT_BIN). Last, the menu opened and closed without a click: WebKit processes left
# after the grace. PSS is
# summed over the tray and every process under it (the chat window's process and its web
# processes). A measurement, not a test: it prints figures and fails only if the app does not
# come up.
#   scripts/measure-tray.sh [--compare]
# --compare: twice, before/after the chat's compositing change (docs/benchmarks.md): with
# WEBKIT_DISABLE_COMPOSITING_MODE=0 (compositing on, as before), then with the tray's default.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--compare" ]; then
  echo "### before: WebKit's accelerated compositing on (WEBKIT_DISABLE_COMPOSITING_MODE=0)"
  WEBKIT_DISABLE_COMPOSITING_MODE=0 "$0"
  echo "### after: the tray's default (compositing off in the chat process)"
  env -u WEBKIT_DISABLE_COMPOSITING_MODE "$0"
  exit 0
fi

if [ -z "${YOLLAYAH_E2E:-}" ]; then
  # YOLLAYAH_TRAY_BIN measures another build (e.g. a debug one) instead; the tray starts the
  # yollayah-chat beside it.
  [ -n "${YOLLAYAH_TRAY_BIN:-}" ] || cargo build -p yollayah-tray -p yollayah-chat --release --locked
  exec ./scripts/e2e/run.sh "$0" "$@"
fi

bin=${YOLLAYAH_TRAY_BIN:-./target/release/yollayah-tray}
tmp=$(mktemp -d)
mkdir -p "$tmp/run"
now_ms() { echo $(($(date +%s%N) / 1000000)); }

t0=$(now_ms)
XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" XDG_RUNTIME_DIR="$tmp/run" RUST_LOG=info \
  "$bin" --demo >"$tmp/out" 2>"$tmp/err" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT

wait_for() { # wait_for WHAT COMMAND...: polls COMMAND every 10 ms for up to 60 s
  local what=$1; shift
  for _ in $(seq 6000); do
    if "$@"; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "app exited while waiting for $what" >&2; cat "$tmp/err" >&2; exit 1; }
    sleep 0.01
  done
  echo "timed out waiting for $what" >&2; exit 1
}

registered() {
  gdbus call --session --dest org.kde.StatusNotifierWatcher --object-path /StatusNotifierWatcher \
    --method org.freedesktop.DBus.Properties.Get org.kde.StatusNotifierWatcher RegisteredSNIEntries \
    2>/dev/null | grep -q ':1\.'
}
wait_for "the tray to register" registered
t_reg=$(now_ms)

# Our item's bus name and path (the only tray in this private session), then its menu.
entry=$(gdbus call --session --dest org.kde.StatusNotifierWatcher --object-path /StatusNotifierWatcher \
  --method org.freedesktop.DBus.Properties.Get org.kde.StatusNotifierWatcher RegisteredSNIEntries)
svc=$(grep -o "':1\.[0-9]*'" <<<"$entry" | head -1 | tr -d "'")
path=$(grep -o "'/[^']*'" <<<"$entry" | head -1 | tr -d "'")
menu=$(gdbus call --session --dest "$svc" --object-path "$path" \
  --method org.freedesktop.DBus.Properties.Get org.kde.StatusNotifierItem Menu | grep -o "'/[^']*'" | tr -d "'")

layout() {
  gdbus call --session --dest "$svc" --object-path "$menu" \
    --method com.canonical.dbusmenu.GetLayout -- 0 -1 '[]' 2>/dev/null
}
# "ID<TAB>label" per item.
items() {
  layout | python3 -c '
import re, sys
for m in re.finditer(r"\((\d+), \{([^{}]*)\}", sys.stdin.read()):
    label = re.search(r"'"'"'label'"'"': <'"'"'((?:[^'"'"'\\]|\\.)*)'"'"'>", m.group(2))
    if label:
        print(m.group(1) + "\t" + label.group(1))' 2>/dev/null
}
first_verdict() { items | head -1 | cut -f2 | grep -q '·' && ! items | head -1 | grep -q 'checking'; }
wait_for "a verdict in the menu" first_verdict
t_verdict=$(now_ms)
verdict=$(items | head -1 | cut -f2)
item_id() { # item_id LABEL
  local id
  id=$(items | awk -F'\t' -v l="$1" '$2 == l { print $1; exit }')
  [ -n "$id" ] || { echo "no menu item $1" >&2; exit 1; }
  echo "$id"
}
click() { # click LABEL
  click_id "$(item_id "$1")"
}
click_id() { # click_id ID: one D-Bus call, as a host's click (the timed clicks use it)
  gdbus call --session --dest "$svc" --object-path "$menu" \
    --method com.canonical.dbusmenu.Event -- "$1" clicked '<0>' 0 >/dev/null
}
open_chat=$(item_id "Open chat")

tree() { # the app and all its descendants
  local p=$1; echo "$p"
  for c in $(pgrep -P "$p" || true); do tree "$c"; done
}
pss() { # PSS of the app's processes in kB: "total name=kB ..."
  local total=0 detail="" kb
  for p in $(tree "$pid"); do
    kb=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    total=$((total + kb)); detail+=" $(cat "/proc/$p/comm" 2>/dev/null)=${kb}kB"
  done
  echo "$((total / 1024)) MiB ($detail )"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
chat_mapped() { [ -n "$(xdotool search --onlyvisible --name '^Yollayah$' 2>/dev/null)" ]; }

# Let start-up (warm, first ticks) settle, then measure idle.
sleep 5
pss_closed=$(pss)
c0=$(cpu_ticks); sleep 10; c1=$(cpu_ticks)
hz=$(getconf CLK_TCK)
cpu_idle=$(awk -v d=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.2f", 100 * d / hz / 10 }')

t_click=$(now_ms)
click_id "$open_chat"
wait_for "the chat window" chat_mapped
t_mapped=$(now_ms)
sleep 5
pss_open=$(pss)
# The web processes of the open chat, by pid: after the close none may live on anywhere (not
# even re-parented away from the tray).
web_pids=$(for p in $(tree "$pid"); do case $(cat "/proc/$p/comm" 2>/dev/null) in WebKit*) echo "$p";; esac; done)
win=$(xdotool search --onlyvisible --name '^Yollayah$' | head -1)
painted() { grep -q 'chat window painted' "$tmp/err"; }
wait_for "the chat's first paint" painted
painted_ms=$(grep -o 'chat window painted [0-9]* ms' "$tmp/err" | head -1 | grep -o '[0-9]*' | head -1)
# The chat process's and the page's steps, against the moment the tray handled the click.
steps=$(sed -n 's/.*chat start-up: \(.*\) +\(-\?[0-9]*\) ms$/\2\t\1/p' "$tmp/err" | sort -n |
  awk -F'\t' '{ printf "  %6d ms  %s\n", $1, $2 }')
shell_ms=$(sed -n 's/.*chat start-up: page shell +\([0-9]*\) ms$/\1/p' "$tmp/err" | head -1)
xdotool windowfocus --sync "$win" key --clearmodifiers Escape
gone() { [ -z "$(xdotool search --onlyvisible --name '^Yollayah$' 2>/dev/null)" ]; }
wait_for "the chat window to close" gone
sleep 2
webkit_left=$(for p in $(tree "$pid") $web_pids; do c=$(cat "/proc/$p/comm" 2>/dev/null || true); case $c in WebKit*) echo "$c($p)";; esac; done | sort -u | tr '\n' ' ')
pss_after=$(pss)

menu_event() { # menu_event opened|closed: as a tray host tells our menu
  if [ "$1" = opened ]; then
    gdbus call --session --dest "$svc" --object-path "$menu" \
      --method com.canonical.dbusmenu.AboutToShow -- 0 >/dev/null
  fi
  gdbus call --session --dest "$svc" --object-path "$menu" \
    --method com.canonical.dbusmenu.Event -- 0 "$1" '<0>' 0 >/dev/null
}
no_chat() { [ -z "$(for p in $(tree "$pid"); do case $(cat "/proc/$p/comm" 2>/dev/null) in WebKit*|yollayah-chat) echo "$p";; esac; done)" ]; }

# More opens, for the spread, alternating cold (a click with no chat running) and pre-started
# (the menu opened, the click MENU_MS later): each one click → mapped, → shell painted (cold:
# the page's mark), → status shown (the tray's clock: the first frame reported after the
# click); the window is closed and its processes gone before the next.
opens=${OPENS:-5}
menu_ms=${MENU_MS:-400}
mapped_cold=() shell_cold=() status_cold=() mapped_menu=() status_menu=()
for i in $(seq "$opens"); do
  modes="cold menu"; [ "$menu_ms" != off ] || modes=cold
  for mode in $modes; do
    n_before=$(grep -c 'chat window painted' "$tmp/err" || true)
    s_before=$(grep -c 'chat start-up: page shell' "$tmp/err" || true)
    if [ "$mode" = menu ]; then
      menu_event opened
      sleep "$(awk -v ms="$menu_ms" 'BEGIN { print ms / 1000 }')"
    fi
    t_again=$(now_ms)
    click_id "$open_chat"
    # The host closes its menu as the click lands: told in the background, so that the
    # gdbus call's own time does not count as the window's.
    closing=
    if [ "$mode" = menu ]; then menu_event closed & closing=$!; fi
    wait_for "the chat window" chat_mapped
    mapped=$(($(now_ms) - t_again))
    [ -z "$closing" ] || wait "$closing"
    painted_again() { [ "$(grep -c 'chat window painted' "$tmp/err")" -gt "$n_before" ]; }
    wait_for "the chat's paint" painted_again
    status=$(grep -o 'chat window painted [0-9]* ms' "$tmp/err" | tail -1 | grep -o '[0-9]*' | head -1)
    if [ "$mode" = cold ]; then
      mapped_cold+=("$mapped") status_cold+=("$status")
      if [ "$(grep -c 'chat start-up: page shell' "$tmp/err")" -gt "$s_before" ]; then
        shell_cold+=("$(sed -n 's/.*chat start-up: page shell +\([0-9]*\) ms$/\1/p' "$tmp/err" | tail -1)")
      fi
    else
      mapped_menu+=("$mapped") status_menu+=("$status")
    fi
    win=$(xdotool search --onlyvisible --name '^Yollayah$' | head -1)
    xdotool windowfocus --sync "$win" key --clearmodifiers Escape
    wait_for "the chat window to close" gone
    wait_for "the chat process to end" no_chat
    sleep 1
  done
done
# The menu opened and closed without "Open chat": the pre-started chat must not stay.
[ "$menu_ms" != off ] && menu_event opened
sleep 1
[ "$menu_ms" != off ] && menu_event closed
sleep 5
unused_left=$(for p in $(tree "$pid"); do c=$(cat "/proc/$p/comm" 2>/dev/null || true); case $c in WebKit*|yollayah-chat) echo "$c($p)";; esac; done | sort -u | tr '\n' ' ')
pss_unused=$(pss)
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "?" }'; }
click "Quit"
wait "$pid" 2>/dev/null || true

cat <<OUT
yollayah-tray ($bin, demo mode, Xvfb) — $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores
launch → tray registered       $((t_reg - t0)) ms
launch → first verdict in menu $((t_verdict - t0)) ms   ("$verdict")
idle, chat closed: PSS          $pss_closed
idle, chat closed: CPU          ${cpu_idle}% of a core (10 s)
Open chat click → window mapped $((t_mapped - t_click)) ms
Open chat click → first paint   ${shell_ms:-?} ms   (the page's shell: markup and stylesheet, second frame)
Open chat click → status shown  ${painted_ms:-?} ms   (tray's clock: click handled → second frame with the status)
where the time goes, first open (from the click handled in the tray):
$steps
$opens more opens each way, interleaved, median (each)
  cold click (no chat running):
    click → window mapped  $(median "${mapped_cold[@]}") ms  (${mapped_cold[*]})
    click → shell painted  $(median "${shell_cold[@]}") ms  (${shell_cold[*]})
    click → status shown   $(median "${status_cold[@]}") ms  (${status_cold[*]})
  menu opened, click after ${menu_ms} ms (chat pre-started hidden):
    click → window mapped  $(median "${mapped_menu[@]}") ms  (${mapped_menu[*]})
    click → painted        $(median "${status_menu[@]}") ms  (${status_menu[*]})  (shell and status in the first frame shown)
chat open: PSS                  $pss_open
2 s after closing: WebKit left  ${webkit_left:-none}
2 s after closing: PSS          $pss_after
menu closed unused, 5 s later: chat/WebKit left  ${unused_left:-none}
menu closed unused, 5 s later: PSS               $pss_unused
OUT
