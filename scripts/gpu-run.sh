#!/usr/bin/env bash
# Runs, on a lent GPU machine, the cuda backend's device checks that scripts/gpu-kit.sh built into
# .gpu-kit/, in one go, and writes what they said to $OUT (at most 8 files come back):
#   gpu-run.log              the GPU, every test program's verdict and tail, the llama2 cuda = cpu
#                            comparisons, the PyTorch baselines, a summary
#   bench_cuda_*.json        Google Benchmark JSON of each cuda benchmark (medians of 5)
# Run from the repository root:  scripts/gpu-run.sh [seconds per program, default 240]
# Exit status: 0 when every test passed (none skipped), 1 otherwise.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kit=$root/.gpu-kit
out=${OUT:-$root/build/gpu-run}
limit=${1:-240}
mkdir -p "$out"
log=$out/gpu-run.log
: >"$log"
say() { echo "$*" | tee -a "$log"; }

[ -d "$kit/bin" ] || { say "gpu-run.sh: no .gpu-kit/bin: run scripts/gpu-kit.sh first and carry .gpu-kit"; exit 1; }
export LD_LIBRARY_PATH="$kit/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
say "== kit built from $(cat "$kit/commit.txt" 2>/dev/null) for sm_$(cat "$kit/architectures.txt" 2>/dev/null); tree at $(git -C "$root" rev-parse HEAD 2>/dev/null)"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee -a "$log"
missing=0
for program in "$kit"/bin/*; do
  if ldd "$program" | grep -q "not found"; then
    say "MISSING libraries for $(basename "$program"):"; ldd "$program" | grep "not found" | tee -a "$log"; missing=1
  fi
done
[ "$missing" -eq 0 ] || say "(some programs cannot start; their checks below will fail)"

declare -a passed=() failed=() skipped=()
verdict() {  # name status
  case "$2" in
    0) passed+=("$1") ;;
    77) skipped+=("$1") ;;
    *) failed+=("$1 (exit $2)") ;;
  esac
  say "-- $1: exit $2"
}

say "== cuda tests (exit 0 passed, 77 skipped)"
for program in "$kit"/bin/test_cuda_*; do
  name=$(basename "$program")
  start=$(date +%s)
  timeout "$limit" "$program" >"$out/$name.txt" 2>&1
  status=$?
  tail -n 15 "$out/$name.txt" | tee -a "$log"
  say "   ($(( $(date +%s) - start )) s)"
  verdict "$name" "$status"
  rm -f "$out/$name.txt"
done

say "== llama2: --device cuda (float32) gives the cpu's ids at temperature 0"
for model in random generation_gqa_untied generation_mqa_tied_3layers; do
  if [ "$model" = random ]; then args=(random --shape 64,2,4,2,172,256 --prompt-tokens 5 -s 7)
  else args=("$root/tests/golden/$model.bin"); fi
  cuda_ids=$(timeout "$limit" "$kit/bin/llama2" "${args[@]}" -t 0 -n 40 --print-ids --device cuda 2>"$out/errors.txt")
  cuda_status=$?
  tee -a "$log" <"$out/errors.txt"
  cpu_ids=$(timeout "$limit" "$kit/bin/llama2" "${args[@]}" -t 0 -n 40 --print-ids --threads 2 2>>"$log")
  if [ "$cuda_status" -ne 0 ] && grep -q "no CUDA device" "$out/errors.txt"; then
    verdict "llama2 cuda = cpu ($model)" 77
  elif [ "$cuda_status" -ne 0 ]; then verdict "llama2 cuda = cpu ($model)" "$cuda_status"
  elif [ "$cuda_ids" = "$cpu_ids" ]; then say "$cuda_ids"; verdict "llama2 cuda = cpu ($model)" 0
  else say "cuda: $cuda_ids"; say "cpu:  $cpu_ids"; verdict "llama2 cuda = cpu ($model)" 1
  fi
done

rm -f "$out/errors.txt"

say "== cuda benchmarks (CUDA events, L2 flushed, medians of 5)"
for program in "$kit"/bin/bench_cuda_*; do
  name=$(basename "$program")
  timeout "$limit" "$program" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
    --benchmark_out="$out/$name.json" --benchmark_out_format=json 2>&1 | grep -E "median|rror|^BM_Copy" | tee -a "$log"
  say "-- $name: exit ${PIPESTATUS[0]}"
done

say "== PyTorch baselines, same shapes and timing"
for script in "$root"/bench/cuda/torch_*.py; do
  case "$script" in *torch_timing.py) continue ;; esac
  say "-- $(basename "$script")"
  timeout "$limit" python3 "$script" 2>&1 | tee -a "$log"
done

say "== summary"
say "passed (${#passed[@]}): ${passed[*]:-}"
say "skipped (${#skipped[@]}): ${skipped[*]:-}"
say "failed (${#failed[@]}): ${failed[*]:-}"
[ "${#failed[@]}" -eq 0 ] && [ "${#skipped[@]}" -eq 0 ]
