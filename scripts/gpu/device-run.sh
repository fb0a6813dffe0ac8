#!/usr/bin/env bash
# GPU proof, run ON the GPU machine from the repository root (see scripts/gpu/README.md):
#   bash .gpu-carry/scripts/device-run.sh TAG [PARTS]
# PARTS (default "build baseline standin remote real"): any subset, in that order.
# Needs, next to this script's folder: bin/yollayah, bin/ollama-sim, llama.cpp-src.tar.gz
# (scripts/gpu/stage.sh puts them there). Writes $OUT/TAG-summary.txt, $OUT/TAG-logs.tar.gz.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
carry=$(dirname "$here")
TAG=${1:-run}
PARTS=" ${2:-build baseline standin remote real} "
W=/tmp/yproof
L=$W/logs/$TAG
OUT=${OUT:-$W/out}
mkdir -p "$W/bin" "$L" "$OUT"
export PATH=/usr/local/cuda/bin:$PATH PYTHONUNBUFFERED=1
Y=$carry/bin/yollayah
SIM=$carry/bin/ollama-sim
chmod +x "$Y" "$SIM" "$here"/*.sh 2>/dev/null
S=$L/summary.txt
# The call's hard limit is 600 s; stop starting new cases well before it so the logs come back.
DEADLINE=$(($(date +%s) + ${BUDGET_S:-530}))
say() { echo "$*" | tee -a "$S"; }
left() { echo $((DEADLINE - $(date +%s))); }
enough() { [ "$(left)" -gt "${1:-30}" ] || { say "!! skipped $2: $(left) s left"; return 1; }; }
pack() {
  cp "$S" "$OUT/$TAG-summary.txt"
  tar czf "$OUT/$TAG-logs.tar.gz" -C "$W/logs" "$TAG"
}
trap pack EXIT

PIDS=()
cleanup_pids() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  PIDS=()
}

# ---------------------------------------------------------------- host
say "== host $(date -u +%FT%TZ) tag=$TAG"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv | tee -a "$S"
nvidia-smi | sed -n 3p | tee -a "$S"   # "NVIDIA-SMI … Driver Version … CUDA Version …"
nvcc --version | tail -2 | tee -a "$S"
say "cores $(nproc), kernel $(uname -r), ip: $(command -v ip || echo none)"
say "binaries from: $(cat "$carry/COMMIT" 2>/dev/null)"
say "yollayah: $($Y --version 2>&1)  ollama-sim: $(ls -la "$SIM" | awk '{print $5}') bytes"
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)
GPU_TOTAL_MIB=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)

# The real interpreter's module path, so that a symlink named llama-server (outside the venv)
# still imports torch.
PY=$(command -v python3)
PYPATH=$(python3 -c 'import sys; print(":".join(p for p in sys.path if p))')
ln -sfn "$(readlink -f "$PY")" "$W/bin/llama-server"
STANDIN=(env PYTHONPATH="$PYPATH" "$W/bin/llama-server" "$here/standin.py")

# ---------------------------------------------------------------- sources, build, models
SRC=$W/src
if [ ! -f "$SRC/llama.cpp/CMakeLists.txt" ]; then
  mkdir -p "$SRC" && tar xzf "$carry/llama.cpp-src.tar.gz" -C "$SRC"
fi
say "llama.cpp sources: $(cat "$SRC/llama.cpp/SDIST" 2>/dev/null)"
LS=$W/llama/bin/llama-server
BUILD_PID=
if [[ $PARTS == *" build "* || $PARTS == *" baseline "* || $PARTS == *" real "* ]]; then
  # Own session, so that the deadline can stop cmake and every compiler it started.
  setsid bash "$here/build-llama-server.sh" "$SRC/llama.cpp" "$W/llama" >"$L/build.txt" 2>&1 &
  BUILD_PID=$!
fi
M=$W/ollama/models/blobs
mkdir -p "$M"
TINY_HEX=$(printf proof-tiny | sha256sum | cut -c1-64)
BIG_HEX=$(printf proof-2g | sha256sum | cut -c1-64)
TINY_BLOB=$M/sha256-$TINY_HEX
BIG_BLOB=$M/sha256-$BIG_HEX
gen() {  # gen FILE EMBD LAYERS
  [ -s "$1" ] && return 0
  python3 "$here/random_gguf.py" "$SRC/llama.cpp" "$1.part" "$2" "$3" >>"$L/gguf.txt" 2>&1 && mv "$1.part" "$1"
}
t0=$(date +%s)
gen "$W/tiny.gguf" 128 4 && gen "$W/big.gguf" 2048 24
ln -sfn "$W/tiny.gguf" "$TINY_BLOB"
ln -sfn "$W/big.gguf" "$BIG_BLOB"
say "gguf: $(cat "$L/gguf.txt" | tr '\n' ' ') in $(($(date +%s) - t0)) s"
TINY_SIZE=$(stat -c %s "$W/tiny.gguf" 2>/dev/null || echo 10495424)
BIG_SIZE=$(stat -c %s "$W/big.gguf" 2>/dev/null || echo 2550000000)

# ---------------------------------------------------------------- simulator (for /api/ps only)
CFG=$W/config.toml
printf '[watchdog]\ntick_ms = 1000\n' >"$CFG"
export XDG_CONFIG_HOME=$W/xdg XDG_DATA_HOME=$W/xdg-data
SCEN=$W/scenario.toml
cat >"$SCEN" <<TOML
# /api/ps for the proof: the models' blob paths are the generated GGUFs, sized like Ollama
# would size them at num_ctx 4096. The simulated GPU is only used for the simulator's own
# placement (100 % GPU); yollayah reads the real GPU (--gpu-source local).
models_dir = "$W/ollama/models"
default_num_ctx = 4096
load_ms = 50
driver_version = "$DRIVER"
[[gpus]]
name = "$GPU_NAME"
memory_total = $((GPU_TOTAL_MIB * 1048576))
[[models]]
name = "proof-2g:latest"
weights_digest = "$BIG_HEX"
file_size = $BIG_SIZE
family = "llama"
parameter_size = "1.3B"
quantization = "F16"
file_type = 1
block_count = 24
context_length = 8192
embedding_length = 2048
head_count = 16
head_count_kv = 8
[[models]]
name = "proof-tiny:latest"
weights_digest = "$TINY_HEX"
file_size = $TINY_SIZE
family = "llama"
parameter_size = "5M"
quantization = "F16"
file_type = 1
block_count = 4
context_length = 8192
embedding_length = 128
head_count = 8
head_count_kv = 4
TOML
cp "$SCEN" "$L/scenario.toml"

# hp URL [JSON]: GET, or POST the JSON; prints the body, fails on errors (no curl needed).
hp() {
  python3 -c 'import sys, urllib.request as u
d = sys.argv[2].encode() if len(sys.argv) > 2 else None
sys.stdout.write(u.urlopen(u.Request(sys.argv[1], data=d, headers={"Content-Type": "application/json"}), timeout=float(sys.argv[3]) if len(sys.argv) > 3 else 5).read().decode())' "$@" 2>/dev/null
}
# iproute2's ip: the machine's, else the copy stage.sh carried (with its libraries).
IP=$(command -v ip || echo "$carry/iproute2/ip")
ip() { LD_LIBRARY_PATH=$carry/iproute2 "$IP" "$@"; }
SIM_PID=
start_sim() {  # start_sim ADDR [netns]
  local addr=$1 ns=${2:-}
  if [ -n "$ns" ]; then
    ip netns exec "$ns" "$SIM" --listen "$addr" --scenario "$SCEN" >"$L/sim-$ns.txt" 2>&1 &
  else
    "$SIM" --listen "$addr" --scenario "$SCEN" >"$L/sim.txt" 2>&1 &
  fi
  SIM_PID=$!
  for _ in $(seq 50); do hp "http://$addr/api/version" >/dev/null && break; sleep 0.1; done
  # Loaded forever, like a model a user keeps warm; only /api/ps matters here.
  hp "http://$addr/api/generate" '{"model":"proof-2g:latest","keep_alive":-1}' >/dev/null
  hp "http://$addr/api/ps" >"$L/ps-${addr//:/-}.json"
}
stop_sim() { [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null; wait "$SIM_PID" 2>/dev/null; SIM_PID=; }
ps_field() {  # ps_field ADDR FIELD -> value for proof-2g
  python3 -c "import json,sys; m=[m for m in json.load(open(sys.argv[1]))['models'] if m['name']=='proof-2g:latest'][0]; print(m[sys.argv[2]])" "$L/ps-${1//:/-}.json" "$2"
}

URL=http://127.0.0.1:11434
yol() { "$Y" --config "$CFG" --url "$URL" --model proof-2g:latest "$@"; }
smi() {
  echo "-- nvidia-smi $(date +%T)"
  nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader
  nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader
}
# observe CASE [watch seconds]: doctor --json, doctor (text), a short watch --json, nvidia-smi.
observe() {
  local c=$1 secs=${2:-6}
  smi >"$L/$c-smi.txt" 2>&1
  yol doctor --json >"$L/$c-doctor.json" 2>"$L/$c-doctor.err"
  local rc=$?
  yol doctor >"$L/$c-doctor.txt" 2>&1
  timeout "$secs" "$Y" --config "$CFG" --url "$URL" --model proof-2g:latest watch --json --no-warm \
    >"$L/$c-watch.ndjson" 2>"$L/$c-watch.err"
  say "-- $c: doctor exit $rc; nvidia-smi: $(grep -v '^--' "$L/$c-smi.txt" | tr '\n' ' ')"
  python3 "$here/summarize.py" doctor "$L/$c-doctor.json" | tee -a "$S"
  python3 "$here/summarize.py" watch "$L/$c-watch.ndjson" | tee -a "$S"
}
# standin NAME HOLD_MIB BURN [model blob]: a fake runner; waits until it holds its memory.
standin() {
  local name=$1 hold=$2 burn=$3 blob=${4:-$BIG_BLOB}
  "${STANDIN[@]}" --model "$blob" -c 4096 -np 1 --hold-mib "$hold" --burn-threads "$burn" \
    >"$L/standin-$name.txt" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 150); do grep -q '^ready' "$L/standin-$name.txt" && return 0; sleep 0.1; done
  say "!! stand-in $name not ready: $(tail -3 "$L/standin-$name.txt")"
}
unrelated() {  # unrelated HOLD_MIB: a python3 process holding memory, no --model
  env PYTHONPATH="$PYPATH" python3 "$here/standin.py" --hold-mib "$1" >"$L/unrelated.txt" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 150); do grep -q '^ready' "$L/unrelated.txt" && return 0; sleep 0.1; done
}

# ---------------------------------------------------------------- stand-in cases
# CASES picks stand-in cases (default all): s1 s1x s2 s3 s4 s5 s6 s7.
CASES=" ${CASES:-s1 s1x s2 s3 s4 s5 s6 s7} "
want() { [[ $CASES == *" $1 "* ]]; }
WATCH=
start_watch() {  # one watch --json for a whole sequence, case $c
  "$Y" --config "$CFG" --url "$URL" --model proof-2g:latest watch --json --no-warm \
    >"$L/$c-watch.ndjson" 2>"$L/$c-watch.err" &
  WATCH=$!
}
mark() {  # mark TEXT TAG: a timestamped note plus a doctor snapshot at this step
  echo "$(date -u +%T.%3N) $1" >>"$L/$c-marks.txt"
  yol doctor --json >"$L/$c-doctor-$2.json" 2>/dev/null
}
end_sequence() {
  kill "$WATCH"; wait "$WATCH" 2>/dev/null; cleanup_pids
  say "-- $c"
  sed 's/^/  mark /' "$L/$c-marks.txt" | tee -a "$S"
  for f in "$L/$c"-doctor-*.json; do
    say " $(basename "$f")"
    python3 "$here/summarize.py" doctor "$f" | tee -a "$S"
  done
  python3 "$here/summarize.py" watch "$L/$c-watch.ndjson" | tee -a "$S"
}
if [[ $PARTS == *" standin "* ]] && enough 120 standin; then
  say "== stand-in runner cases (python3 symlinked as llama-server, memory held through torch)"
  start_sim 127.0.0.1:11434
  v=$(ps_field 127.0.0.1:11434 size_vram)
  SIZE_VRAM_MIB=$((${v:-0} / 1048576))
  say "/api/ps proof-2g: size $(ps_field 127.0.0.1:11434 size) size_vram $(ps_field 127.0.0.1:11434 size_vram) context $(ps_field 127.0.0.1:11434 context_length) ($SIZE_VRAM_MIB MiB)"

  # A real runner holds its buffers (what /api/ps counts) plus a runtime overhead that no buffer
  # line names: measured 586 MiB with layers on the GPU, 520 MiB with none (CUDA context,
  # cuBLAS). A stand-in "holding X" holds X + RT_MIB, as a real runner would.
  RT=${RT_MIB:-586}
  want s1 && { standin all $((SIZE_VRAM_MIB + RT)) 0; sleep 1; observe s1-holds-all; cleanup_pids; }
  # Boundary: exactly size_vram in all, context included (the "before" run's s1).
  want s1x && { standin exact "$SIZE_VRAM_MIB" 0; sleep 1; observe s1x-holds-size-vram-exactly; cleanup_pids; }
  want s2 && { standin none 0 6; sleep 2; observe s2-holds-none-burns-cpu; cleanup_pids; }
  want s3 && { standin forty $((SIZE_VRAM_MIB * 40 / 100 + RT)) 0; sleep 1; observe s3-holds-40pct; cleanup_pids; }
  want s4 && { unrelated 40960; sleep 1; observe s4-no-runner-unrelated-40g; cleanup_pids; }
  # s7: the runner holds 2 GiB more than /api/ps counts (ollama/ollama#17251-style
  # under-counting): GPU with a PS_UNDERCOUNTS warning, not "unknown, restart".
  want s7 && { standin more $((SIZE_VRAM_MIB + RT + 2048)) 0; sleep 1; observe s7-holds-more-than-ps; cleanup_pids; }

  # s5: one watch across: runner A → A killed, a gap with no runner → B (same blob, new pid)
  # → B killed → an unrelated python3 holding 40 GiB appears.
  if want s5 && enough 60 s5; then
    c=s5-replaced-then-unrelated
    standin A $((SIZE_VRAM_MIB + RT)) 0
    A=${PIDS[0]}
    start_watch
    sleep 5; mark "A pid $A holds ${SIZE_VRAM_MIB}+$RT MiB" 1-A
    kill "$A"; wait "$A" 2>/dev/null; PIDS=()
    sleep 5; mark "A killed, no runner" 2-gone
    standin B $((SIZE_VRAM_MIB + RT)) 0
    B=${PIDS[0]}
    # The watch looks for a runner again at most every 30 s while a loaded model has none
    # (watchdog Rescan::UNMATCHED_RETRY): B lives long enough to be found.
    sleep "${S5_B_SECS:-35}"; mark "B pid $B holds ${SIZE_VRAM_MIB}+$RT MiB (same blob)" 3-B
    kill "$B"; wait "$B" 2>/dev/null; PIDS=()
    sleep 4; mark "B killed, no runner" 4-gone
    unrelated 40960
    sleep 5; mark "unrelated python3 holds 40 GiB" 5-unrelated
    end_sequence
  fi

  # s6: one watch across: A → B started, then A killed at once (a replaced runner, no gap) →
  # an unrelated 40 GiB process appears while B runs → B killed while the unrelated one stays.
  if want s6 && enough 60 s6; then
    c=s6-instant-replace-unrelated-stays
    standin A $((SIZE_VRAM_MIB + RT)) 0
    A=${PIDS[0]}
    start_watch
    sleep 5; mark "A pid $A holds ${SIZE_VRAM_MIB}+$RT MiB" 1-A
    standin B $((SIZE_VRAM_MIB + RT)) 0
    B=${PIDS[1]}
    kill "$A"; wait "$A" 2>/dev/null; PIDS=("$B")
    echo "$(date -u +%T.%3N) B pid $B ready, A killed" >>"$L/$c-marks.txt"
    sleep 5; mark "B holds ${SIZE_VRAM_MIB}+$RT MiB, A gone" 2-B
    unrelated 40960
    sleep 5; mark "unrelated python3 holds 40 GiB, B still runs" 3-B-unrelated
    kill "$B"; wait "$B" 2>/dev/null; PIDS=("${PIDS[@]:1}")
    sleep 6; mark "B killed, the unrelated process stays" 4-unrelated-only
    end_sequence
  fi
  stop_sim
fi

# ---------------------------------------------------------------- remote Ollama (netns)
if [[ $PARTS == *" remote "* ]] && enough 60 remote; then
  say "== remote: simulator in a network namespace at 10.213.7.2, this machine's GPU idle"
  if ip netns add yproof 2>"$L/netns.err"; then
    ip link add yp0 type veth peer name yp1 && ip link set yp1 netns yproof &&
      ip addr add 10.213.7.1/24 dev yp0 && ip link set yp0 up &&
      ip netns exec yproof "$IP" addr add 10.213.7.2/24 dev yp1 &&
      ip netns exec yproof "$IP" link set yp1 up && ip netns exec yproof "$IP" link set lo up
    start_sim 10.213.7.2:11434 yproof
    URL=http://10.213.7.2:11434
    observe r1-remote-gpu-idle
    v=$(ps_field 10.213.7.2:11434 size_vram)
    standin remote-blob "$((${v:-0} / 1048576))" 0
    observe r2-remote-local-runner-same-blob; cleanup_pids
    URL=http://127.0.0.1:11434
    stop_sim
    ip netns del yproof; ip link del yp0 2>/dev/null
  else
    say "!! no netns: ip=$IP $(cat "$L/netns.err" 2>/dev/null)"
  fi
fi

# ---------------------------------------------------------------- real llama-server
if [[ -n $BUILD_PID ]]; then
  while kill -0 "$BUILD_PID" 2>/dev/null && [ "$(left)" -gt 60 ]; do sleep 2; done
  if kill -0 "$BUILD_PID" 2>/dev/null; then
    kill -- -"$BUILD_PID" 2>/dev/null || kill "$BUILD_PID"
    say "!! build still running at the deadline: stopped; real-runner parts skipped"
  else
    wait "$BUILD_PID"; say "build: rc $? — $(tail -2 "$L/build.txt" | tr '\n' ' ')"
  fi
fi
# run_ls NAME BLOB NGL CTX: start llama-server as Ollama would, wait for /health, record.
LSP=
run_ls() {
  local name=$1 blob=$2 ngl=$3 ctx=$4
  # NGL "env0": no -ngl in the argv (as Ollama's automatic mode), zero layers through the
  # environment, so only the runner's memory can tell where the model runs.
  local nglarg=(-ngl "$ngl") env=()
  [ "$ngl" = env0 ] && { nglarg=(); env=(LLAMA_ARG_N_GPU_LAYERS=0); }
  # -lv 4: the model loader's buffer-size and "offloaded N/M layers" lines, which Ollama parses.
  env "${env[@]}" "$LS" --model "$blob" -c "$ctx" -np 1 "${nglarg[@]}" -b 512 -ub 512 -fa off \
    --host 127.0.0.1 --port 18080 -lv 4 >"$L/ls-$name.txt" 2>&1 &
  LSP=$!
  for _ in $(seq 600); do
    hp http://127.0.0.1:18080/health >/dev/null && break
    kill -0 "$LSP" 2>/dev/null || break
    sleep 0.1
  done
  sleep 0.5
  local load used after tps
  load=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits | awk -F', ' -v p="$LSP" '$1==p{print $2}')
  hp http://127.0.0.1:18080/completion '{"prompt":"Once upon a time","n_predict":64,"cache_prompt":true}' 60 \
    >"$L/ls-$name-completion.json"
  # Generation speed from the server's own timing line ("eval time = … tokens per second").
  tps=$(grep 'print_timing' "$L/ls-$name.txt" | grep -v 'prompt eval' | grep -o '[0-9.]* tokens per second' |
    tail -1 | cut -d' ' -f1)
  after=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits | awk -F', ' -v p="$LSP" '$1==p{print $2}')
  local off
  off=$(grep -o 'offloaded [0-9]*/[0-9]* layers to GPU' "$L/ls-$name.txt" | head -1)
  say "$(printf '%-22s ngl=%-3s c=%-5s runner MiB after load %-6s after 64 tokens %-6s tok/s %-7s %s' \
    "$name" "$ngl" "$ctx" "${load:-none}" "${after:-none}" "${tps:-?}" "$off")"
}
stop_ls() { [ -n "$LSP" ] && kill "$LSP" 2>/dev/null; wait "$LSP" 2>/dev/null; LSP=; sleep 0.5; }

