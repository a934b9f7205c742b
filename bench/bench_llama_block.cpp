// LlamaBlock::forward, one whole decoder layer (norms, attention, SwiGLU, residuals), in the
// regimes of bench_attention.cpp: prefill from an empty cache and one decode step after 512 / 2048
// cached positions, the cache truncated back after every call.
#include "bench_support.hpp"

namespace llamablocks::bench {
namespace {

template <class Backend, class T>
void BM_LlamaBlock(benchmark::State& state, const ModelShape& shape, index_t tokens,
                   index_t cached) {
  auto ctx = make_context<Backend>();
  Random random;
  const ModelConfig config = shape.config(cached + tokens);
  LlamaBlock<Backend, T> block(config);
  randomize(block, random);
  KVCache<Backend, T> cache(config, 1);
  fill_cache(cache, cached, random);
  // [1, tokens, dim], updated in place: every iteration adds the layer's branches to it again,
  // which the normalized sub-layer inputs keep finite.
  auto x = random_tensor<T, 3, Backend>({1, tokens, shape.dim}, random);
  block.forward(ctx, x.view(), cache, cached);
  cache.truncate(cached);

  for (auto _ : state) {
    block.forward(ctx, x.view(), cache, cached);
    cache.truncate(cached);
    benchmark::ClobberMemory();
  }
  report(state, llama_block_cost<T>(shape, tokens, cached), tokens);
}

template <class Backend, class T>
void register_benchmarks() {
  auto add = [](const ModelShape& shape, index_t tokens, index_t cached) {
    register_benchmark(benchmark_name<Backend, T>("BM_LlamaBlock", shape) + arg("tokens", tokens) +
                           arg("cache", cached),
                       &BM_LlamaBlock<Backend, T>, shape, tokens, cached);
  };
  for (const ModelShape& shape : model_shapes) {
    for (const index_t tokens : prefill_token_counts) add(shape, tokens, 0);
    for (const index_t cached : decode_cache_lengths) add(shape, 1, cached);
  }
}

const Registration registration(&register_benchmarks<cpu, float>);

}  // namespace
}  // namespace llamablocks::bench
