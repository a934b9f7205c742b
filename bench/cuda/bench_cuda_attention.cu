// causal_attention<cuda, bf16>, the two cases of issue 4 (torch_attention.py times
// scaled_dot_product_attention on the same shapes):
//   BM_DecodeAttention/batch/length: 32 query / 8 kv heads, head_dim 128, one token against a cache
//     of `length` positions. Bytes: K and V read once per kv head, batch · 8 · length · 128 · 2 · 2;
//     "of_copy" is their rate over the device-to-device copy bandwidth measured first in the run
//     (target ≥ 0.7).
//   BM_PrefillAttention/tokens: causal from position 0, 32 heads (MHA), head_dim 128; FLOP =
//     4 · tokens² · 128 · 32 / 2 (QKᵀ and PV over half the matrix), counter "TFLOP/s" (target ≥ 0.7×
//     SDPA's).
// Each iteration: the L2 flushed, then one call between CUDA events (UseManualTime); 5
// repetitions, the median reported. Exit 77 without a CUDA device.
#include "cuda_bench_support.cuh"

namespace lb = llamablocks;
using lb::index_t;
using T = __nv_bfloat16;

namespace {

/// A cache of `length` positions filled with noise, and the time of one attention call of `tokens`
/// queries ending at position length − 1. Returns the event seconds of all iterations.
double time_attention(benchmark::State& state, index_t batch, index_t n_heads, index_t n_kv_heads,
                      index_t length, index_t tokens) {
  constexpr index_t head_dim = 128;
  const auto& ctx = lb::bench::CudaBench::get().ctx();
  lb::KVCache<lb::cuda, T> cache(batch, n_kv_heads, head_dim, length);
  {
    lb::Tensor<T, 4, lb::cuda> k({batch, length, n_kv_heads, head_dim});  // [batch, positions, kv heads, head_dim]
    lb::Tensor<T, 4, lb::cuda> v({batch, length, n_kv_heads, head_dim});
    lb::bench::fill(k.data(), k.size(), 1, 1.0f);
    lb::bench::fill(v.data(), v.size(), 2, 1.0f);
    cache.write(ctx, 0, k.cview(), v.cview());
    ctx.synchronize();
  }
  lb::Tensor<T, 4, lb::cuda> q({batch, tokens, n_heads, head_dim});
  lb::Tensor<T, 4, lb::cuda> out({batch, tokens, n_heads, head_dim});
  lb::bench::fill(q.data(), q.size(), 3, 1.0f);
  lb::Workspace<float, lb::cuda> workspace;
  return lb::bench::time_with_events(state, true, [&] {
    lb::causal_attention<T>(ctx, q.cview(), cache, length - tokens, out.view(), workspace);
  });
}

void BM_DecodeAttention(benchmark::State& state) {
  const index_t batch = state.range(0);
  const index_t length = state.range(1);
  const double seconds = time_attention(state, batch, 32, 8, length, 1);
  lb::bench::report_bandwidth(state, static_cast<double>(batch * 8 * length * 128) * 2 * sizeof(T),
                              seconds);
}

void BM_PrefillAttention(benchmark::State& state) {
  const index_t tokens = state.range(0);
  const double seconds = time_attention(state, 1, 32, 32, tokens, tokens);
  const double flop = 4.0 * static_cast<double>(tokens) * static_cast<double>(tokens) * 128 * 32 / 2;
  state.counters["TFLOP/s"] = flop * static_cast<double>(state.iterations()) / seconds / 1e12;
}

}  // namespace

BENCHMARK(lb::bench::BM_CopyDeviceToDevice)->Arg(256)->UseManualTime()->Repetitions(5)
    ->ReportAggregatesOnly(true)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_DecodeAttention)->ArgNames({"batch", "cache"})
    ->Args({1, 4096})->Args({1, 32768})->Args({8, 4096})->Args({8, 32768})
    ->UseManualTime()->Repetitions(5)->ReportAggregatesOnly(true)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PrefillAttention)->ArgNames({"tokens"})->Arg(4096)
    ->UseManualTime()->Repetitions(5)->ReportAggregatesOnly(true)->Unit(benchmark::kMicrosecond);
