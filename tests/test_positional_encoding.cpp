// Sinusoidal positional encoding against the reference table.
#include "support/helpers.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

using namespace llamablocks;
using Catch::Matchers::Contains;

TEST_CASE("SinusoidalPositionalEncoding adds sin/cos rows at the start position", "[positional_encoding]") {
  const index_t dim = 64, max_seq_len = 600;
  const index_t start = GENERATE(0, 17, 87);
  Context<cpu> ctx(2);
  const SinusoidalPositionalEncoding<cpu, double> encoding(dim, max_seq_len);
  const auto table = test::reference::sinusoidal_table(size_t(max_seq_len), size_t(dim), 10000.0);
  auto x = test::random_tensor<double, 3>({2, 513, dim}, 161);
  auto expected = test::to_vector(x.cview());
  for (index_t b = 0; b < 2; ++b)
    for (index_t t = 0; t < 513; ++t)
      for (index_t i = 0; i < dim; ++i)
        expected[size_t((b * 513 + t) * dim + i)] += table[size_t((start + t) * dim + i)];
  encoding.apply(ctx, x.view(), start);
  test::require_close("positional encoding", x.data(), expected.data(), expected.size(),
                      test::tolerance<double>::nmse);
  // Position 0 is sin(0) = 0, cos(0) = 1.
  CHECK(encoding.table()(0, 0) == 0.0);
  CHECK(encoding.table()(0, 1) == 1.0);
}

TEST_CASE("SinusoidalPositionalEncoding rejects odd dims and positions past the table", "[positional_encoding]") {
  CHECK_THROWS_WITH(SinusoidalPositionalEncoding<cpu>(7, 10), Contains("dim must be positive and even, got 7"));
  Context<cpu> ctx(1);
  const SinusoidalPositionalEncoding<cpu> encoding(8, 10);
  Tensor<float, 3> x({1, 4, 8});
  CHECK_THROWS_WITH(encoding.apply(ctx, x.view(), 7), Contains("start_pos 7") && Contains("max_seq_len 10"));
  for (index_t i = 0; i < x.size(); ++i) CHECK(x.data()[i] == 0.0f);
}
