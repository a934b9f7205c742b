// GroupedQueryAttention::forward (projections, RoPE, cache write, causal attention, output
// projection) in its two regimes:
//   prefill  tokens 128 / 512 from an empty cache                    (".../tokens:128/cache:0")
//   decode   1 token after 512 / 2048 cached positions               (".../tokens:1/cache:2048")
// The cache is truncated back after every call, so each iteration sees the same cache length.
#include "bench_support.hpp"

namespace llamablocks::bench {
namespace {

template <class Backend, class T>
void BM_Attention(benchmark::State& state, const ModelShape& shape, index_t tokens,
                  index_t cached) {
  auto ctx = make_context<Backend>();
  Random random;
  const ModelConfig config = shape.config(cached + tokens);
  GroupedQueryAttention<Backend, T> attention(config);
  randomize(attention, random);
  KVCache<Backend, T> cache(config, 1);
  fill_cache(cache, cached, random);
  const auto x = random_tensor<T, 3, Backend>({1, tokens, shape.dim}, random);
  Tensor<T, 3, Backend> out(x.shape());  // [1, tokens, dim]
  attention.forward(ctx, x.cview(), cache, cached, out.view());
  cache.truncate(cached);

  for (auto _ : state) {
    attention.forward(ctx, x.cview(), cache, cached, out.view());
    cache.truncate(cached);
    benchmark::ClobberMemory();
  }
  report(state, attention_cost<T>(shape, tokens, cached), tokens);
}

template <class Backend, class T>
void register_benchmarks() {
  auto add = [](const ModelShape& shape, index_t tokens, index_t cached) {
    register_benchmark(benchmark_name<Backend, T>("BM_Attention", shape) + arg("tokens", tokens) +
                           arg("cache", cached),
                       &BM_Attention<Backend, T>, shape, tokens, cached);
  };
  for (const ModelShape& shape : model_shapes) {
    for (const index_t tokens : prefill_token_counts) add(shape, tokens, 0);
    for (const index_t cached : decode_cache_lengths) add(shape, 1, cached);
  }
}

const Registration registration(&register_benchmarks<cpu, float>);

}  // namespace
}  // namespace llamablocks::bench
