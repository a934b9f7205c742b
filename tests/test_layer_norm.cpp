// LayerNorm against the scalar reference.
#include "support/helpers.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

using namespace llamablocks;
using Catch::Matchers::Contains;

TEMPLATE_TEST_CASE("LayerNorm matches the scalar reference", "[layer_norm]", float, double) {
  const auto [batch, tokens, dim] = GENERATE(table<index_t, index_t, index_t>(
      {{1, 1, 127}, {2, 7, 64}, {1, 128, 1024}}));
  const int threads = GENERATE(1, 2);
  CAPTURE(batch, tokens, dim, threads);

  Context<cpu> ctx(threads);
  LayerNorm<cpu, TestType> norm(dim, 1e-5);
  const auto gain = test::randomize(norm.weight(), 21, 0.2, 1.0);
  const auto shift = test::randomize(norm.bias(), 22, 0.5);
  const auto x = test::random_tensor<TestType, 3>({batch, tokens, dim}, 23, 2.0, 5.0);
  Tensor<TestType, 3> out(x.shape());
  norm.forward(ctx, x.cview(), out.view());
  const auto expected = test::reference::layer_norm(test::to_vector(x.cview()),
                                                    size_t(batch * tokens), size_t(dim), gain,
                                                    shift, 1e-5);
  test::require_close("layer_norm", out.data(), expected.data(), expected.size(),
                      test::tolerance<TestType>::nmse);
}

TEST_CASE("LayerNorm output has zero mean and unit variance before the affine part", "[layer_norm]") {
  Context<cpu> ctx(1);
  LayerNorm<cpu, double> norm(256, 1e-12);
  const auto x = test::random_tensor<double, 3>({1, 3, 256}, 24, 4.0, -7.0);
  Tensor<double, 3> out(x.shape());
  norm.forward(ctx, x.cview(), out.view());
  for (index_t t = 0; t < 3; ++t) {
    double mean = 0, square = 0;
    for (index_t i = 0; i < 256; ++i) mean += out.view()(0, t, i) / 256;
    for (index_t i = 0; i < 256; ++i) square += (out.view()(0, t, i) - mean) * (out.view()(0, t, i) - mean) / 256;
    CHECK(std::abs(mean) < 1e-12);
    CHECK(square == Approx(1.0).epsilon(1e-9));
  }
}

TEST_CASE("LayerNorm rejects bad arguments", "[layer_norm]") {
  CHECK_THROWS_WITH(LayerNorm<cpu>(8, 0.0), Contains("LayerNorm: norm_eps"));
  Context<cpu> ctx(1);
  LayerNorm<cpu> norm(8, 1e-5);
  Tensor<float, 3> x({1, 1, 9});
  CHECK_THROWS_AS(norm.forward(ctx, x.cview(), x.view()), shape_error);
}
