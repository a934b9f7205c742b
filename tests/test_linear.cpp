// Linear (the output head): the scalar reference for few and many rows, a head tied to the
// embedding table, and shape errors.
#include "support/helpers.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

using namespace llamablocks;
using Catch::Matchers::Contains;

TEMPLATE_TEST_CASE("Linear matches the scalar reference for few and many rows", "[linear]", float, double) {
  const auto [in_features, out_features] = GENERATE(table<index_t, index_t>({{127, 129}, {64, 1000}, {512, 3000}}));
  const auto [batch, tokens] = GENERATE(table<index_t, index_t>({{1, 1}, {1, 3}, {2, 7}, {1, 64}}));
  const int threads = GENERATE(1, 2);
  CAPTURE(in_features, out_features, batch, tokens, threads);
  Context<cpu> ctx(threads);
  Linear<cpu, TestType> head(in_features, out_features);
  const auto w = test::randomize(head.weight(), 151, 1 / std::sqrt(double(in_features)));
  const auto x = test::random_tensor<TestType, 3>({batch, tokens, in_features}, 152);
  Tensor<TestType, 3> out({batch, tokens, out_features});
  head.forward(ctx, x.cview(), out.view());
  const auto expected = test::reference::linear(test::to_vector(x.cview()), size_t(batch * tokens),
                                                size_t(in_features), w, size_t(out_features));
  test::require_close("linear", out.data(), expected.data(), expected.size(), test::tolerance<TestType>::nmse);
}

TEST_CASE("A head tied to the embedding shares its table", "[linear]") {
  Context<cpu> ctx(2);
  Embedding<cpu> embedding(50, 16);
  test::randomize(embedding.weight(), 153, 1.0);
  Linear<cpu> head(16, 50);
  head.weight().assign(embedding.weight().share());
  CHECK(head.weight().view().data() == embedding.weight().view().data());

  std::vector<std::int32_t> ids{0, 49, 7, 7, 3, 12};
  Tensor<float, 3> hidden({2, 3, 16});
  embedding.forward(ctx, TensorView<const std::int32_t, 2>(ids.data(), {2, 3}), hidden.view());
  Tensor<float, 3> logits({2, 3, 50});
  head.forward(ctx, hidden.cview(), logits.view());
  // Each token's logit for its own id is the squared norm of its embedding row.
  for (index_t i = 0; i < 6; ++i) {
    double norm = 0;
    for (index_t j = 0; j < 16; ++j) norm += double(hidden.data()[i * 16 + j]) * hidden.data()[i * 16 + j];
    CHECK(logits.data()[i * 50 + ids[size_t(i)]] == Approx(norm).epsilon(1e-5));
  }
}

TEST_CASE("Linear rejects inputs of the wrong width", "[linear]") {
  Context<cpu> ctx(1);
  Linear<cpu> head(4, 10);
  Tensor<float, 3> x({1, 1, 5}), out({1, 1, 10});
  CHECK_THROWS_WITH(head.forward(ctx, x.cview(), out.view()), Contains("in_features = 4"));
  CHECK_THROWS_WITH(Linear<cpu>(0, 10), Contains("in_features must be > 0, got 0"));
}
