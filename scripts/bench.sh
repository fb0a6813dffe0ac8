#!/usr/bin/env bash
# Runs every benchmark with short measurement times and regenerates docs/benchmarks.md:
#   criterion benches of yollayah-core (ndjson, diagnose, persona) and yollayah-render
#   (stream), and the stream relay comparison (raw HTTP vs Yollayah's client vs the official
#   Ollama Python client, crates/core/benches/relay.rs + bench/relay_python.py), and the load
#   bench of `yollayah agent` (crates/agent/benches/agent_load.rs).
# Rows that need other machines or tools (GPU machine, tray footprint, real webview) are kept
# from the current docs/benchmarks.md and marked with where they came from.
#   scripts/bench.sh            (or: make bench)
# Env: BENCH_MEASURE_S (criterion measurement time, default 2), RELAY_TOKENS (20000),
#      RELAY_ROUNDS (20), BENCH_VENV (Python venv with `ollama`, default target/bench-venv),
#      AGENT_LOAD_S (60), AGENT_IDLE_S (30).
set -euo pipefail
cd "$(dirname "$0")/.."

measure=${BENCH_MEASURE_S:-2}
tokens=${RELAY_TOKENS:-20000}
rounds=${RELAY_ROUNDS:-20}
venv=${BENCH_VENV:-$PWD/target/bench-venv}
out=target/bench
mkdir -p "$out"

# The official Python client, in a venv of its own (Debian's Python is externally managed).
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import ollama' 2>/dev/null; then
  echo "== creating $venv with the ollama Python client"
  if python3 -m venv "$venv" && "$venv/bin/pip" install -q ollama; then :; else
    echo "   (no Python client: the relay's python column will be skipped)" >&2
  fi
fi
python_bin=$venv/bin/python
[ -x "$python_bin" ] || python_bin=python3

crit=(-- --warm-up-time 0.5 --measurement-time "$measure")
echo "== core: ndjson, diagnose, persona"
cargo bench --locked -p yollayah-core --bench ndjson --bench diagnose --bench persona "${crit[@]}" 2>&1 \
  | tee "$out/core.log"
echo "== render: stream"
cargo bench --locked -p yollayah-render --bench stream "${crit[@]}" 2>&1 | tee "$out/render.log"
# Single-threaded by construction (the image crate is built without rayon).
echo "== core: image intake (12 MP JPEG, one core)"
cargo bench --locked -p yollayah-core --bench images 2>&1 | tee "$out/images.log"
echo "== relay: $tokens tokens × $rounds rounds"
cargo bench --locked -p yollayah-core --bench relay -- --tokens "$tokens" --rounds "$rounds" \
  --python "$python_bin" --script "$PWD/bench/relay_python.py" 2>&1 | tee "$out/relay.log"

echo "== agent: one scrape, 50 scrapers + 100 subscribers, idle vs watch (AGENT_LOAD_S, AGENT_IDLE_S)"
# The bench starts the release binaries as separate processes, so build them first.
cargo build --release --locked -p yollayah-cli -p ollama-sim
cargo bench --locked -p yollayah-agent --bench agent_load 2>&1 | tee "$out/agent.log"

python3 bench/gen_benchmarks_md.py --core "$out/core.log" --render "$out/render.log" \
  --relay "$out/relay.log" --agent "$out/agent.log" --images "$out/images.log" \
  --doc docs/benchmarks.md
echo "== docs/benchmarks.md regenerated"
