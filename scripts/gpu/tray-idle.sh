#!/usr/bin/env bash
# The tray's idle memory without a display: `yollayah-tray --headless` (the core, the chat
# socket, the watchdog ticking against fake-ollama.py — up, no model loaded — so that it reads
# the GPU and loads NVML; no GTK init and no tray icon) for 20 s, then its PSS and RSS, whether libnvidia-ml is mapped, the
# biggest mappings by PSS and its CPU over 10 s. Twice: with the real GPU (NVML) and with the
# simulator's GPU view (`YOLLAYAH_GPU_SOURCE=sim`: no NVML). Runs on the GPU machine (carried
# by stage-tray.sh with fake-ollama.py and the libraries the binary links that the machine lacks) and here.
#   tray-idle.sh [TRAY_BIN]
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/yollayah-tray}
[ -d "$here/lib" ] && export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
hz=$(getconf CLK_TCK)

measure() { # measure TAG [VAR=VALUE...]
  local tag=$1; shift
  local tmp; tmp=$(mktemp -d)
  mkdir -p "$tmp/run"; chmod 700 "$tmp/run"
  env "$@" XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data" XDG_RUNTIME_DIR="$tmp/run" \
    RUST_LOG=info "$bin" --headless >"$tmp/out" 2>"$tmp/err" &
  local pid=$!
  sleep 20
  if ! kill -0 "$pid" 2>/dev/null; then echo "$tag: the tray exited"; cat "$tmp/err"; return 1; fi
  local pss rss nvml c0 c1
  pss=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")
  rss=$(awk '/^Rss:/ { print $2 }' "/proc/$pid/smaps_rollup")
  nvml=$(grep -c 'libnvidia-ml' "/proc/$pid/maps")
  c0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat"); sleep 10; c1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat")
  echo "== $tag: PSS $((pss / 1024)) MiB ($pss kB), RSS $((rss / 1024)) MiB, libnvidia-ml mappings: $nvml," \
    "CPU $(awk -v d=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.2f", 100 * d / hz / 10 }')% of a core"
  echo "   biggest mappings by PSS (kB):"
  awk '/^[0-9a-f]+-[0-9a-f]+ / { name = (NF >= 6 ? $6 : "[anon]") } /^Pss:/ { pss[name] += $2 }
       END { for (n in pss) printf "%8d  %s\n", pss[n], n }' "/proc/$pid/smaps" | sort -rn | head -12
  echo "   last log lines:"; tail -4 "$tmp/err" | sed 's/^/   /'
  kill "$pid"; wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}

echo "tray-idle: $(uname -n), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
missing=$(ldd "$bin" | grep 'not found' || true)
[ -z "$missing" ] || { echo "missing libraries: $missing"; exit 1; }
python3 "$here/fake-ollama.py" 11434 &
fake=$!
trap 'kill "$fake" 2>/dev/null' EXIT
sleep 1
measure "headless, real GPU (NVML)"
measure "headless, simulator's GPU view (no NVML)" YOLLAYAH_GPU_SOURCE=sim
