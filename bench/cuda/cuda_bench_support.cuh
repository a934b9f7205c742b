// Shared pieces of the cuda benchmarks: a CUDA-event timer that reports the median of repeats
// with the L2 cache flushed before each, the device's own copy bandwidth (the ceiling memory-bound
// kernels are reported against), and a kernel that fills device memory with reproducible noise.
#pragma once

#include "llamablocks/cuda.cuh"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <vector>

namespace llamablocks::bench {

struct Timer {
  explicit Timer(cudaStream_t timed_stream) : stream(timed_stream) {
    LLAMABLOCKS_CUDA_CHECK(cudaEventCreate(&start));
    LLAMABLOCKS_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~Timer() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  /// Median milliseconds of `repeats` runs of `body`, each after `flush`.
  template <class Flush, class Body>
  double median_ms(int repeats, Flush&& flush, Body&& body) {
    for (int i = 0; i < 3; ++i) body();  // warm-up: module load, first-touch
    std::vector<float> times;
    for (int i = 0; i < repeats; ++i) {
      flush();
      LLAMABLOCKS_CUDA_CHECK(cudaEventRecord(start, stream));
      body();
      LLAMABLOCKS_CUDA_CHECK(cudaEventRecord(stop, stream));
      LLAMABLOCKS_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      LLAMABLOCKS_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      times.push_back(ms);
    }
    std::sort(times.begin(), times.end());
    return static_cast<double>(times[times.size() / 2]);
  }

  cudaStream_t stream;
  cudaEvent_t start{};
  cudaEvent_t stop{};
};

/// A buffer of twice the L2 size (at least 64 MiB) and the memset that evicts the L2 with it.
class L2Flush {
 public:
  explicit L2Flush(const Context<cuda>& ctx) : stream_(ctx.stream()) {
    cudaDeviceProp properties{};
    LLAMABLOCKS_CUDA_CHECK(cudaGetDeviceProperties(&properties, ctx.device()));
    bytes_ = std::max<std::size_t>(2 * static_cast<std::size_t>(properties.l2CacheSize),
                                   std::size_t{64} << 20);
    buffer_ = Tensor<std::uint8_t, 1, cuda>({static_cast<index_t>(bytes_)});
  }
  void operator()() const {
    LLAMABLOCKS_CUDA_CHECK(cudaMemsetAsync(const_cast<std::uint8_t*>(buffer_.data()), 0, bytes_, stream_));
  }

 private:
  cudaStream_t stream_;
  std::size_t bytes_ = 0;
  Tensor<std::uint8_t, 1, cuda> buffer_;
};

/// Read + write GB/s of a device-to-device cudaMemcpyAsync of `bytes` (median of `repeats`).
inline double copy_bandwidth_gbs(const Context<cuda>& ctx, Timer& timer, const L2Flush& flush,
                                 std::size_t bytes, int repeats) {
  Tensor<std::uint8_t, 1, cuda> source({static_cast<index_t>(bytes)});
  Tensor<std::uint8_t, 1, cuda> target({static_cast<index_t>(bytes)});
  const double ms = timer.median_ms(repeats, flush, [&] {
    LLAMABLOCKS_CUDA_CHECK(cudaMemcpyAsync(target.data(), source.data(), bytes,
                                           cudaMemcpyDeviceToDevice, ctx.stream()));
  });
  return 2.0 * static_cast<double>(bytes) / (ms * 1e-3) / 1e9;
}

/// main() of a cuda benchmark: exit 77 without a device; else body(ctx, properties, timer, flush,
/// copy_gbs) with the device-to-device copy bandwidth of `copy_bytes` measured first; a
/// llamablocks error or other exception prints FAIL and exits 1.
template <class Body>
int run_cuda_bench(std::size_t copy_bytes, int copy_repeats, Body&& body) {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIPPED: no CUDA device\n");
    return 77;
  }
  try {
    Context<cuda> ctx;
    cudaDeviceProp properties{};
    LLAMABLOCKS_CUDA_CHECK(cudaGetDeviceProperties(&properties, ctx.device()));
    Timer timer(ctx.stream());
    const L2Flush flush(ctx);
    const double copy_gbs = copy_bandwidth_gbs(ctx, timer, flush, copy_bytes, copy_repeats);
    std::printf("device: %s (%d SMs); device-to-device copy %.1f GB/s (read + write)\n",
                properties.name, properties.multiProcessorCount, copy_gbs);
    body(ctx, properties, timer, flush, copy_gbs);
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  return 0;
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
void fill(const Context<cuda>& ctx, T* data, index_t count, std::uint32_t seed, float scale) {
  if (count == 0) return;
  fill_noise<T><<<ctx.multiprocessor_count() * 8, 256, 0, ctx.stream()>>>(
      data, static_cast<std::size_t>(count), seed, scale);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
}

}  // namespace llamablocks::bench
