// SwiGLUFeedForward against the scalar reference.
#include "support/helpers.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

using namespace llamablocks;
using Catch::Matchers::Contains;

TEMPLATE_TEST_CASE("SwiGLUFeedForward matches the scalar reference", "[swiglu]", float, double) {
  const auto [dim, hidden] = GENERATE(table<index_t, index_t>({{127, 344}, {64, 172}, {256, 688}}));
  const auto [batch, tokens] = GENERATE(table<index_t, index_t>({{1, 1}, {2, 7}, {1, 128}, {1, 513}}));
  const int threads = GENERATE(1, 2);
  CAPTURE(dim, hidden, batch, tokens, threads);
  Context<cpu> ctx(threads);
  SwiGLUFeedForward<cpu, TestType> ffn(dim, hidden);
  const auto w1 = test::randomize(ffn.w1(), 111, 1 / std::sqrt(double(dim)));
  const auto w2 = test::randomize(ffn.w2(), 112, 1 / std::sqrt(double(hidden)));
  const auto w3 = test::randomize(ffn.w3(), 113, 1 / std::sqrt(double(dim)));
  const auto x = test::random_tensor<TestType, 3>({batch, tokens, dim}, 114, 2.0);
  Tensor<TestType, 3> out(x.shape());
  ffn.forward(ctx, x.cview(), out.view());
  const auto expected = test::reference::swiglu(test::to_vector(x.cview()), size_t(batch * tokens),
                                                size_t(dim), w1, w2, w3, size_t(hidden));
  test::require_close("swiglu", out.data(), expected.data(), expected.size(), test::tolerance<TestType>::nmse);
}

TEST_CASE("The SwiGLU activation is silu(gate) * up, also at extreme gates", "[swiglu]") {
  Context<cpu> ctx(1);
  std::vector<float> gate{-100.f, -5.f, 0.f, 1.f, 30.f, 100.f}, up{2.f, 2.f, 2.f, 2.f, 2.f, 0.5f};
  const std::vector<double> gate_double(gate.begin(), gate.end()), up_double(up.begin(), up.end());
  const auto expected = test::reference::swiglu_hidden(gate_double, up_double);
  swiglu_activation<float>(ctx, TensorView<float, 2>(gate.data(), {1, 6}),
                           TensorView<const float, 2>(up.data(), {1, 6}));
  for (size_t i = 0; i < gate.size(); ++i) {
    CHECK(std::isfinite(gate[i]));
    CHECK(gate[i] == Approx(expected[i]).margin(1e-6).epsilon(1e-6));
  }
}

TEST_CASE("SwiGLUFeedForward rejects bad arguments", "[swiglu]") {
  CHECK_THROWS_WITH(SwiGLUFeedForward<cpu>(64, 0), Contains("ffn_hidden_dim must be > 0, got 0"));
  Context<cpu> ctx(1);
  SwiGLUFeedForward<cpu> ffn(64, 128);
  Tensor<float, 3> x({1, 2, 65}), out({1, 2, 64});
  CHECK_THROWS_WITH(ffn.forward(ctx, x.cview(), out.view()), Contains("x has shape [1, 2, 65]"));
}
