// KVCache: layout, sizing by n_kv_heads, append/rewind/truncate/reset, and failure atomicity.
#include "support/helpers.hpp"

#include <catch2/catch.hpp>

using namespace llamablocks;
using Catch::Matchers::Contains;

TEST_CASE("KVCache is sized by n_kv_heads and stores each head's positions contiguously", "[kv_cache]") {
  const ModelConfig config = test::make_config(256, 16, 4, 16, 64, 32);
  KVCache<cpu> cache(config, 2);
  CHECK(cache.keys().shape() == Shape<4>{2, 4, 32, 16});  // n_kv_heads, not n_heads
  CHECK(cache.length() == 0);

  const auto k = test::random_tensor<float, 4>({2, 3, 4, 16}, 81);
  const auto v = test::random_tensor<float, 4>({2, 3, 4, 16}, 82);
  cache.write(0, k.cview(), v.cview());
  CHECK(cache.length() == 3);
  for (index_t b = 0; b < 2; ++b)
    for (index_t t = 0; t < 3; ++t)
      for (index_t h = 0; h < 4; ++h)
        for (index_t i = 0; i < 16; ++i) {
          CHECK(cache.keys()(b, h, t, i) == k.view()(b, t, h, i));
          CHECK(cache.values()(b, h, t, i) == v.view()(b, t, h, i));
        }
  // Position t of head h sits right after position t-1.
  CHECK(&cache.keys()(1, 2, 1, 0) == &cache.keys()(1, 2, 0, 0) + 16);
}

TEST_CASE("KVCache appends, rewinds, truncates and resets", "[kv_cache]") {
  KVCache<cpu> cache(1, 2, 4, 10);
  const auto first = test::random_tensor<float, 4>({1, 4, 2, 4}, 83);
  const auto second = test::random_tensor<float, 4>({1, 1, 2, 4}, 84);
  cache.write(0, first.cview(), first.cview());
  cache.write(4, second.cview(), second.cview());  // append one decode step
  CHECK(cache.length() == 5);
  CHECK(cache.keys()(0, 1, 4, 3) == second.view()(0, 0, 1, 3));
  cache.write(2, second.cview(), second.cview());  // rewind: overwrite position 2, forget 3..4
  CHECK(cache.length() == 3);
  CHECK(cache.keys()(0, 0, 2, 0) == second.view()(0, 0, 0, 0));
  CHECK(cache.keys()(0, 0, 1, 0) == first.view()(0, 1, 0, 0));
  cache.truncate(1);
  CHECK(cache.length() == 1);
  CHECK_THROWS_WITH(cache.truncate(2), Contains("new_length 2") && Contains("length 1"));
  cache.reset();
  CHECK(cache.length() == 0);
}

TEST_CASE("KVCache refuses writes past capacity or with gaps and stays untouched", "[kv_cache]") {
  KVCache<cpu> cache(1, 1, 2, 4);
  const auto three = test::random_tensor<float, 4>({1, 3, 1, 2}, 85);
  cache.write(0, three.cview(), three.cview());
  const auto keys_before = test::to_vector(cache.keys());
  const auto values_before = test::to_vector(cache.values());

  const auto two = test::random_tensor<float, 4>({1, 2, 1, 2}, 86);
  CHECK_THROWS_AS(cache.write(3, two.cview(), two.cview()), range_error);
  CHECK_THROWS_WITH(cache.write(3, two.cview(), two.cview()),
                    Contains("start_pos 3") && Contains("tokens 2") && Contains("max_seq_len 4"));
  CHECK_THROWS_WITH(cache.write(4, two.cview(), two.cview()), Contains("without gaps"));
  CHECK_THROWS_AS(cache.write(-1, two.cview(), two.cview()), range_error);
  const auto wrong_heads = test::random_tensor<float, 4>({1, 1, 2, 2}, 87);
  CHECK_THROWS_AS(cache.write(3, wrong_heads.cview(), wrong_heads.cview()), shape_error);
  const auto one = test::random_tensor<float, 4>({1, 1, 1, 2}, 88);
  CHECK_THROWS_WITH(cache.write(3, one.cview(), two.cview()), Contains("v has shape [1, 2, 1, 2]"));

  CHECK(cache.length() == 3);
  CHECK(test::to_vector(cache.keys()) == keys_before);
  CHECK(test::to_vector(cache.values()) == values_before);
  CHECK_THROWS_WITH(KVCache<cpu>(1, 0, 2, 4), Contains("n_kv_heads must be > 0, got 0"));
}
