// GroupedQueryAttention and the causal attention kernel against the scalar reference, for MHA,
// GQA and MQA; GQA equals MHA with repeated K/V heads; decode through the cache equals prefill.
#include "support/helpers.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

using namespace llamablocks;
using Catch::Matchers::Contains;

namespace {

struct AttentionWeights {
  test::reference::Vector wq, wk, wv, wo;
};

template <class T>
AttentionWeights randomize(GroupedQueryAttention<cpu, T>& attention, std::uint32_t seed) {
  const double scale = 1.0 / std::sqrt(double(attention.dim()));
  return {test::randomize(attention.wq(), seed, scale), test::randomize(attention.wk(), seed + 1, scale),
          test::randomize(attention.wv(), seed + 2, scale),
          test::randomize(attention.wo(), seed + 3, 1.0 / std::sqrt(double(attention.n_heads() * attention.head_dim())))};
}

/// Reference attention sub-layer for the full sequence from position 0.
test::reference::Vector reference_attention(const ModelConfig& config, const AttentionWeights& w,
                                            const test::reference::Vector& x, size_t batch, size_t tokens) {
  namespace ref = test::reference;
  const size_t rows = batch * tokens, dim = size_t(config.dim), d = size_t(config.head_dim);
  const size_t heads = size_t(config.n_heads), kv_heads = size_t(config.n_kv_heads);
  const auto spec = test::rope_spec(config);
  const auto q = ref::rope(ref::linear(x, rows, dim, w.wq, heads * d), batch, tokens, heads, spec, 0);
  const auto k = ref::rope(ref::linear(x, rows, dim, w.wk, kv_heads * d), batch, tokens, kv_heads, spec, 0);
  const auto v = ref::linear(x, rows, dim, w.wv, kv_heads * d);
  return ref::linear(ref::attention(q, k, v, batch, tokens, 0, heads, kv_heads, d), rows, heads * d,
                     w.wo, dim);
}

}  // namespace

TEMPLATE_TEST_CASE("GroupedQueryAttention prefill matches the scalar reference", "[attention]", float, double) {
  // GQA ratios 1 (MHA), 2, 4, 8 and n_kv_heads = 1 (MQA); head_dim 64 and 128; odd dim.
  const auto [dim, n_heads, n_kv_heads, head_dim] = GENERATE(table<index_t, index_t, index_t, index_t>(
      {{128, 2, 2, 64}, {256, 4, 2, 64}, {256, 8, 2, 32}, {512, 8, 1, 64}, {127, 8, 1, 128}, {256, 4, 4, 128}}));
  const auto [batch, tokens] = GENERATE(table<index_t, index_t>({{1, 1}, {2, 7}, {1, 128}}));
  const auto layout = GENERATE(RopeLayout::interleaved, RopeLayout::half_split);
  CAPTURE(dim, n_heads, n_kv_heads, head_dim, batch, tokens, to_string(layout));

  const ModelConfig config = test::make_config(dim, n_heads, n_kv_heads, head_dim, 8, 160, layout);
  Context<cpu> ctx(2);
  GroupedQueryAttention<cpu, TestType> attention(config);
  const auto weights = randomize(attention, 91);
  KVCache<cpu, TestType> cache(config, batch);
  const auto x = test::random_tensor<TestType, 3>({batch, tokens, dim}, 92);
  Tensor<TestType, 3> out(x.shape());
  attention.forward(ctx, x.cview(), cache, 0, out.view());
  CHECK(cache.length() == tokens);

  const auto expected = reference_attention(config, weights, test::to_vector(x.cview()), size_t(batch), size_t(tokens));
  test::require_close("attention", out.data(), expected.data(), expected.size(), test::tolerance<TestType>::nmse);
}

TEST_CASE("Long prefill (T = 513) matches the reference", "[attention]") {
  const ModelConfig config = test::make_config(128, 8, 2, 16, 8, 600);
  Context<cpu> ctx(2);
  GroupedQueryAttention<cpu> attention(config);
  const auto weights = randomize(attention, 93);
  KVCache<cpu> cache(config, 1);
  const auto x = test::random_tensor<float, 3>({1, 513, 128}, 94);
  Tensor<float, 3> out(x.shape());
  attention.forward(ctx, x.cview(), cache, 0, out.view());
  const auto expected = reference_attention(config, weights, test::to_vector(x.cview()), 1, 513);
  test::require_close("attention T=513", out.data(), expected.data(), expected.size(), test::tolerance<float>::nmse);
}

