#!/usr/bin/env bash
# End-to-end tests of the chat window in the REAL webview: installs tauri-driver (cargo) and
# WebKitWebDriver (apt) when missing, builds yollayah-chat and ollama-sim, then runs the
# tests/webview package on a virtual desktop (scripts/e2e/run.sh sets YOLLAYAH_E2E=1).
#   scripts/e2e/webview.sh            run the tests (screenshots/figures go to target/webview-e2e)
#   scripts/e2e/webview.sh --docs     also refresh docs/screenshots/webview-*.png and
#                                     docs/benchmarks-webview.md
#   scripts/e2e/webview.sh -- NAME    run only the tests whose name contains NAME
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${1:-}" = "--docs" ]; then
  export YOLLAYAH_WEBVIEW_DOCS=1
  shift
fi
[ "${1:-}" = "--" ] && shift

./scripts/deps.sh e2e
if ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "== installing tauri-driver"
  cargo install tauri-driver --locked
fi
export PATH="$HOME/.cargo/bin:$PATH"

echo "== build yollayah-chat, ollama-sim and the webview tests"
cargo build -p yollayah-chat -p ollama-sim --locked
cargo test -p yollayah-webview-e2e --locked --no-run

# Other sessions on this machine may hold :99: take the first free display unless told.
if [ -z "${E2E_DISPLAY:-}" ]; then
  for n in $(seq 100 199); do
    [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ] || { export E2E_DISPLAY=":$n"; break; }
  done
fi
echo "== e2e: the chat window in the real webview (tauri-driver + WebKitWebDriver) on ${E2E_DISPLAY:-:99}"
./scripts/e2e/run.sh cargo test -p yollayah-webview-e2e --locked --test webview -- \
  --nocapture --test-threads=1 "$@"
