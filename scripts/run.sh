#!/usr/bin/env bash
# Builds and starts the Yollayah tray app (release build). Installs the desktop packages first
# when something is missing.
#   scripts/run.sh           against your Ollama (OLLAMA_HOST, or the config's [ollama] url)
#   scripts/run.sh --demo    against a built-in Ollama simulator: no GPU or Ollama needed
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh desktop-build
./scripts/deps.sh desktop-run

echo "== building yollayah-tray and its chat window (release; the first build takes several minutes)"
cargo build -p yollayah-tray -p yollayah-chat --release --locked

demo=0
for a in "$@"; do [ "$a" = "--demo" ] && demo=1; done
if [ "$demo" = 1 ]; then
  cat <<'MSG'
== demo mode: the app talks to an in-process Ollama simulator (12 GiB RTX 4070, llama3.2:3b).
   Its address is printed below ("demo simulator at http://127.0.0.1:PORT"). Stage states with
   curl, e.g. a CPU fallback and its fix:
     curl -X POST http://127.0.0.1:PORT/__sim/fault -H 'Content-Type: application/json' \
       -d '{"kind":"ps_lies_gpu","model":"llama3.2:3b"}'
     curl -X POST http://127.0.0.1:PORT/__sim/clear
   More in docs/desktop.md ("Demo mode").
MSG
else
  url=${OLLAMA_HOST:-127.0.0.1:11434}
  if ! curl -fsS --max-time 2 "http://${url#http://}/api/version" >/dev/null 2>&1; then
    cat <<MSG
== Ollama does not answer at ${url}. The app starts anyway: its tray icon shows
   "Ollama down" and its menu says how to fix it. Start Ollama with
     ollama serve            (or: systemctl start ollama)
   and the tray turns to the model's state within a tick (2 s). To look around without
   Ollama, run: scripts/run.sh --demo
MSG
  fi
fi
echo "== starting yollayah-tray (its icon is in your tray; Quit is in its menu)"
exec ./target/release/yollayah-tray "$@"
