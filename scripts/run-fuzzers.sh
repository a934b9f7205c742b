#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (-fsanitize=fuzzer,address,undefined) and
# runs each one for SECONDS_PER_TARGET seconds, one after the other, then prints per target:
# executions, executions per second, crashes, leaks, timeouts (inputs over 1 s), out-of-memory
# inputs, and peak RSS. Exits 1 when any target found anything; the inputs are kept as
# BUILD_DIR/artifacts/<target>/{crash,leak,timeout,oom}-*, replay one with BUILD_DIR/<target> FILE.
#   scripts/run-fuzzers.sh SECONDS_PER_TARGET [TARGET...]     (default: every fuzz_* target)
# Environment:
#   LLAMABLOCKS_FUZZ_BUILD_DIR  build folder (default: build/fuzz in the checkout); its corpus/
#                               keeps what earlier runs found, so runs add up
#   LLAMABLOCKS_FUZZ_RSS_MB     -rss_limit_mb and -malloc_limit_mb (default 2048)
#   CXX                         clang++ to use (default: clang++-14, else clang++)
#   JOBS                        build parallelism (default: nproc)
set -euo pipefail
if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 SECONDS_PER_TARGET [TARGET...]" >&2
  exit 2
fi
seconds=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
build=${LLAMABLOCKS_FUZZ_BUILD_DIR:-$root/build/fuzz}
rss_mb=${LLAMABLOCKS_FUZZ_RSS_MB:-2048}
jobs=${JOBS:-$(nproc)}
cxx=${CXX:-$(command -v clang++-14 || command -v clang++ || true)}
if [ -z "$cxx" ]; then
  echo "run-fuzzers: no clang++ found (scripts/install-deps.sh installs clang-14)" >&2
  exit 1
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for source in "$root"/tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$source" .cpp)"); done
fi

cmake -S "$root" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DLLAMABLOCKS_FUZZ=ON -DLLAMABLOCKS_BUILD_TESTS=OFF -DLLAMABLOCKS_BUILD_BENCHMARKS=OFF \
      -DLLAMABLOCKS_BUILD_EXAMPLES=OFF -DLLAMABLOCKS_CUDA=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target make_seeds "${targets[@]}"

seeds="$build/seeds"
"$build/tests/fuzz/make_seeds" "$seeds"
cp "$root"/tests/data/gguf/*.gguf "$seeds/fuzz_gguf/"
cp "$root"/tests/data/gguf/*.gguf "$seeds/fuzz_gguf_vocab/"
# The golden Hugging Face folders: their config.json files and the shards small enough to mutate.
for folder in "$root"/tests/golden/hf_*; do
  name=$(basename "$folder")
  cp "$folder/config.json" "$seeds/fuzz_hf_config/$name.json"
  cp "$folder/config.json" "$seeds/fuzz_json/$name.json"
  if [ -f "$folder/model.safetensors.index.json" ]; then
    cp "$folder/model.safetensors.index.json" "$seeds/fuzz_json/$name.index.json"
  fi
  for shard in "$folder"/*.safetensors; do
    if [ "$(stat -c %s "$shard")" -le 65536 ]; then
      cp "$shard" "$seeds/fuzz_safetensors/$name-$(basename "$shard")"
    fi
  done
done

summary=()
found=0
failed_targets=0
for target in "${targets[@]}"; do
  corpus="$build/corpus/$target"
  artifacts="$build/artifacts/$target"
  log="$build/logs/$target.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  dict=()
  case $target in
    fuzz_gguf*) dict=(-dict="$root/tests/fuzz/gguf.dict") ;;
    fuzz_json | fuzz_hf_config | fuzz_safetensors) dict=(-dict="$root/tests/fuzz/json.dict") ;;
  esac
  stamp="$build/logs/$target.started"
  touch "$stamp"
  echo "== $target: ${seconds} s (log: $log)"
  set +e
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$build/tests/fuzz/$target" "$corpus" "$seeds/$target" "${dict[@]}" \
      -max_total_time="$seconds" -timeout=1 -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" \
      -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
  status=$?
  set -e
  stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
  # Only this run's findings: earlier ones stay in the folder for replaying.
  count() { find "$artifacts" -maxdepth 1 -name "$1-*" -newer "$stamp" | wc -l; }
  executions=$(stat number_of_executed_units)
  per_second=$(stat average_exec_per_sec)
  peak=$(stat peak_rss_mb)
  crashes=$(( $(count crash) + $(count deadly_signal) ))
  leaks=$(count leak)
  timeouts=$(count timeout)
  ooms=$(count oom)
  if [ "$status" -ne 0 ] || [ $((crashes + leaks + timeouts + ooms)) -ne 0 ]; then
    found=1
    failed_targets=$((failed_targets + 1))
  fi
  summary+=("$(printf '%-26s %12s %8s %7s %5s %8s %4s %8s  exit %s' "$target" "${executions:-?}" \
    "${per_second:-?}" "$crashes" "$leaks" "$timeouts" "$ooms" "${peak:-?}" "$status")")
done

echo
printf '%-26s %12s %8s %7s %5s %8s %4s %8s\n' target executions exec/s crashes leaks timeouts oom \
  "peak MB"
printf '%s\n' "${summary[@]}"
echo "fuzz: $(( ${#targets[@]} - failed_targets )) passed, $failed_targets failed"
if [ "$found" -ne 0 ]; then
  echo "run-fuzzers: findings; inputs in $build/artifacts, logs in $build/logs" >&2
  tail -n 40 "$build"/logs/*.log >&2 || true
  exit 1
fi
