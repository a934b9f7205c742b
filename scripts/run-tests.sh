#!/usr/bin/env bash
# Builds everything with warnings as errors and runs the whole CTest suite, then builds the tests
# again with AddressSanitizer + UndefinedBehaviorSanitizer and runs them there too. The cuda
# backend is compiled when nvcc is present; its tests skip (exit 77) on a machine without a GPU.
# Last, a smoke run of the libFuzzer targets (about 30 s in all) keeps them building and running.
#   LLAMABLOCKS_SHARED_DIR  folder with data/ and models/ (default: ../shared beside the checkout)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${LLAMABLOCKS_SHARED_DIR:-$root/../shared}
jobs=$(nproc)

echo "== release build: tests, benchmarks, examples (warnings are errors)"
cmake -S "$root" -B "$root/build/release" -DCMAKE_BUILD_TYPE=Release \
      -DLLAMABLOCKS_SHARED_DIR="$shared"
cmake --build "$root/build/release" -j "$jobs"
ctest --test-dir "$root/build/release" --output-on-failure -j "$jobs"

echo "== sanitizer build: AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S "$root" -B "$root/build/sanitize" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DLLAMABLOCKS_SANITIZE=ON -DLLAMABLOCKS_BUILD_BENCHMARKS=OFF -DLLAMABLOCKS_CUDA=OFF \
      -DLLAMABLOCKS_SHARED_DIR="$shared"
cmake --build "$root/build/sanitize" -j "$jobs"
# The header and install checks compile code only; the release run covered them.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir "$root/build/sanitize" --output-on-failure -j "$jobs" \
        -E "headers_self_contained|consumer_find_package"

echo "== fuzz smoke: each libFuzzer target for a few seconds (scripts/run-fuzzers.sh)"
fuzz_targets=("$root"/tests/fuzz/fuzz_*.cpp)
LLAMABLOCKS_FUZZ_BUILD_DIR="$root/build/fuzz" JOBS="$jobs" \
  "$root/scripts/run-fuzzers.sh" $(( 30 / ${#fuzz_targets[@]} ))