if [[ $PARTS == *" baseline "* ]] && [ -x "$LS" ] && enough 90 baseline; then
  say "== runner baseline: real llama-server, CUDA sm_90, -np 1 -b 512 -ub 512 -fa off, nvidia-smi per pid"
  for ctx in 2048 4096 8192; do
    enough 25 "baseline c=$ctx" || break
    run_ls tiny-ngl0-c$ctx "$TINY_BLOB" 0 "$ctx"; stop_ls
    run_ls 2g-ngl0-c$ctx "$BIG_BLOB" 0 "$ctx"; stop_ls
  done
  # Does the compute buffer keep growing with -c (about n_ubatch x n_head x 4 B per token)?
  enough 25 "baseline c=16384" && { run_ls 2g-ngl0-c16384 "$BIG_BLOB" 0 16384; stop_ls; }
  enough 25 "baseline tiny all" && { run_ls tiny-ngl99-c4096 "$TINY_BLOB" 99 4096; stop_ls; }
fi

if [[ $PARTS == *" real "* ]] && [ -x "$LS" ] && enough 60 real; then
  say "== real llama-server under yollayah: /api/ps (simulator) says proof-2g 100% GPU at c=4096"
  start_sim 127.0.0.1:11434
  # REAL_NGLS / REAL_ENV0_CTXS pick a subset (a rerun of one case).
  for ngl in ${REAL_NGLS:-99 0 12}; do
    enough 30 "real ngl=$ngl" || break
    run_ls real-2g-ngl$ngl "$BIG_BLOB" "$ngl" 4096
    observe real-2g-ngl$ngl 5
    if [ "$ngl" != 99 ]; then
      # doctor while the runner generates: its CPU use, sampled over an interval, must show.
      hp http://127.0.0.1:18080/completion '{"prompt":"Once upon a time","n_predict":200}' 60 >/dev/null &
      gen=$!
      sleep 1.5
      yol doctor --json >"$L/real-2g-ngl$ngl-busy-doctor.json" 2>/dev/null
      say "-- real-2g-ngl$ngl while generating:"
      python3 "$here/summarize.py" doctor "$L/real-2g-ngl$ngl-busy-doctor.json" | tee -a "$S"
      wait "$gen"
    fi
    stop_ls
  done
  # No -ngl in the argv: memory alone decides. At -c 4096 and -c 16384 the runner holds no
  # layer, only the CUDA context and compute buffers that grow with -c.
  for ctx in ${REAL_ENV0_CTXS-4096 16384}; do
    enough 30 "real env0 c=$ctx" || break
    run_ls real-2g-envngl0-c$ctx "$BIG_BLOB" env0 "$ctx"
    observe real-2g-envngl0-c$ctx 5
    stop_ls
  done
  stop_sim
fi
[ -x "$LS" ] || say "!! no llama-server binary: see build.txt"
if [ -x "$carry/bin/nvml_probe_bench" ] && enough 15 nvml-bench; then
  say "== NVML probe vs nvidia-smi (crates/core/examples/nvml_probe_bench.rs)"
  "$carry/bin/nvml_probe_bench" 20000 30 2>&1 | grep -v '^ ' | tee -a "$S"
fi
say "== done, $(left) s before the self-imposed deadline"