TEST_CASE("The attention kernel matches the reference at any start position", "[attention]") {
  const auto [n_heads, n_kv_heads] = GENERATE(table<index_t, index_t>({{4, 4}, {8, 2}, {8, 1}, {16, 2}}));
  const index_t start = GENERATE(0, 5, 300);
  const index_t tokens = GENERATE(1, 7, 70);
  const index_t head_dim = 64, batch = 2;
  CAPTURE(n_heads, n_kv_heads, start, tokens);
  Context<cpu> ctx(2);
  KVCache<cpu> cache(batch, n_kv_heads, head_dim, 400);
  const auto k = test::random_tensor<float, 4>({batch, start + tokens, n_kv_heads, head_dim}, 95);
  const auto v = test::random_tensor<float, 4>({batch, start + tokens, n_kv_heads, head_dim}, 96);
  const auto q = test::random_tensor<float, 4>({batch, tokens, n_heads, head_dim}, 97);
  cache.write(0, k.cview(), v.cview());
  Tensor<float, 4> out(q.shape());
  Workspace<float> scratch;
  causal_attention<float>(ctx, q.cview(), cache, start, out.view(), scratch);
  const auto expected = test::reference::attention(
      test::to_vector(q.cview()), test::to_vector(k.cview()), test::to_vector(v.cview()), size_t(batch),
      size_t(tokens), size_t(start), size_t(n_heads), size_t(n_kv_heads), size_t(head_dim));
  test::require_close("causal_attention", out.data(), expected.data(), expected.size(),
                      test::tolerance<float>::nmse);
}

TEST_CASE("GQA equals MHA with every K/V head repeated for its group", "[attention]") {
  const index_t dim = 128, n_heads = 8, head_dim = 16;
  const index_t n_kv_heads = GENERATE(1, 2, 4);
  const index_t group = n_heads / n_kv_heads;
  Context<cpu> ctx(1);
  GroupedQueryAttention<cpu, double> gqa(test::make_config(dim, n_heads, n_kv_heads, head_dim, 8, 32));
  GroupedQueryAttention<cpu, double> mha(test::make_config(dim, n_heads, n_heads, head_dim, 8, 32));
  randomize(gqa, 101);
  mha.wq().copy_from(gqa.wq().view());
  mha.wo().copy_from(gqa.wo().view());
  // MHA kv head h is GQA kv head h / group: repeat each row block of Wk, Wv `group` times.
  for (auto [from, to] : {std::pair{&gqa.wk(), &mha.wk()}, std::pair{&gqa.wv(), &mha.wv()}})
    for (index_t h = 0; h < n_heads; ++h)
      std::copy_n(&from->view()((h / group) * head_dim, 0), head_dim * dim, &to->view()(h * head_dim, 0));

  const auto x = test::random_tensor<double, 3>({2, 9, dim}, 102);
  Tensor<double, 3> out_gqa(x.shape()), out_mha(x.shape());
  KVCache<cpu, double> cache_gqa(2, n_kv_heads, head_dim, 32), cache_mha(2, n_heads, head_dim, 32);
  gqa.forward(ctx, x.cview(), cache_gqa, 0, out_gqa.view());
  mha.forward(ctx, x.cview(), cache_mha, 0, out_mha.view());
  test::require_close("gqa vs mha", out_gqa.data(), out_mha.data(), size_t(x.size()), test::tolerance<double>::nmse);
}

