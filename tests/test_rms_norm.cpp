// RMSNorm against the scalar reference; eps handling; errors.
#include "support/helpers.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

using namespace llamablocks;
using Catch::Matchers::Contains;

TEMPLATE_TEST_CASE("RMSNorm matches the scalar reference", "[rms_norm]", float, double) {
  const auto [batch, tokens, dim] = GENERATE(table<index_t, index_t, index_t>(
      {{1, 1, 127}, {2, 7, 64}, {1, 128, 4096}, {3, 5, 1}, {1, 513, 96}}));
  const double eps = GENERATE(1e-5, 1e-6);
  const int threads = GENERATE(1, 2);
  CAPTURE(batch, tokens, dim, eps, threads);

  Context<cpu> ctx(threads);
  RMSNorm<cpu, TestType> norm(dim, eps);
  const auto gain = test::randomize(norm.weight(), 11, 0.2, 1.0);
  // Inputs with a large common offset stress the sum of squares.
  auto x = test::random_tensor<TestType, 3>({batch, tokens, dim}, 12, 3.0, 2.0);
  Tensor<TestType, 3> out(x.shape());
  norm.forward(ctx, x.cview(), out.view());

  const auto expected = test::reference::rms_norm(test::to_vector(x.cview()),
                                                  size_t(batch * tokens), size_t(dim), gain, eps);
  test::require_close("rms_norm", out.data(), expected.data(), expected.size(),
                      test::tolerance<TestType>::nmse);

  // In place gives the same numbers.
  norm.forward(ctx, x.cview(), x.view());
  test::require_close("rms_norm in place", x.data(), expected.data(), expected.size(),
                      test::tolerance<TestType>::nmse);
}

TEST_CASE("RMSNorm uses the eps it was given", "[rms_norm]") {
  // With x = 0 except one element, y = x / sqrt(x²/dim + eps): eps is visible for small x.
  Context<cpu> ctx(1);
  for (double eps : {1e-5, 1e-2}) {
    RMSNorm<cpu> norm(4, eps);
    std::vector<float> x{0.01f, 0, 0, 0}, y(4);
    norm.forward(ctx, TensorView<const float, 3>(x.data(), {1, 1, 4}),
                 TensorView<float, 3>(y.data(), {1, 1, 4}));
    const double expected = 0.01 / std::sqrt(0.0001 / 4 + eps);
    CHECK(y[0] == Approx(expected).epsilon(1e-6));
  }
}

TEST_CASE("RMSNorm rejects bad arguments and leaves the output untouched", "[rms_norm]") {
  CHECK_THROWS_WITH(RMSNorm<cpu>(16, 0.0), Contains("norm_eps") && Contains("got 0"));
  CHECK_THROWS_WITH(RMSNorm<cpu>(16, -1e-5), Contains("norm_eps"));
  CHECK_THROWS_WITH(RMSNorm<cpu>(0, 1e-5), Contains("dim must be > 0, got 0"));

  Context<cpu> ctx(1);
  RMSNorm<cpu> norm(16, 1e-5);
  Tensor<float, 3> x({1, 2, 15});
  Tensor<float, 3> out({1, 2, 15});
  out.view()(0, 0, 0) = 42.0f;
  CHECK_THROWS_AS(norm.forward(ctx, x.cview(), out.view()), shape_error);
  CHECK_THROWS_WITH(norm.forward(ctx, x.cview(), out.view()), Contains("[1, 2, 15]") && Contains("dim = 16"));
  CHECK(out.view()(0, 0, 0) == 42.0f);

  Tensor<float, 3> good({1, 2, 16});
  Tensor<float, 3> small_out({1, 1, 16});
  CHECK_THROWS_WITH(norm.forward(ctx, good.cview(), small_out.view()), Contains("out has shape [1, 1, 16]"));
  // Partial overlap between x and out is refused; exact aliasing is in-place use.
  std::vector<float> buffer(48);
  CHECK_THROWS_WITH(norm.forward(ctx, TensorView<const float, 3>(buffer.data(), {1, 2, 16}),
                                 TensorView<float, 3>(buffer.data() + 8, {1, 2, 16})),
                    Contains("overlap"));
}
