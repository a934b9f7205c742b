// KVCache::write of k, v: [1, tokens, n_kv_heads, head_dim] at position 0 (each call rewinds): the
// scatter from token-major projections into the cache's head-major layout.
#include "bench_support.hpp"

namespace llamablocks::bench {
namespace {

template <class Backend, class T>
void BM_KVCacheWrite(benchmark::State& state, const ModelShape& shape, index_t tokens) {
  Random random;
  KVCache<Backend, T> cache(shape.config(tokens), 1);
  const Shape<4> kv_shape{1, tokens, shape.n_kv_heads, shape.head_dim};
  const auto k = random_tensor<T, 4, Backend>(kv_shape, random);
  const auto v = random_tensor<T, 4, Backend>(kv_shape, random);
  cache.write(0, k.cview(), v.cview());

  for (auto _ : state) {
    cache.write(0, k.cview(), v.cview());
    benchmark::ClobberMemory();
  }
  report(state, kv_cache_write_cost<T>(shape.n_kv_heads, shape.head_dim, tokens), tokens);
}

template <class Backend, class T>
void register_benchmarks() {
  for (const ModelShape& shape : model_shapes)
    for (const index_t tokens : token_counts)
      register_benchmark(
          benchmark_name<Backend, T>("BM_KVCacheWrite", shape) + arg("tokens", tokens),
          &BM_KVCacheWrite<Backend, T>, shape, tokens);
}

const Registration registration(&register_benchmarks<cpu, float>);

}  // namespace
}  // namespace llamablocks::bench
