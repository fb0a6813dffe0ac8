#!/usr/bin/env bash
# Stages the release tray for tray-idle.sh on the GPU machine: the binary, tray-idle.sh and every
# library the binary links except glibc's own (the machine has no GTK), into
# DEST/.gpu-carry/lean-tray/ (ignored). The device tool sends the session's checkout, so DEST is
# that checkout; carry `.gpu-carry/lean-tray` and run `bash .gpu-carry/lean-tray/tray-idle.sh`.
#   scripts/gpu/stage-tray.sh DEST [TRAY_BIN]
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=${1:?usage: stage-tray.sh DEST [TRAY_BIN]}/.gpu-carry/lean-tray
bin=${2:-target/release/yollayah-tray}
rm -rf "$dest"; mkdir -p "$dest/lib"
cp "$bin" "$dest/yollayah-tray"
cp scripts/gpu/tray-idle.sh scripts/gpu/fake-ollama.py "$dest/"
ldd "$bin" | awk '$3 ~ /^\// { print $3 }' |
  grep -Ev '/(libc|libm|libdl|libpthread|librt|libgcc_s|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$dest/lib/"; done
du -sh "$dest"
