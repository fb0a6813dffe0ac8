#!/usr/bin/env bash
# Installs the system packages a purpose needs, only when something is missing.
#   deps.sh test           what `scripts/test.sh` needs (desktop-build + e2e)
#   deps.sh run            what running the CLI needs
#   deps.sh desktop-build  what building src-tauri (yollayah-tray) needs
#   deps.sh desktop-run    what running the tray app needs
#   deps.sh e2e            what the tray end-to-end test needs (Xvfb, session bus, tray watcher,
#                          notification daemon, screenshots)
#   deps.sh prometheus     what the agent's Prometheus/Alertmanager tests need (promtool comes
#                          with prometheus); part of `test`
set -euo pipefail
purpose=${1:-test}

desktop_build=(build-essential pkg-config libssl-dev libwebkit2gtk-4.1-dev libgtk-3-dev
  libsoup-3.0-dev librsvg2-dev libayatana-appindicator3-dev)
# libayatana-appindicator is dlopen()ed at run time, so the -dev package alone is not proof that
# the tray can appear: name the runtime library explicitly.
desktop_run=(libayatana-appindicator3-1 libwebkit2gtk-4.1-0 libgtk-3-0 librsvg2-2)
e2e=(xvfb webkit2gtk-driver dunst haskell-status-notifier-item-utils imagemagick dbus-x11
  dbus-daemon libnotify-bin librsvg2-bin xdotool)
# `yollayah agent` is tested against the real Prometheus (promtool included) and Alertmanager.
prometheus=(prometheus prometheus-alertmanager)
# Network-namespace tests of remote hosts (`ip`), and the socket test's client run as another
# uid (`setpriv`, /usr/bin/python3).
tests=(iproute2 util-linux python3-minimal)

need=()
case "$purpose" in
  run) pkgs=(pkg-config) ;;
  desktop-build) pkgs=("${desktop_build[@]}") ;;
  desktop-run) pkgs=("${desktop_run[@]}") ;;
  e2e) pkgs=("${desktop_run[@]}" "${e2e[@]}") ;;
  prometheus) pkgs=("${prometheus[@]}") ;;
  test) pkgs=("${desktop_build[@]}" "${desktop_run[@]}" "${e2e[@]}" "${prometheus[@]}" "${tests[@]}") ;;
  *) echo "deps.sh: unknown purpose '$purpose' (test|run|desktop-build|desktop-run|e2e|prometheus)" >&2; exit 2 ;;
esac
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "== installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
