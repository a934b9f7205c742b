// Hostile arguments through the API: a token id outside the vocabulary, a position past
// max_seq_len, a full KV cache, a prompt longer than the context, mismatched shapes. Each call
// throws an error derived from llamablocks::error that names the argument and its value; the
// module, its cache and the output are unchanged afterwards, and generation continues with exactly
// the values a run that never saw the refused calls computes (compared bit for bit: one thread,
// same weights, same inputs).
#include "../examples/llama2/llama_model.hpp"

#include "support/helpers.hpp"

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <vector>

using namespace llamablocks;
using Catch::Matchers::Contains;

namespace {

/// dim 16, 2 layers, 4 heads sharing 2 kv heads of width 4, vocab 20, context 8.
ModelConfig tiny_config() {
  ModelConfig config = test::make_config(16, 4, 2, 4, 32, 8);
  config.n_layers = 2;
  config.vocab_size = 20;
  config.validate();
  return config;
}

/// A model with the same random weights whatever the instance.
std::unique_ptr<llama2::LlamaModel<cpu>> make_model() {
  auto model = std::make_unique<llama2::LlamaModel<cpu>>(tiny_config(), 1, false);
  test::randomize(model->token_embedding().weight(), 1, 1.0);
  std::uint32_t seed = 10;
  for (auto& block : model->layers()) test::randomize_block(block, seed += 10);
  test::randomize(model->final_norm().weight(), 2, 0.1, 1.0);
  test::randomize(model->output().weight(), 3, 0.25);
  return model;
}

/// Logits of `tokens` at `start_pos`.
std::vector<double> step(llama2::LlamaModel<cpu>& model, const Context<cpu>& ctx,
                        std::vector<std::int32_t> tokens, index_t start_pos) {
  Tensor<float, 2> logits({1, model.config().vocab_size});
  model.forward(ctx, TensorView<const std::int32_t, 2>(tokens.data(), {1, index_t(tokens.size())}),
                start_pos, logits.view());
  return test::to_vector(logits.cview());
}

/// What forward() does to `model` when it throws: it must throw `Error` mentioning `part`.
template <class Error>
void refuse(llama2::LlamaModel<cpu>& model, const Context<cpu>& ctx,
            std::vector<std::int32_t> tokens, index_t start_pos, const std::string& part,
            index_t logits_width = -1) {
  const index_t length = model.length();
  Tensor<float, 2> logits({1, logits_width < 0 ? model.config().vocab_size : logits_width});
  std::fill_n(logits.data(), logits.size(), 42.0f);
  try {
    model.forward(ctx,
                  TensorView<const std::int32_t, 2>(tokens.data(), {1, index_t(tokens.size())}),
                  start_pos, logits.view());
    FAIL("forward accepted a hostile call, expected an error mentioning " << part);
  } catch (const Error& e) {
    static_assert(std::is_base_of_v<llamablocks::error, Error>);
    INFO(e.what());
    CHECK_THAT(e.what(), Contains(part));
  }
  CHECK(model.length() == length);
  for (index_t i = 0; i < logits.size(); ++i) CHECK(logits.data()[i] == 42.0f);
}

}  // namespace

TEST_CASE("LlamaModel: refused calls change nothing and generation continues bit for bit",
          "[hostile][api]") {
  const Context<cpu> ctx(1);
  auto hostile = make_model();
  auto clean = make_model();
  const std::vector<std::int32_t> prompt = {3, 17, 5};

  CHECK(step(*hostile, ctx, prompt, 0) == step(*clean, ctx, prompt, 0));

  // A token id outside the vocabulary, in the middle of a prompt and alone.
  refuse<range_error>(*hostile, ctx, {4, 20, 6}, 3, "token id 20 at [0, 1] is outside the vocabulary [0, 20)");
  refuse<range_error>(*hostile, ctx, {-1}, 3, "token id -1");
  refuse<range_error>(*hostile, ctx, {std::numeric_limits<std::int32_t>::max()}, 3, "2147483647");
  // A position past what the cache holds (a gap), and past max_seq_len.
  refuse<range_error>(*hostile, ctx, {4}, 4, "start_pos 4 must be in [0, cache length 3]");
  refuse<range_error>(*hostile, ctx, {4}, 9, "start_pos 9");
  refuse<range_error>(*hostile, ctx, {4}, -1, "start_pos -1");
  // A prompt longer than the context.
  refuse<range_error>(*hostile, ctx, std::vector<std::int32_t>(9, 1), 0, "max_seq_len 8");
  refuse<range_error>(*hostile, ctx, std::vector<std::int32_t>(6, 1), 3, "max_seq_len 8");
  // Mismatched shapes: logits of the wrong width, no token at all.
  refuse<shape_error>(*hostile, ctx, {4}, 3, "logits", 19);
  refuse<shape_error>(*hostile, ctx, {}, 3, "at least one token");

  // Generation continues: the same logits as the model that never saw the refused calls.
  for (index_t pos = 3; pos < 8; ++pos) {
    const std::int32_t token = static_cast<std::int32_t>(pos * 7 % 20);
    CHECK(step(*hostile, ctx, {token}, pos) == step(*clean, ctx, {token}, pos));
  }
  CHECK(hostile->length() == 8);

  // The cache is full: one more position is refused, the cache keeps its 8 positions, and
  // rewinding by one position decodes again what the clean model decodes there.
  refuse<range_error>(*hostile, ctx, {1}, 8, "max_seq_len 8");
  CHECK(hostile->length() == 8);
  CHECK(step(*hostile, ctx, {11}, 7) == step(*clean, ctx, {11}, 7));
}

