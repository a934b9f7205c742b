// LlamaBlock against the scalar reference; a stack of blocks decoded token by token through the
// cache equals one prefill; bad arguments leave the residual stream and the cache as they were.
#include "support/helpers.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

#include <memory>

using namespace llamablocks;
using Catch::Matchers::Contains;

TEMPLATE_TEST_CASE("LlamaBlock matches the scalar reference", "[llama_block]", float, double) {
  const auto [dim, n_heads, n_kv_heads, head_dim, hidden] = GENERATE(table<index_t, index_t, index_t, index_t, index_t>(
      {{64, 4, 4, 16, 172}, {128, 8, 2, 16, 344}, {127, 4, 1, 64, 256}, {256, 8, 1, 128, 512}}));
  const auto [batch, tokens] = GENERATE(table<index_t, index_t>({{1, 1}, {2, 7}, {1, 130}}));
  const auto layout = GENERATE(RopeLayout::interleaved, RopeLayout::half_split);
  CAPTURE(dim, n_heads, n_kv_heads, head_dim, batch, tokens, to_string(layout));

  const ModelConfig config = test::make_config(dim, n_heads, n_kv_heads, head_dim, hidden, 256, layout,
                                               500000.0, RopeScaling::llama3(8, 1, 4, 64));
  Context<cpu> ctx(2);
  LlamaBlock<cpu, TestType> block(config);
  const auto weights = test::randomize_block(block, 120);
  auto x = test::random_tensor<TestType, 3>({batch, tokens, dim}, 121);
  const auto expected = test::reference::llama_block(test::to_vector(x.cview()), size_t(batch), size_t(tokens),
                                                     test::block_spec(config), weights);
  KVCache<cpu, TestType> cache(config, batch);
  block.forward(ctx, x.view(), cache, 0);
  test::require_close("llama_block", x.data(), expected.data(), expected.size(), test::tolerance<TestType>::nmse);
}

TEST_CASE("A stack of LlamaBlocks decoded through the cache equals one prefill", "[llama_block]") {
  const auto [n_heads, n_kv_heads] = GENERATE(table<index_t, index_t>({{4, 4}, {8, 2}, {8, 1}}));
  const auto layout = GENERATE(RopeLayout::interleaved, RopeLayout::half_split);
  const index_t dim = 64, tokens = 13, batch = 2, layers = 3, prompt = 5;
  const ModelConfig config = test::make_config(dim, n_heads, n_kv_heads, dim / n_heads, 160, 32, layout);
  Context<cpu> ctx(2);
  const auto rope = std::make_shared<const RotaryEmbedding<cpu>>(config);
  std::vector<LlamaBlock<cpu>> blocks;
  for (index_t l = 0; l < layers; ++l) {
    blocks.emplace_back(config, rope);
    test::randomize_block(blocks.back(), 130 + 10 * std::uint32_t(l));
  }
  const auto input = test::random_tensor<float, 3>({batch, tokens, dim}, 139);

  auto run_stack = [&](std::vector<KVCache<cpu>>& caches, TensorView<float, 3> x, index_t start) {
    for (index_t l = 0; l < layers; ++l) blocks[size_t(l)].forward(ctx, x, caches[size_t(l)], start);
  };
  auto make_caches = [&] {
    std::vector<KVCache<cpu>> caches;
    for (index_t l = 0; l < layers; ++l) caches.emplace_back(config, batch);
    return caches;
  };

  auto full_caches = make_caches();
  Tensor<float, 3> full(input.shape());
  std::copy_n(input.data(), input.size(), full.data());
  run_stack(full_caches, full.view(), 0);

  auto caches = make_caches();
  Tensor<float, 3> stepped(input.shape());
  auto run_chunk = [&](index_t first, index_t count) {
    Tensor<float, 3> chunk({batch, count, dim});
    for (index_t b = 0; b < batch; ++b) std::copy_n(&input.view()(b, first, 0), count * dim, &chunk.view()(b, 0, 0));
    run_stack(caches, chunk.view(), first);
    for (index_t b = 0; b < batch; ++b) std::copy_n(&chunk.view()(b, 0, 0), count * dim, &stepped.view()(b, first, 0));
  };
  run_chunk(0, prompt);
  for (index_t t = prompt; t < tokens; ++t) run_chunk(t, 1);
  test::require_close("stack decode vs prefill", stepped.data(), full.data(), size_t(full.size()),
                      test::tolerance<float>::nmse);

  // Rewinding the caches and decoding the tail again reproduces it.
  for (auto& cache : caches) cache.truncate(prompt);
  for (index_t t = prompt; t < tokens; ++t) run_chunk(t, 1);
  test::require_close("after rewind", stepped.data(), full.data(), size_t(full.size()), test::tolerance<float>::nmse);
}

TEST_CASE("LlamaBlock refuses bad input and leaves x and the cache unchanged", "[llama_block]") {
  const ModelConfig config = test::make_config(32, 4, 2, 8, 64, 8);
  Context<cpu> ctx(1);
  LlamaBlock<cpu> block(config);
  test::randomize_block(block, 140);
  KVCache<cpu> cache(config, 1);
  auto x = test::random_tensor<float, 3>({1, 6, 32}, 141);
  block.forward(ctx, x.view(), cache, 0);
  const auto keys_before = test::to_vector(cache.keys());

  auto next = test::random_tensor<float, 3>({1, 3, 32}, 142);
  const auto next_before = test::to_vector(next.cview());
  CHECK_THROWS_AS(block.forward(ctx, next.view(), cache, 6), range_error);  // 6 + 3 > max_seq_len 8
  CHECK_THROWS_WITH(block.forward(ctx, next.view(), cache, 6), Contains("max_seq_len 8"));
  KVCache<cpu> other_batch(config, 2);
  CHECK_THROWS_AS(block.forward(ctx, next.view(), other_batch, 0), shape_error);
  auto wide = test::random_tensor<float, 3>({1, 3, 33}, 143);
  CHECK_THROWS_WITH(block.forward(ctx, wide.view(), cache, 0), Contains("x has shape [1, 3, 33]"));
  CHECK(test::to_vector(next.cview()) == next_before);
  CHECK(cache.length() == 6);
  CHECK(test::to_vector(cache.keys()) == keys_before);

  // Generation continues after the refused calls.
  auto one = test::random_tensor<float, 3>({1, 1, 32}, 144);
  CHECK_NOTHROW(block.forward(ctx, one.view(), cache, 6));
  CHECK(cache.length() == 7);
}
