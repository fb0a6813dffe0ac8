#!/usr/bin/env bash
# Puts what the GPU machine needs into DEST/.gpu-carry (an ignored folder; name it in the device
# tool's `carry`): these scripts, the release `yollayah` and `ollama-sim`, and the trimmed
# llama.cpp sources from fetch-llama-cpp.sh. DEST is the checkout the device tool sends (the
# session's repository root; default: this one). Checks the 64 MiB limit of what travels.
#   scripts/gpu/stage.sh [DEST]
set -euo pipefail
top=$(git rev-parse --show-toplevel)
dest=$(cd "${1:-$top}" && pwd)
src=$top/.gpu-cache/llama.cpp-src.tar.gz
[ -s "$src" ] || { echo "run scripts/gpu/fetch-llama-cpp.sh first" >&2; exit 1; }
for b in yollayah ollama-sim; do
  [ -x "$top/target/release/$b" ] || {
    echo "build first: cargo build --release -p yollayah-cli -p ollama-sim" >&2
    exit 1
  }
done
c=$dest/.gpu-carry
rm -rf "$c" && mkdir -p "$c/bin" "$c/scripts"
cp "$top"/scripts/gpu/*.sh "$top"/scripts/gpu/*.py "$c/scripts/"
cp "$top/target/release/yollayah" "$top/target/release/ollama-sim" "$c/bin/"
# Optional: cargo build --release -p yollayah-core --example nvml_probe_bench
ex=$top/target/release/examples/nvml_probe_bench
[ -x "$ex" ] && cp "$ex" "$c/bin/"
strip "$c"/bin/* 2>/dev/null || true
cp "$src" "$c/"
# The GPU machine may lack iproute2 (the remote case needs a network namespace): carry this
# machine's `ip` and the libraries it links beyond libc.
if ipbin=$(command -v ip); then
  mkdir -p "$c/iproute2"
  cp "$ipbin" "$c/iproute2/ip"
  ldd "$ipbin" | awk '$3 ~ /^\// {print $3}' | grep -v -e '/libc\.so' -e '/ld-linux' |
    while read -r lib; do cp -L "$lib" "$c/iproute2/"; done
fi
git -C "$top" log -1 --format='%H %s' >"$c/COMMIT"
# Ignored in DEST even before this branch's .gitignore is merged there.
excl=$(git -C "$dest" rev-parse --git-common-dir)/info/exclude
case $excl in /*) ;; *) excl=$dest/$excl ;; esac
mkdir -p "$(dirname "$excl")"
grep -qx '/.gpu-carry/' "$excl" 2>/dev/null || echo '/.gpu-carry/' >>"$excl"
tree_kib=$(cd "$dest" && git ls-files -z --cached --others --exclude-standard | du -ck --files0-from=- 2>/dev/null | tail -1 | cut -f1)
carry_kib=$(du -sk "$c" | cut -f1)
echo "staged $c: $(du -sh "$c" | cut -f1) (binaries: $(du -ch "$c"/bin/* | tail -1 | cut -f1)); tree $((tree_kib / 1024)) MiB + carry $((carry_kib / 1024)) MiB of 64"
[ $((tree_kib + carry_kib)) -lt $((63 * 1024)) ] || { echo "over the 64 MiB limit" >&2; exit 1; }
echo "device command: bash .gpu-carry/scripts/device-run.sh TAG   (carry: [\".gpu-carry\"])"
