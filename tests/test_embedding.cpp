// Embedding: row gathers and refused token ids.
#include "support/helpers.hpp"

#include <catch2/catch.hpp>

using namespace llamablocks;
using Catch::Matchers::Contains;

TEST_CASE("Embedding gathers the row of each id", "[embedding]") {
  Context<cpu> ctx(2);
  Embedding<cpu> embedding(50, 16);
  test::randomize(embedding.weight(), 153, 1.0);
  std::vector<std::int32_t> ids{0, 49, 7, 7, 3, 12};
  Tensor<float, 3> out({2, 3, 16});
  embedding.forward(ctx, TensorView<const std::int32_t, 2>(ids.data(), {2, 3}), out.view());
  for (index_t i = 0; i < 6; ++i)
    for (index_t j = 0; j < 16; ++j)
      CHECK(out.data()[i * 16 + j] == embedding.weight().view()(ids[size_t(i)], j));
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
}
