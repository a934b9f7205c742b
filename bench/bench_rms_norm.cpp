// RMSNorm::forward over [1, tokens, dim]: a memory-bound row reduction and scaling.
#include "bench_support.hpp"

namespace llamablocks::bench {
namespace {

template <class Backend, class T>
void BM_RMSNorm(benchmark::State& state, const ModelShape& shape, index_t tokens) {
  auto ctx = make_context<Backend>();
  Random random;
  RMSNorm<Backend, T> norm(shape.dim, shape.norm_eps);
  randomize(norm, random);
  const auto x = random_tensor<T, 3, Backend>({1, tokens, shape.dim}, random);
  Tensor<T, 3, Backend> out(x.shape());  // [1, tokens, dim]
  norm.forward(ctx, x.cview(), out.view());

  for (auto _ : state) {
    norm.forward(ctx, x.cview(), out.view());
    benchmark::ClobberMemory();
  }
  report(state, rms_norm_cost<T>(shape.dim, tokens), tokens);
}

template <class Backend, class T>
void register_benchmarks() {
  for (const ModelShape& shape : model_shapes)
    for (const index_t tokens : token_counts)
      register_benchmark(benchmark_name<Backend, T>("BM_RMSNorm", shape) + arg("tokens", tokens),
                         &BM_RMSNorm<Backend, T>, shape, tokens);
}

const Registration registration(&register_benchmarks<cpu, float>);

}  // namespace
}  // namespace llamablocks::bench
