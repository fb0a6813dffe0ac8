#!/usr/bin/env bash
# The one test command (README "Run the tests"): installs what the tests need when it is
# missing, then runs formatting, lints and every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh test
# deps.sh installed Prometheus and Alertmanager: the agent's tests must not skip them here.
export YOLLAYAH_REQUIRE_PROMETHEUS=1
# …and Xvfb, dbus-daemon and dunst: `watch --notify`'s test must not skip them either.
export YOLLAYAH_REQUIRE_DESKTOP=1

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
echo "== e2e: the tray app on a virtual desktop (Xvfb + session bus + tray host + dunst)"
# Integration tests build the binary they start (CARGO_BIN_EXE_*); building it first keeps a
# compile error apart from an e2e failure.
cargo build -p yollayah-tray -p yollayah-chat --locked
./scripts/e2e/run.sh cargo test -p yollayah-tray --test e2e_tray --locked -- --nocapture
echo "== e2e: the chat window in the real webview against ollama-sim"
./scripts/e2e/webview.sh
