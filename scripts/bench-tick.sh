#!/usr/bin/env bash
# CPU time per watchdog tick of `yollayah watch --gpu-source local` against `ollama-sim`, with a
# stand-in runner (a process named llama-server with the model's --model blob) on this machine.
# REPLACE=1 kills and restarts the stand-in every 5 s (same blob, new pid), so the full process
# scans a vanished runner triggers are counted in the figure.
#
#   scripts/bench-tick.sh BIN [SECONDS]     e.g. scripts/bench-tick.sh target/release/yollayah 60
#
# Needs: an `ollama-sim` binary (SIM=path, default next to BIN), curl, python3; Linux (/proc).
set -euo pipefail
BIN=$(realpath "$1"); SECS=${2:-60}; TICK_MS=250
SIM=${SIM:-$(dirname "$BIN")/ollama-sim}
D=$(mktemp -d); mkdir -p "$D/cfg/yollayah"
RUN=""; SIMPID=""; W=""
cleanup() { for p in $W $RUN $SIMPID; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
printf '[watchdog]\ntick_ms = %s\n' "$TICK_MS" > "$D/cfg/yollayah/config.toml"
"$SIM" --listen 127.0.0.1:0 > "$D/sim.out" 2>/dev/null & SIMPID=$!
for _ in $(seq 50); do [ -s "$D/sim.out" ] && break; sleep 0.1; done
URL=$(head -1 "$D/sim.out")
curl -s "$URL/api/generate" -d '{"model":"llama3.2:3b","keep_alive":-1}' >/dev/null
BLOB=$(curl -s "$URL/api/show" -d '{"model":"llama3.2:3b"}' | python3 -c \
  'import json,sys; print([l for l in json.load(sys.stdin)["modelfile"].splitlines() if l.startswith("FROM ")][0][5:])')
ln -s /bin/sh "$D/llama-server"
start_runner() { "$D/llama-server" -c 'sleep 3600; true' --model "$BLOB" --port 1 & RUN=$!; }
start_runner
XDG_CONFIG_HOME="$D/cfg" HOME="$D" "$BIN" --url "$URL" --model llama3.2:3b watch --json --no-warm \
  --gpu-source local > "$D/watch.out" 2>/dev/null & W=$!
sleep 2
cpu() { awk '{print $14 + $15}' "/proc/$W/stat"; }
t0=$(cpu)
if [ "${REPLACE:-0}" = 1 ]; then
  for _ in $(seq $((SECS / 5))); do sleep 5; kill "$RUN"; wait "$RUN" 2>/dev/null || true; start_runner; done
else
  sleep "$SECS"
fi
t1=$(cpu)
python3 -c "
hz, ticks = $(getconf CLK_TCK), $SECS * 1000 // $TICK_MS
cpu = ($t1 - $t0) / hz
print(f'$(basename "$BIN"): {cpu:.2f} s CPU over $SECS s = {cpu / ticks * 1000:.3f} ms per tick ({ticks} ticks, replace=${REPLACE:-0})')"
