// Shared pieces of the cuda benchmarks (Google Benchmark, manual time):
//   - CudaBench: the context, the device's properties, an L2 flush buffer, and the device-to-device
//     copy bandwidth that BM_CopyDeviceToDevice measured first in the same run, so that every
//     memory-bound case can report the fraction of it (counter "of_copy");
//   - time_with_events: one benchmark iteration = the L2 flushed (outside the timing), then body()
//     between two CUDA events; SetIterationTime gets the event time (UseManualTime);
//   - fill: reproducible noise in device memory without a host copy.
// cuda_bench_main.cu is the main() of every cuda benchmark: exit 77 without a device.
#pragma once

#include "llamablocks/cuda.cuh"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <string>

namespace llamablocks::bench {

class CudaBench {
 public:
  /// The process's one instance (made on first use, on device 0).
  static CudaBench& get() {
    static CudaBench instance;
    return instance;
  }

  const Context<cuda>& ctx() const { return ctx_; }
  const cudaDeviceProp& properties() const { return properties_; }
  /// Read + write GB/s of the last BM_CopyDeviceToDevice run; 0 before it ran.
  double copy_gbs() const { return copy_gbs_; }
  void set_copy_gbs(double gbs) { copy_gbs_ = gbs; }

  /// Evicts the L2 cache: a memset of twice its size (at least 64 MiB) on the context's stream.
  void flush_l2() const {
    LLAMABLOCKS_CUDA_CHECK(cudaMemsetAsync(flush_.data(), 0, static_cast<std::size_t>(flush_.size()),
                                           ctx_.stream()));
  }

 private:
  CudaBench() : flush_(Shape<1>{flush_bytes(ctx_)}) {
    LLAMABLOCKS_CUDA_CHECK(cudaGetDeviceProperties(&properties_, ctx_.device()));
  }
  static index_t flush_bytes(const Context<cuda>& ctx) {
    int l2_bytes = 0;
    LLAMABLOCKS_CUDA_CHECK(cudaDeviceGetAttribute(&l2_bytes, cudaDevAttrL2CacheSize, ctx.device()));
    return std::max<index_t>(2 * static_cast<index_t>(l2_bytes), index_t{64} << 20);
  }

  Context<cuda> ctx_;
  cudaDeviceProp properties_{};
  mutable Tensor<std::uint8_t, 1, cuda> flush_;
  double copy_gbs_ = 0;
};

/// Runs the benchmark loop: per iteration the L2 flushed (when `flush`), then body() timed with CUDA
/// events on the context's stream. Returns the total event seconds (for the caller's counters).
template <class Body>
double time_with_events(benchmark::State& state, bool flush, Body&& body) {
  const CudaBench& bench = CudaBench::get();
  cudaEvent_t start = nullptr;
  cudaEvent_t stop = nullptr;
  LLAMABLOCKS_CUDA_CHECK(cudaEventCreate(&start));
  LLAMABLOCKS_CUDA_CHECK(cudaEventCreate(&stop));
  for (int i = 0; i < 3; ++i) body();  // warm-up: module load, first touch
  double seconds = 0;
  for (auto _ : state) {
    if (flush) bench.flush_l2();
    LLAMABLOCKS_CUDA_CHECK(cudaEventRecord(start, bench.ctx().stream()));
    body();
    LLAMABLOCKS_CUDA_CHECK(cudaEventRecord(stop, bench.ctx().stream()));
    LLAMABLOCKS_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    LLAMABLOCKS_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(static_cast<double>(ms) * 1e-3);
    seconds += static_cast<double>(ms) * 1e-3;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return seconds;
}

/// Sets the counters of a memory-bound case: GB/s of `bytes` per iteration and its fraction of
/// the copy bandwidth measured earlier in the run.
inline void report_bandwidth(benchmark::State& state, double bytes, double seconds) {
  const double gbs = seconds > 0 ? bytes * static_cast<double>(state.iterations()) / seconds / 1e9 : 0;
  state.counters["GB/s"] = gbs;
  const double copy = CudaBench::get().copy_gbs();
  if (copy > 0) state.counters["of_copy"] = gbs / copy;
}

/// Device-to-device cudaMemcpyAsync of range(0) MiB, counted as bytes read plus bytes written: the
/// ceiling every memory-bound case is reported against. Registered first by every program.
inline void BM_CopyDeviceToDevice(benchmark::State& state) {
  const auto bytes = static_cast<std::size_t>(state.range(0)) << 20;
  Tensor<std::uint8_t, 1, cuda> source({static_cast<index_t>(bytes)});
  Tensor<std::uint8_t, 1, cuda> target({static_cast<index_t>(bytes)});
  const Context<cuda>& ctx = CudaBench::get().ctx();
  const double seconds = time_with_events(state, true, [&] {
    LLAMABLOCKS_CUDA_CHECK(cudaMemcpyAsync(target.data(), source.data(), bytes,
                                           cudaMemcpyDeviceToDevice, ctx.stream()));
  });
  const double gbs = 2.0 * static_cast<double>(bytes) * static_cast<double>(state.iterations()) /
                     seconds / 1e9;
  CudaBench::get().set_copy_gbs(gbs);
  state.counters["GB/s"] = gbs;
}

/// data[i] = scale · u(i, seed), u uniform in [−1, 1) from an integer hash of i (reproducible,
/// never all zeros, cheap for gigabytes).
template <class T>
__global__ void fill_noise(T* data, std::size_t count, std::uint32_t seed, float scale) {
  const std::size_t step = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += step) {
    std::uint32_t h = static_cast<std::uint32_t>(i) * 0x9E3779B1u ^ seed ^
                      static_cast<std::uint32_t>(i >> 32) * 0x85EBCA77u;
    h ^= h >> 16;
    h *= 0x7FEB352Du;
    h ^= h >> 15;
    h *= 0x846CA68Bu;
    h ^= h >> 16;
    const float u = static_cast<float>(h >> 8) * (1.0f / 8388608.0f) - 1.0f;
    data[i] = detail::from_float<T>(scale * u);
  }
}

template <class T>
void fill(T* data, index_t count, std::uint32_t seed, float scale) {
  if (count == 0) return;
  const Context<cuda>& ctx = CudaBench::get().ctx();
  fill_noise<T><<<ctx.multiprocessor_count() * 8, 256, 0, ctx.stream()>>>(
      data, static_cast<std::size_t>(count), seed, scale);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
}

}  // namespace llamablocks::bench