TEST_CASE("Embedding: an id outside the vocabulary is refused before anything is written",
          "[hostile][api]") {
  const Context<cpu> ctx(1);
  Embedding<cpu> embedding(5, 3);
  test::randomize(embedding.weight(), 7, 1.0);
  const auto table = test::to_vector(embedding.weight().view());
  Tensor<float, 3> out({1, 4, 3});
  std::fill_n(out.data(), out.size(), -7.0f);
  for (const std::int32_t bad : {5, -1, std::numeric_limits<std::int32_t>::min()}) {
    std::vector<std::int32_t> ids = {0, 1, bad, 2};
    CHECK_THROWS_AS(embedding.forward(ctx, TensorView<const std::int32_t, 2>(ids.data(), {1, 4}),
                                      out.view()),
                    range_error);
    for (index_t i = 0; i < out.size(); ++i) CHECK(out.data()[i] == -7.0f);
  }
  std::vector<std::int32_t> ids = {4, 0};
  Tensor<float, 3> wrong({1, 3, 3});
  CHECK_THROWS_AS(embedding.forward(ctx, TensorView<const std::int32_t, 2>(ids.data(), {1, 2}),
                                    wrong.view()),
                  shape_error);
  CHECK(test::to_vector(embedding.weight().view()) == table);
  // Still usable: row 4, then row 0.
  Tensor<float, 3> good({1, 2, 3});
  embedding.forward(ctx, TensorView<const std::int32_t, 2>(ids.data(), {1, 2}), good.view());
  for (index_t c = 0; c < 3; ++c) {
    CHECK(good.view()(0, 0, c) == table[std::size_t(4 * 3 + c)]);
    CHECK(good.view()(0, 1, c) == table[std::size_t(c)]);
  }
}

TEST_CASE("KVCache: writes past max_seq_len or with a gap are refused and change nothing",
          "[hostile][api]") {
  KVCache<cpu> cache(1, 2, 4, 3);
  auto k = test::random_tensor<float, 4>({1, 2, 2, 4}, 1);
  auto v = test::random_tensor<float, 4>({1, 2, 2, 4}, 2);
  cache.write(0, k.cview(), v.cview());
  const auto keys = test::to_vector(cache.keys());
  const auto values = test::to_vector(cache.values());
  CHECK_THROWS_AS(cache.write(2, k.cview(), v.cview()), range_error);   // 2 + 2 > 3: full
  CHECK_THROWS_AS(cache.write(3, k.cview(), v.cview()), range_error);   // gap past length 2
  CHECK_THROWS_AS(cache.write(-1, k.cview(), v.cview()), range_error);
  auto wide = test::random_tensor<float, 4>({1, 2, 2, 5}, 3);
  CHECK_THROWS_AS(cache.write(0, wide.cview(), wide.cview()), shape_error);
  CHECK(cache.length() == 2);
  CHECK(test::to_vector(cache.keys()) == keys);
  CHECK(test::to_vector(cache.values()) == values);
  // One more position still fits.
  auto k1 = test::random_tensor<float, 4>({1, 1, 2, 4}, 4);
  cache.write(2, k1.cview(), k1.cview());
  CHECK(cache.length() == 3);
}

TEST_CASE("Linear and RMSNorm: mismatched shapes are refused and the output is untouched",
          "[hostile][api]") {
  const Context<cpu> ctx(1);
  Linear<cpu> linear(4, 3);
  test::randomize(linear.weight(), 5, 1.0);
  auto x = test::random_tensor<float, 3>({1, 2, 5}, 6);
  Tensor<float, 3> out({1, 2, 3});
  std::fill_n(out.data(), out.size(), 3.0f);
  CHECK_THROWS_AS(linear.forward(ctx, x.cview(), out.view()), shape_error);
  for (index_t i = 0; i < out.size(); ++i) CHECK(out.data()[i] == 3.0f);

  RMSNorm<cpu> norm(4, 1e-5);
  Tensor<float, 3> normed({1, 2, 5});
  std::fill_n(normed.data(), normed.size(), 3.0f);
  CHECK_THROWS_AS(norm.forward(ctx, x.cview(), normed.view()), shape_error);
  for (index_t i = 0; i < normed.size(); ++i) CHECK(normed.data()[i] == 3.0f);
}

TEST_CASE("a config asking for terabytes of cache gets an allocation_error, not bad_alloc",
          "[hostile]") {
  // 2^40 positions × 64 × 4 bytes = 256 TiB for one layer's keys: more than any address space.
  ModelConfig config = test::make_config(64, 1, 1, 64, 32, std::int64_t{1} << 40);
  try {
    KVCache<cpu, float> cache(config, 1);
    FAIL("a 256 TiB cache was allocated");
  } catch (const allocation_error& e) {
    CHECK_THAT(e.what(), Contains("cannot allocate 281474976710656 bytes"));
  }
  // llamablocks::error is its base, so a program's one catch covers it.
  CHECK_THROWS_AS(KVCache<cpu>(config, 1), llamablocks::error);
}
