#!/usr/bin/env bash
# Builds the release binaries and the Debian package of Yollayah: one .deb holding the tray
# app (`yollayah-tray`, with its desktop entry and icons), its chat window (`yollayah-chat`,
# started by the tray on demand), the `yollayah` CLI and the systemd user unit
# `yollayah-watch.service`. Output: target/release/bundle/deb/yollayah_<version>_<arch>.deb
#   scripts/package.sh
# Needs the desktop build packages (scripts/deps.sh desktop-build) and Tauri's CLI
# (`cargo install tauri-cli --version "^2" --locked`, installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/deps.sh desktop-build
command -v dpkg-deb >/dev/null || { echo "dpkg-deb is needed (apt-get install dpkg)" >&2; exit 1; }
if ! cargo tauri --version >/dev/null 2>&1; then
  echo "== installing tauri-cli (several minutes, once)"
  cargo install tauri-cli --version "^2" --locked
fi

echo "== building yollayah (CLI, release)"
cargo build --release --locked -p yollayah-cli
# `tauri/custom-protocol` is what `cargo tauri build` enables: the web assets are embedded
# and served from the app instead of a dev server. Built with plain cargo so this step and
# `scripts/run.sh` share the same build settings and cargo's output is visible.
# Without the default `demo` feature: the package carries no simulator (an HTTP server it would
# never use).
echo "== building yollayah-tray and yollayah-chat (release; the first build takes several minutes)"
cargo build --release --locked -p yollayah-tray --no-default-features
cargo build --release --locked -p yollayah-chat --no-default-features --features tauri/custom-protocol

# `tauri bundle` packages the binaries already built above (no second compile); the .deb
# layout (desktop entry, icons, depends, extra files) comes from src-tauri/chat/tauri.conf.json:
# its main binary (the desktop entry's Exec) is yollayah-tray, and yollayah-chat is one of its
# extra files, installed beside it in /usr/bin (the tray looks for the chat there).
echo "== bundling"
rm -f target/release/bundle/deb/*.deb
(cd src-tauri/chat && cargo tauri bundle --bundles deb)
# Tauri names the file after productName ("Yollayah_…"); Debian's convention is the package
# name ("yollayah_<version>_<arch>.deb"), which is also what the install docs glob for.
for d in target/release/bundle/deb/Yollayah_*.deb; do
  [ -e "$d" ] && mv -f "$d" "target/release/bundle/deb/yollayah_${d##*/Yollayah_}"
done

shopt -s nullglob
debs=(target/release/bundle/deb/*.deb)
[ ${#debs[@]} -gt 0 ] || { echo "no .deb was written" >&2; exit 1; }
for d in "${debs[@]}"; do
  echo "== $d ($(du -h "$d" | cut -f1))"
  dpkg-deb --info "$d" | sed -n '/Package:/,$p'
  dpkg-deb --contents "$d"
  for bin in yollayah yollayah-tray yollayah-chat; do
    dpkg-deb --contents "$d" | grep -q "/usr/bin/$bin\$" || { echo "$d lacks /usr/bin/$bin" >&2; exit 1; }
  done
done
