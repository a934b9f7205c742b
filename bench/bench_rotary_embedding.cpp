// RotaryEmbedding::apply on the queries of a layer, [1, tokens, n_heads, head_dim], in each of its
// three formulations: the cos/sin-table rotation used by the library, and the rotation-matrix and
// complex-multiply references (charged the same FLOPs, see bench_cost.hpp).
#include "bench_support.hpp"

namespace llamablocks::bench {
namespace {

template <class Backend, class T, class Formulation>
void BM_RoPE(benchmark::State& state, const ModelShape& shape, index_t tokens) {
  auto ctx = make_context<Backend>();
  Random random;
  const RotaryEmbedding<Backend, T> rope(shape.config(tokens));
  // [1, tokens, n_heads, head_dim]; rotated in place, which keeps its norm.
  auto q = random_tensor<T, 4, Backend>({1, tokens, shape.n_heads, shape.head_dim}, random);
  rope.apply(ctx, q.view(), 0, Formulation{});

  for (auto _ : state) {
    rope.apply(ctx, q.view(), 0, Formulation{});
    benchmark::ClobberMemory();
  }
  report(state, rope_cost<T>(shape.n_heads, shape.head_dim, tokens), tokens);
}

template <class Backend, class T, class Formulation>
void register_formulation(const char* formulation) {
  for (const ModelShape& shape : model_shapes)
    for (const index_t tokens : token_counts)
      register_benchmark(
          benchmark_name<Backend, T>("BM_RoPE", shape) + arg("tokens", tokens) + '/' + formulation,
          &BM_RoPE<Backend, T, Formulation>, shape, tokens);
}

template <class Backend, class T>
void register_benchmarks() {
  register_formulation<Backend, T, rope::elementwise>("elementwise");
  register_formulation<Backend, T, rope::rotation_matrix>("rotation_matrix");
  register_formulation<Backend, T, rope::complex_multiply>("complex_multiply");
}

const Registration registration(&register_benchmarks<cpu, float>);

}  // namespace
}  // namespace llamablocks::bench
