// causal_attention<cuda, bf16> against the device's copy bandwidth (decode) and against its own
// FLOP count (prefill; torch_attention.py times scaled_dot_product_attention on the same shapes).
//   decode:  32 query / 8 kv heads, head_dim 128, one token against a cache of L positions,
//            batch b; bytes = K and V read once per kv head: b · 8 · L · 128 · 2 · 2.
//            Reported as a fraction of the device-to-device copy bandwidth (read + write).
//   prefill: 4096 tokens from position 0, 32 heads (MHA), head_dim 128, causal;
//            FLOP = 4 · T² · head_dim · heads / 2 (QKᵀ and PV, half the matrix).
// Each case: median of `repeats` CUDA-event timings, the L2 flushed before each.
//
// Usage: bench_cuda_attention [repeats]   (default 50). Prints a table and one JSON line per case;
// exit 77 without a CUDA device.
#include "cuda_bench_support.cuh"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace lb = llamablocks;
using lb::index_t;
using T = __nv_bfloat16;

namespace {

struct Result {
  std::string name;
  double us;
  double gbs;     // decode: K/V bytes / time
  double tflops;  // prefill
};

/// Fills a cache of `length` positions with noise and returns the time of one attention call of
/// `tokens` queries ending at position length − 1.
Result time_attention(const lb::Context<lb::cuda>& ctx, lb::bench::Timer& timer,
                      const lb::bench::L2Flush& flush, int repeats, index_t batch, index_t n_heads,
                      index_t n_kv_heads, index_t head_dim, index_t length, index_t tokens) {
  lb::KVCache<lb::cuda, T> cache(batch, n_kv_heads, head_dim, length);
  {
    lb::Tensor<T, 4, lb::cuda> k({batch, length, n_kv_heads, head_dim});
    lb::Tensor<T, 4, lb::cuda> v({batch, length, n_kv_heads, head_dim});
    lb::bench::fill(ctx, k.data(), k.size(), 1, 1.0f);
    lb::bench::fill(ctx, v.data(), v.size(), 2, 1.0f);
    cache.write(ctx, 0, k.cview(), v.cview());
    ctx.synchronize();
  }
  lb::Tensor<T, 4, lb::cuda> q({batch, tokens, n_heads, head_dim});
  lb::Tensor<T, 4, lb::cuda> out({batch, tokens, n_heads, head_dim});
  lb::bench::fill(ctx, q.data(), q.size(), 3, 1.0f);
  lb::Workspace<float, lb::cuda> workspace;
  const index_t start_pos = length - tokens;
  const double ms = timer.median_ms(repeats, flush, [&] {
    lb::causal_attention<T>(ctx, q.cview(), cache, start_pos, out.view(), workspace);
  });
  Result result;
  result.us = ms * 1e3;
  const double kv_bytes = static_cast<double>(batch * n_kv_heads * length * head_dim) * 2 * sizeof(T);
  result.gbs = kv_bytes / (ms * 1e-3) / 1e9;
  const double flop = 4.0 * static_cast<double>(tokens) * static_cast<double>(tokens) *
                      static_cast<double>(head_dim * n_heads * batch) / 2.0;
  result.tflops = flop / (ms * 1e-3) / 1e12;
  result.name = (tokens == 1 ? "decode b" : "prefill b") + std::to_string(batch) + " heads " +
                std::to_string(n_heads) + "/" + std::to_string(n_kv_heads) + " L " +
                std::to_string(length);
  return result;
}

}  // namespace

int main(int argc, char** argv) {
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 50;
  return lb::bench::run_cuda_bench(std::size_t{256} << 20, repeats, [&](const lb::Context<lb::cuda>& ctx,
                                                                     const cudaDeviceProp&,
                                                                     lb::bench::Timer& timer,
                                                                     const lb::bench::L2Flush& flush,
                                                                     double copy_gbs) {
    std::printf("%-36s %12s %10s %10s %14s\n", "case", "median us", "KV GB/s", "TFLOP/s",
                "of copy BW");
    for (index_t batch : {1, 8})
      for (index_t length : {4096, 32768}) {
        const Result r = time_attention(ctx, timer, flush, repeats, batch, 32, 8, 128, length, 1);
        std::printf("%-36s %12.2f %10.1f %10s %13.1f%%\n", r.name.c_str(), r.us, r.gbs, "",
                    100.0 * r.gbs / copy_gbs);
        std::printf("{\"case\": \"%s\", \"us\": %.3f, \"kv_gbs\": %.1f, \"copy_gbs\": %.1f, "
                    "\"fraction_of_copy\": %.4f}\n",
                    r.name.c_str(), r.us, r.gbs, copy_gbs, r.gbs / copy_gbs);
      }
    const Result r = time_attention(ctx, timer, flush, repeats, 1, 32, 32, 128, 4096, 4096);
    std::printf("%-36s %12.2f %10s %10.1f\n", r.name.c_str(), r.us, "", r.tflops);
    std::printf("{\"case\": \"%s\", \"us\": %.3f, \"tflops\": %.2f}\n", r.name.c_str(), r.us,
                r.tflops);
  });
}
