#!/usr/bin/env bash
# Builds llama.cpp's llama-server with CUDA for sm_90 only (H100/H200): static ggml, no flash-
# attention kernels (they triple the build time and Ollama turns FA off without them anyway),
# no web UI download (the GPU machine is offline). About 3 minutes on 16 cores.
#   build-llama-server.sh LLAMA_CPP_DIR WORKDIR   -> WORKDIR/bin/llama-server
set -euo pipefail
src=${1:?llama.cpp dir}; work=${2:?workdir}
mkdir -p "$work/bin"
if [ -x "$work/bin/llama-server" ]; then echo "already built: $work/bin/llama-server"; exit 0; fi
export PATH=/usr/local/cuda/bin:$PATH
t0=$(date +%s)
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_CUDA_FA=OFF -DGGML_CUDA_NCCL=OFF \
  -DGGML_NATIVE=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
cmake --build "$work/build" --target llama-server -j"$(nproc)"
cp "$work/build/bin/llama-server" "$work/bin/"
echo "built $work/bin/llama-server in $(($(date +%s) - t0)) s"