TEST_CASE("Decoding token by token through the cache equals one prefill", "[attention]") {
  const auto [n_heads, n_kv_heads] = GENERATE(table<index_t, index_t>({{4, 4}, {8, 2}, {8, 1}}));
  const index_t prompt = GENERATE(0, 1, 6);
  const index_t dim = 64, tokens = 11;
  Context<cpu> ctx(2);
  GroupedQueryAttention<cpu> attention(test::make_config(dim, n_heads, n_kv_heads, dim / n_heads, 8, 16));
  randomize(attention, 103);
  const auto x = test::random_tensor<float, 3>({3, tokens, dim}, 104);

  KVCache<cpu> full_cache(3, n_kv_heads, dim / n_heads, 16);
  Tensor<float, 3> full(x.shape());
  attention.forward(ctx, x.cview(), full_cache, 0, full.view());

  KVCache<cpu> cache(3, n_kv_heads, dim / n_heads, 16);
  Tensor<float, 3> stepped(x.shape());
  auto run = [&](index_t first, index_t count) {
    Tensor<float, 3> chunk({3, count, dim}), result({3, count, dim});
    for (index_t b = 0; b < 3; ++b)
      std::copy_n(&x.view()(b, first, 0), count * dim, &chunk.view()(b, 0, 0));
    attention.forward(ctx, chunk.cview(), cache, first, result.view());
    for (index_t b = 0; b < 3; ++b)
      std::copy_n(&result.view()(b, 0, 0), count * dim, &stepped.view()(b, first, 0));
  };
  if (prompt > 0) run(0, prompt);
  for (index_t t = prompt; t < tokens; ++t) run(t, 1);
  CHECK(cache.length() == tokens);
  test::require_close("decode vs prefill", stepped.data(), full.data(), size_t(x.size()), test::tolerance<float>::nmse);
}

TEST_CASE("GroupedQueryAttention rejects bad arguments without touching cache or output", "[attention]") {
  ModelConfig config = test::make_config(64, 8, 2, 8, 8, 8);
  config.n_kv_heads = 3;
  CHECK_THROWS_WITH(GroupedQueryAttention<cpu>(config), Contains("n_heads (8)") && Contains("n_kv_heads (3)"));

  config.n_kv_heads = 2;
  Context<cpu> ctx(1);
  GroupedQueryAttention<cpu> attention(config);
  randomize(attention, 105);
  KVCache<cpu> cache(config, 1);
  const auto x = test::random_tensor<float, 3>({1, 6, 64}, 106);
  Tensor<float, 3> out(x.shape());
  attention.forward(ctx, x.cview(), cache, 0, out.view());
  const auto keys_before = test::to_vector(cache.keys());
  Tensor<float, 3> untouched(x.shape());
  untouched.view()(0, 0, 0) = 3.0f;

  const auto three = test::random_tensor<float, 3>({1, 3, 64}, 107);
  Tensor<float, 3> out3(three.shape());
  out3.view()(0, 0, 0) = 3.0f;
  CHECK_THROWS_AS(attention.forward(ctx, three.cview(), cache, 6, out3.view()), range_error);  // past max_seq_len 8
  CHECK_THROWS_WITH(attention.forward(ctx, three.cview(), cache, 6, out3.view()), Contains("max_seq_len 8"));
  CHECK_THROWS_WITH(attention.forward(ctx, three.cview(), cache, 7, out3.view()), Contains("start_pos 7"));  // gap
  KVCache<cpu> wrong_batch(config, 2);
  CHECK_THROWS_AS(attention.forward(ctx, three.cview(), wrong_batch, 0, out3.view()), shape_error);
  KVCache<cpu> wrong_heads(1, 4, 8, 8);
  CHECK_THROWS_WITH(attention.forward(ctx, three.cview(), wrong_heads, 0, out3.view()), Contains("n_kv_heads 4"));
  const auto bad_dim = test::random_tensor<float, 3>({1, 3, 63}, 108);
  CHECK_THROWS_WITH(attention.forward(ctx, bad_dim.cview(), cache, 6, out3.view()), Contains("x has shape [1, 3, 63]"));
  CHECK_THROWS_WITH(attention.forward(ctx, three.cview(), cache, 0, TensorView<float, 3>(const_cast<float*>(three.data()), {1, 3, 64})),
                    Contains("overlap"));

  CHECK(cache.length() == 6);
  CHECK(test::to_vector(cache.keys()) == keys_before);
  CHECK(out3.view()(0, 0, 0) == 3.0f);
}
