#!/usr/bin/env bash
# Builds, on a CPU machine with nvcc, everything the cuda backend's device checks run, and gathers
# it into .gpu-kit/ (ignored by git) for a lent GPU machine to run with scripts/gpu-run.sh. That
# machine has nvcc and PyTorch but no package registry, so no Eigen, Catch2 or Google Benchmark to
# build against, and its time is short: it should only run things.
#   .gpu-kit/bin   test_cuda_* (every cuda test program), bench_cuda_* and the llama2 example
#   .gpu-kit/lib   the shared libraries they need that a CUDA image may lack (Google Benchmark's)
# The build is portable (LLAMABLOCKS_NATIVE=OFF: the GPU machine's CPU may lack this one's
# AVX-512 or AMX; the library picks its CPU kernels at run time anyway) and for the architectures
# in CUDA_ARCHITECTURES (default 90: H100, H200).
#   scripts/gpu-kit.sh            then, on the GPU machine: scripts/gpu-run.sh (carry .gpu-kit)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build/gpu-kit
kit=$root/.gpu-kit
architectures=${CUDA_ARCHITECTURES:-90}
jobs=${JOBS:-$(nproc)}

command -v nvcc >/dev/null || { echo "gpu-kit.sh: no nvcc on PATH; the kit needs the CUDA toolkit" >&2; exit 1; }
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$architectures" \
      -DLLAMABLOCKS_NATIVE=OFF -DLLAMABLOCKS_CUDA=ON >/dev/null
# Every cuda test and benchmark program the build defines, and the example.
mapfile -t targets < <(cmake --build "$build" --target help | sed -n 's/^\.\.\. \(\(test\|bench\)_cuda_[a-z0-9_]*\).*/\1/p' | sort -u)
if [ "${#targets[@]}" -eq 0 ]; then
  echo "gpu-kit.sh: the build defines no cuda programs (was the CUDA compiler found?)" >&2
  exit 1
fi
echo "== building ${targets[*]} llama2 for sm_${architectures} (-j $jobs)"
cmake --build "$build" -j "$jobs" --target "${targets[@]}" llama2

rm -rf "$kit"
mkdir -p "$kit/bin" "$kit/lib"
for target in "${targets[@]}" llama2; do
  program=$(find "$build" -type f -name "$target" -perm -u+x | head -n 1)
  [ -n "$program" ] || { echo "gpu-kit.sh: $target was not built" >&2; exit 1; }
  cp "$program" "$kit/bin/"
done
# Libraries outside the CUDA toolkit and the C/C++ runtime: Google Benchmark.
for program in "$kit"/bin/*; do
  ldd "$program" | awk '/=> \// {print $3}' | grep -E 'libbenchmark' || true
done | sort -u | while read -r library; do cp -L "$library" "$kit/lib/"; done
git -C "$root" rev-parse HEAD >"$kit/commit.txt"
echo "$architectures" >"$kit/architectures.txt"
du -sh "$kit"
size=$(du -sm "$kit" | cut -f1)
if [ "$size" -gt 56 ]; then
  echo "gpu-kit.sh: the kit is $size MiB; with the working tree it must stay under the device's 64 MiB" >&2
  exit 1
fi
echo "kit ready: carry .gpu-kit and run scripts/gpu-run.sh on the GPU machine"
