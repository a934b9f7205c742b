// Embedding and Linear (the output head): reference checks, a tied head, and id/shape errors.
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

TEST_CASE("Embedding gathers rows and a tied head shares its table", "[embedding]") {
  Context<cpu> ctx(2);
  Embedding<cpu> embedding(50, 16);
  test::randomize(embedding.weight(), 153, 1.0);
  std::vector<std::int32_t> ids{0, 49, 7, 7, 3, 12};
  Tensor<float, 3> out({2, 3, 16});
  embedding.forward(ctx, TensorView<const std::int32_t, 2>(ids.data(), {2, 3}), out.view());
  for (index_t i = 0; i < 6; ++i)
    for (index_t j = 0; j < 16; ++j)
      CHECK(out.data()[i * 16 + j] == embedding.weight().view()(ids[size_t(i)], j));

  Linear<cpu> head(16, 50);
  head.weight().assign(embedding.weight().share());
  CHECK(head.weight().view().data() == embedding.weight().view().data());
  Tensor<float, 3> logits({2, 3, 50});
  head.forward(ctx, out.cview(), logits.view());
  // The logit of a token's own id is its squared norm: the largest of its row for these vectors.
  for (index_t i = 0; i < 6; ++i) {
    double norm = 0;
    for (index_t j = 0; j < 16; ++j) norm += double(out.data()[i * 16 + j]) * out.data()[i * 16 + j];
    CHECK(logits.data()[i * 50 + ids[size_t(i)]] == Approx(norm).epsilon(1e-5));
  }
}

TEST_CASE("Embedding refuses ids outside the vocabulary before writing anything", "[embedding]") {
  Context<cpu> ctx(1);
  Embedding<cpu> embedding(10, 4);
  Tensor<float, 3> out({1, 3, 4});
  out.view()(0, 0, 0) = 5.0f;
  for (std::int32_t bad : {10, -1, 1 << 30}) {
    std::vector<std::int32_t> ids{1, 2, bad};
    CHECK_THROWS_AS(embedding.forward(ctx, TensorView<const std::int32_t, 2>(ids.data(), {1, 3}), out.view()), range_error);
    CHECK_THROWS_WITH(embedding.forward(ctx, TensorView<const std::int32_t, 2>(ids.data(), {1, 3}), out.view()),
                      Contains("token id " + std::to_string(bad)) && Contains("[0, 2]") && Contains("[0, 10)"));
  }
  CHECK(out.view()(0, 0, 0) == 5.0f);
  CHECK_THROWS_WITH(Embedding<cpu>(0, 4), Contains("vocab_size must be > 0, got 0"));
  Linear<cpu> head(4, 10);
  Tensor<float, 3> x({1, 1, 5});
  CHECK_THROWS_WITH(head.forward(ctx, x.cview(), out.view()), Contains("in_features = 4"));
}
