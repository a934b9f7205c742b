// Linear::forward as the output head, [1, tokens, dim] -> [1, tokens, vocab_size]: the largest
// single matrix of the small models (vocab 32000).
#include "bench_support.hpp"

namespace llamablocks::bench {
namespace {

template <class Backend, class T>
void BM_Linear(benchmark::State& state, const ModelShape& shape, index_t tokens) {
  auto ctx = make_context<Backend>();
  Random random;
  Linear<Backend, T> head(shape.dim, shape.vocab_size);
  randomize(head.weight(), random);
  const auto x = random_tensor<T, 3, Backend>({1, tokens, shape.dim}, random);
  Tensor<T, 3, Backend> logits({1, tokens, shape.vocab_size});  // [1, tokens, vocab_size]
  head.forward(ctx, x.cview(), logits.view());

  for (auto _ : state) {
    head.forward(ctx, x.cview(), logits.view());
    benchmark::ClobberMemory();
  }
  report(state, linear_cost<T>(shape.dim, shape.vocab_size, tokens), tokens);
}

template <class Backend, class T>
void register_benchmarks() {
  for (const ModelShape& shape : model_shapes)
    for (const index_t tokens : token_counts)
      register_benchmark(benchmark_name<Backend, T>("BM_Linear", shape) +
                             arg("vocab", shape.vocab_size) + arg("tokens", tokens),
                         &BM_Linear<Backend, T>, shape, tokens);
}

const Registration registration(&register_benchmarks<cpu, float>);

}  // namespace
}  // namespace llamablocks::bench
