// SwiGLUFeedForward::forward over [1, tokens, dim]: three products of width ffn_hidden_dim, the
// bulk of a LLaMA layer's weights; weight-bandwidth-bound at 1 token, compute-bound in prefill.
#include "bench_support.hpp"

namespace llamablocks::bench {
namespace {

template <class Backend, class T>
void BM_SwiGLU(benchmark::State& state, const ModelShape& shape, index_t tokens) {
  auto ctx = make_context<Backend>();
  Random random;
  SwiGLUFeedForward<Backend, T> feed_forward(shape.dim, shape.ffn_hidden_dim);
  randomize(feed_forward, random);
  const auto x = random_tensor<T, 3, Backend>({1, tokens, shape.dim}, random);
  Tensor<T, 3, Backend> out(x.shape());  // [1, tokens, dim]
  feed_forward.forward(ctx, x.cview(), out.view());

  for (auto _ : state) {
    feed_forward.forward(ctx, x.cview(), out.view());
    benchmark::ClobberMemory();
  }
  report(state, swiglu_cost<T>(shape, tokens), tokens);
}

template <class Backend, class T>
void register_benchmarks() {
  for (const ModelShape& shape : model_shapes)
    for (const index_t tokens : token_counts)
      register_benchmark(benchmark_name<Backend, T>("BM_SwiGLU", shape) + arg("tokens", tokens),
                         &BM_SwiGLU<Backend, T>, shape, tokens);
}

const Registration registration(&register_benchmarks<cpu, float>);

}  // namespace
}  // namespace llamablocks::bench
