#!/usr/bin/env bash
# Runs the issue-5 measurements and leaves every result in one folder:
#   machine_limits.json      bench_machine_limits (read bandwidth, peak FMA, Eigen GEMM), Google
#                            Benchmark's JSON
#   llama_bench-<shape>.json llama_bench (pp128, pp512, tg64 at 1 and 2 threads) per shape
#   llama.cpp-<name>.json    llama.cpp's llama-bench on a GGUF, if LLAMA_BENCH and GGUF are set
#   uptime.txt               the load before and after each step (the figures depend on it)
#   commit.txt               the llamablocks commit measured
#
# usage: scripts/run-bench.sh OUT_DIR [SHAPE ...]       (default shapes: stories110M tinyllama)
# environment:
#   BUILD_DIR     the build folder (default build-bench), configured Release, CPU only, no tests
#   JOBS          parallel build jobs (default 1: the machine is shared)
#   REPETITIONS   timed runs per llama_bench test (default 5)
#   THREADS       thread counts (default 1,2)
#   TIED          1: the shapes have a tied output head (as SmolLM2)
#   PROMPTS       prefill lengths (default 128,512); GEN: decode lengths (default 64)
#   WEIGHTS       weight types to run, comma-separated (default f32): f32, f16, bf16, q8_0
#   LLAMA_BENCH   path of llama.cpp's llama-bench; GGUF: a model of the same shape for it, or a
#                 comma-separated list with one GGUF per entry of WEIGHTS, in the same order
#   ROUNDS        repeat every llama_bench / llama-bench run this many times (default 1), each of
#                 ours followed by llama.cpp on the same type when GGUF has one file per weight type
#   SKIP_LIMITS   1: do not run bench_machine_limits
#   MODULES       per-module benchmarks to run after the limits, e.g. "bench_rms_norm bench_attention";
#                 MODULE_FILTER is their --benchmark_filter (default: the tinyllama shape). Each
#                 writes module-<name>.json, and fractions.md gives every result as a fraction of
#                 the limits (scripts/bench-fractions.py); MODULE_THREADS: their threads (default 1)
set -euo pipefail

out=${1:?usage: scripts/run-bench.sh OUT_DIR [SHAPE ...]}
shift
shapes=("$@")
[[ ${#shapes[@]} -gt 0 ]] || shapes=(stories110M tinyllama)
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
repetitions=${REPETITIONS:-5}
threads=${THREADS:-1,2}
prompts=${PROMPTS:-128,512}
gen=${GEN:-64}
IFS=, read -r -a weights <<<"${WEIGHTS:-f32}"
IFS=, read -r -a ggufs <<<"${GGUF:-}"
mkdir -p "$out"

note_load() { echo "$1: $(uptime)" | tee -a "$out/uptime.txt"; }
git -C "$root" rev-parse HEAD >"$out/commit.txt" 2>/dev/null || true

if [[ ! -f $build/CMakeCache.txt ]]; then
  nice -n 5 cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DLLAMABLOCKS_CUDA=OFF \
    -DLLAMABLOCKS_BUILD_TESTS=OFF
fi
nice -n 5 cmake --build "$build" --target bench_machine_limits llama_bench -j "${JOBS:-1}"

if [[ ${SKIP_LIMITS:-0} != 1 ]]; then
  note_load "before bench_machine_limits"
  "$build/bench/bench_machine_limits" --benchmark_out="$out/machine_limits.json" \
    --benchmark_out_format=json | tee "$out/machine_limits.txt"
  note_load "after bench_machine_limits"
fi

if [[ -n ${MODULES:-} ]]; then
  module_jsons=()
  for module in $MODULES; do
    nice -n 5 cmake --build "$build" --target "$module" -j "${JOBS:-1}"
    note_load "before $module"
    LLAMABLOCKS_THREADS=${MODULE_THREADS:-1} "$build/bench/$module" \
      --benchmark_filter="${MODULE_FILTER:-/tinyllama}" --benchmark_repetitions=3 \
      --benchmark_report_aggregates_only=true \
      --benchmark_out="$out/module-$module.json" --benchmark_out_format=json
    note_load "after $module"
    module_jsons+=("$out/module-$module.json")
  done
  if [[ -f $out/machine_limits.json ]]; then
    "$root/scripts/bench-fractions.py" "$out/machine_limits.json" "${module_jsons[@]}" --markdown \
      | tee "$out/fractions.md"
  fi
fi

# One llama.cpp run: JSON on stdout, the markdown table on stderr (shown and kept).
run_llama_cpp() {  # GGUF SUFFIX
  local name
  name=$(basename "$1" .gguf)$2
  note_load "before llama.cpp llama-bench $name"
  "$LLAMA_BENCH" -m "$1" -p "$prompts" -n "$gen" -t "$threads" -r "$repetitions" -o json \
    -oe md >"$out/llama.cpp-$name.json" 2> >(tee "$out/llama.cpp-$name.md" >&2)
  note_load "after llama.cpp llama-bench $name"
}

# With one GGUF per weight type, each of ours is followed at once by llama.cpp on the same type,
# so that the two share the machine's state; ROUNDS > 1 repeats the whole sequence (files get a
# -roundK suffix) and scripts/side-by-side.py takes the medians over every round.
paired=0
[[ -n ${LLAMA_BENCH:-} && ${#ggufs[@]} -eq ${#weights[@]} ]] && paired=1
rounds=${ROUNDS:-1}
tied=()
[[ ${TIED:-0} == 1 ]] && tied=(--tied)
for ((round = 1; round <= rounds; ++round)); do
  suffix=
  ((rounds > 1)) && suffix=-round$round
  for shape in "${shapes[@]}"; do
    for i in "${!weights[@]}"; do
      weight=${weights[$i]}
      name=${shape//,/-}
      [[ $weight == f32 ]] || name=$name-$weight
      name=$name$suffix
      note_load "before llama_bench $name"
      "$build/bench/llama_bench" --shape "$shape" -p "$prompts" -n "$gen" --threads "$threads" \
        --repetitions "$repetitions" --weights "$weight" "${tied[@]}" \
        --json "$out/llama_bench-$name.json" | tee "$out/llama_bench-$name.md"
      note_load "after llama_bench $name"
      if ((paired)); then run_llama_cpp "${ggufs[$i]}" "$suffix"; fi
    done
  done
  if [[ -n ${LLAMA_BENCH:-} ]] && ((!paired)); then
    for gguf in "${ggufs[@]}"; do run_llama_cpp "$gguf" "$suffix"; done
  fi
done
