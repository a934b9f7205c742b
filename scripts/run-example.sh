#!/usr/bin/env bash
# Builds the LLaMA example and generates with it. Until checkpoint readers land, the model has
# random weights of the stories110M shape (dim 768, 12 layers, 12 heads, ffn 2048, vocab 32000);
# the program prints the generated token ids and the prefill / decode tokens/s.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$root" -B "$root/build/release" -DCMAKE_BUILD_TYPE=Release
cmake --build "$root/build/release" -j "$(nproc)" --target llama2
"$root/build/release/examples/llama2/llama2" --shape stories110M -n 64 --prompt-tokens 32 --print-ids "$@"
