// RMSNorm<cuda, __nv_bfloat16> bandwidth against the device's own copy bandwidth, measured in the
// same run. Bytes moved per call: x read once, out written once, γ read once,
//   2 · rows · dim · 2 + dim · 2.
// The ceiling is a device-to-device cudaMemcpyAsync of the same number of bytes as x, counted as
// bytes read plus bytes written. Each repeat is timed with CUDA events after the L2 cache was
// flushed (a memset of a buffer larger than L2), and the median of the repeats is reported.
//
// Usage: bench_cuda_rms_norm [rows dim [repeats]]   (default 4096 4096 100)
// Prints a table and one JSON line; exit 77 without a CUDA device.
#include "cuda_bench_support.cuh"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace lb = llamablocks;
using lb::index_t;

using llamablocks::bench::Timer;

int main(int argc, char** argv) {
  const index_t rows = argc > 2 ? std::atoll(argv[1]) : 4096;
  const index_t dim = argc > 2 ? std::atoll(argv[2]) : 4096;
  const int repeats = argc > 3 ? std::atoi(argv[3]) : 100;
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("SKIPPED: no CUDA device\n");
    return 77;
  }
  try {
    using T = __nv_bfloat16;
    lb::Context<lb::cuda> ctx;
    cudaDeviceProp properties{};
    LLAMABLOCKS_CUDA_CHECK(cudaGetDeviceProperties(&properties, ctx.device()));

    // Random data (never zeros), rounded to bf16 on the host.
    const auto count = static_cast<std::size_t>(rows * dim);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
    std::vector<T> host_x(count);
    for (auto& v : host_x) v = lb::detail::from_float<T>(uniform(rng));
    lb::Tensor<T, 3, lb::cuda> x({1, rows, dim});
    lb::Tensor<T, 3, lb::cuda> out({1, rows, dim});
    lb::Tensor<T, 1, lb::cuda> copy_target({rows * dim});
    lb::detail::allocator<lb::cuda>::copy_from_host(x.data(), host_x.data(), count * sizeof(T));
    lb::RMSNorm<lb::cuda, T> norm(dim, 1e-5);

    const lb::bench::L2Flush flush(ctx);
    Timer timer(ctx.stream());
    const double copy_ms = timer.median_ms(repeats, flush, [&] {
      LLAMABLOCKS_CUDA_CHECK(cudaMemcpyAsync(copy_target.data(), x.data(), count * sizeof(T),
                                             cudaMemcpyDeviceToDevice, ctx.stream()));
    });
    const double norm_ms =
        timer.median_ms(repeats, flush, [&] { norm.forward(ctx, x.cview(), out.view()); });
    ctx.synchronize();

    const double copy_bytes = 2.0 * static_cast<double>(count * sizeof(T));
    const double norm_bytes = copy_bytes + static_cast<double>(dim) * sizeof(T);
    const double copy_gbs = copy_bytes / (copy_ms * 1e-3) / 1e9;
    const double norm_gbs = norm_bytes / (norm_ms * 1e-3) / 1e9;
    std::printf("device: %s (%d SMs, L2 %d MiB)\n", properties.name, properties.multiProcessorCount,
                properties.l2CacheSize >> 20);
    std::printf("%-34s %10s %10s\n", "case", "median us", "GB/s");
    std::printf("%-34s %10.2f %10.1f\n", "cudaMemcpy D2D (read+write)", copy_ms * 1e3, copy_gbs);
    std::printf("%-34s %10.2f %10.1f\n", "RMSNorm<cuda, bf16>", norm_ms * 1e3, norm_gbs);
    std::printf("RMSNorm / copy bandwidth: %.1f%% (target >= 80%%)\n", 100.0 * norm_gbs / copy_gbs);
    std::printf("{\"device\": \"%s\", \"rows\": %lld, \"dim\": %lld, \"repeats\": %d, "
                "\"copy_us\": %.3f, \"copy_gbs\": %.1f, \"rms_norm_us\": %.3f, "
                "\"rms_norm_gbs\": %.1f, \"fraction_of_copy\": %.4f}\n",
                properties.name, static_cast<long long>(rows), static_cast<long long>(dim), repeats,
                copy_ms * 1e3, copy_gbs, norm_ms * 1e3, norm_gbs, norm_gbs / copy_gbs);
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
  return 0;
}
