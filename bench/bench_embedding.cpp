// Embedding::forward: random token ids [1, tokens] gathered from a [vocab_size, dim] table (a row
// copy per token, after the ids are range-checked).
#include "bench_support.hpp"

#include <cstdint>

namespace llamablocks::bench {
namespace {

template <class Backend, class T>
void BM_Embedding(benchmark::State& state, const ModelShape& shape, index_t tokens) {
  auto ctx = make_context<Backend>();
  Random random;
  Embedding<Backend, T> embedding(shape.vocab_size, shape.dim);
  randomize(embedding.weight(), random);
  Tensor<std::int32_t, 2, Backend> ids({1, tokens});  // [1, tokens]
  fill<Backend>(ids.data(), ids.size(),
                [&] { return static_cast<std::int32_t>(random.below(shape.vocab_size)); });
  Tensor<T, 3, Backend> out({1, tokens, shape.dim});  // [1, tokens, dim]
  embedding.forward(ctx, ids.cview(), out.view());

  for (auto _ : state) {
    embedding.forward(ctx, ids.cview(), out.view());
    benchmark::ClobberMemory();
  }
  report(state, embedding_cost<T>(shape.dim, tokens), tokens);
}

template <class Backend, class T>
void register_benchmarks() {
  for (const ModelShape& shape : model_shapes)
    for (const index_t tokens : token_counts)
      register_benchmark(benchmark_name<Backend, T>("BM_Embedding", shape) + arg("tokens", tokens),
                         &BM_Embedding<Backend, T>, shape, tokens);
}

const Registration registration(&register_benchmarks<cpu, float>);

}  // namespace
}  // namespace llamablocks::bench
