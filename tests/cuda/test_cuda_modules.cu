// Cross-backend test of the cuda modules [cuda], in the manner of llama.cpp's test-backend-ops:
// Linear, Embedding, RotaryEmbedding, KVCache, SwiGLUFeedForward, GroupedQueryAttention and
// LlamaBlock on the cuda backend, for T = float, __half and __nv_bfloat16, against the cpu
// backend in float (tests/cuda/cpu_reference.cpp) given the same T-rounded inputs and weights,
// plus a double loop for Linear. Thresholds: tolerance_cuda.hpp (nmse for one rounding,
// chain_nmse for modules that round intermediates). Outputs sit between poisoned guard regions.
//
// Attention shapes cover head_dim 64/96/128/256, GQA ratios 1/4/8 and MQA, prompts of 1, 7, 128,
// 513 and 4095 tokens, decode steps against caches of up to 4096 positions (the split-KV path),
// rewinds, and batch 1 and 4. Exit codes: 0 passed, 1 failed, 77 no CUDA device (skipped).
#include "cpu_reference.hpp"
#include "cuda_test_support.cuh"
#include "layer_values.cuh"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace lb = llamablocks;
using lb::index_t;
using lb::test::tolerance_cuda;
using namespace lb::test;

namespace llamablocks::test {
const char* cuda_backend_name();  // second_translation_unit.cu
}  // namespace llamablocks::test

namespace {

// ---------------------------------------------------------------------------------------------
// Linear: y = x Wᵀ against Linear<cpu, float> and a double loop.

template <class T>
void test_linear(lb::Context<lb::cuda>& ctx, std::mt19937& rng, index_t rows, index_t in,
                 index_t out) {
  const auto x = make_values<T>(rng, rows * in, 1.0f);
  const auto w = make_values<T>(rng, out * in, std::sqrt(3.0f / static_cast<float>(in)));
  lb::Linear<lb::cuda, T> linear(in, out);
  linear.weight().copy_from(lb::TensorView<const T, 2>(w.rounded.data(), {out, in}));
  GuardedBuffer<T> x_buffer(rows * in);
  GuardedBuffer<T> y_buffer(rows * out);
  upload(x_buffer.data(), x.rounded);
  linear.forward(ctx, lb::TensorView<const T, 3>(x_buffer.data(), {1, rows, in}),
                 lb::TensorView<T, 3>(y_buffer.data(), {1, rows, out}));
  ctx.synchronize();
  const std::string what = label<T>("Linear", "[" + std::to_string(rows) + ", " +
                                                  std::to_string(in) + "] -> " + std::to_string(out));
  const std::vector<double> actual = read_checked(what, y_buffer);

  std::vector<double> scalar(static_cast<std::size_t>(rows * out));
  for (index_t r = 0; r < rows; ++r)
    for (index_t o = 0; o < out; ++o) {
      double sum = 0;
      for (index_t i = 0; i < in; ++i)
        sum += static_cast<double>(x.exact[static_cast<std::size_t>(r * in + i)]) *
               w.exact[static_cast<std::size_t>(o * in + i)];
      scalar[static_cast<std::size_t>(r * out + o)] = sum;
    }
  expect_close(what + " vs double loop", actual, scalar, tolerance_cuda<T>::nmse);
  std::vector<float> cpu(static_cast<std::size_t>(rows * out));
  cpu_linear(x.exact.data(), w.exact.data(), cpu.data(), rows, in, out);
  expect_close(what + " vs Linear<cpu, float>", actual, wide(cpu), tolerance_cuda<T>::nmse);
}

// ---------------------------------------------------------------------------------------------
// Embedding: an exact row copy; a bad id throws and leaves the output untouched.

template <class T>
void test_embedding(lb::Context<lb::cuda>& ctx, std::mt19937& rng, index_t dim) {
  const index_t vocab = 1000;
  const index_t batch = 2;
  const index_t tokens = 5;
  const auto table = make_values<T>(rng, vocab * dim, 1.0f);
  lb::Embedding<lb::cuda, T> embedding(vocab, dim);
  embedding.weight().copy_from(lb::TensorView<const T, 2>(table.rounded.data(), {vocab, dim}));
  std::uniform_int_distribution<std::int32_t> id(0, static_cast<std::int32_t>(vocab - 1));
  std::vector<std::int32_t> ids(static_cast<std::size_t>(batch * tokens));
  for (auto& value : ids) value = id(rng);
  ids[0] = 0;
  ids[1] = static_cast<std::int32_t>(vocab - 1);
  lb::Tensor<std::int32_t, 2, lb::cuda> device_ids({batch, tokens});
  upload(device_ids.data(), ids);
  GuardedBuffer<T> out(batch * tokens * dim);
  const lb::TensorView<T, 3> out_view(out.data(), {batch, tokens, dim});
  embedding.forward(ctx, device_ids.cview(), out_view);
  const std::string what = label<T>("Embedding", "dim " + std::to_string(dim));
  const std::vector<double> actual = read_checked(what, out);
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < ids.size(); ++i)
    for (index_t j = 0; j < dim; ++j)
      if (actual[i * static_cast<std::size_t>(dim) + static_cast<std::size_t>(j)] !=
          table.exact[static_cast<std::size_t>(ids[i] * dim + j)])
        ++mismatches;
  std::printf("%s %s: %zu of %zu values differ from the table rows\n",
              mismatches == 0 ? "ok  " : "FAIL", what.c_str(), mismatches, actual.size());
  if (mismatches != 0) ++failures;

  // An id past the vocabulary: range_error naming it and its position; out stays as it was.
  GuardedBuffer<T> untouched(batch * tokens * dim);
  ids[static_cast<std::size_t>(1 * tokens + 3)] = static_cast<std::int32_t>(vocab);
  ids[static_cast<std::size_t>(1 * tokens + 4)] = -1;
  upload(device_ids.data(), ids);
  std::string message;
  EXPECT(throws_with<lb::range_error>(
      [&] {
        embedding.forward(ctx, device_ids.cview(),
                          lb::TensorView<T, 3>(untouched.data(), {batch, tokens, dim}));
      },
      "token id 1000 at [1, 3]", &message));
  std::printf("     bad id message: %s\n", message.c_str());
  std::vector<T> after;
  EXPECT(untouched.read(after));
  std::vector<unsigned char> bytes(after.size() * sizeof(T));
  std::memcpy(bytes.data(), after.data(), bytes.size());
  bool still_poisoned = true;
  for (unsigned char byte : bytes) still_poisoned = still_poisoned && byte == poison;
  EXPECT(still_poisoned);
}

// ---------------------------------------------------------------------------------------------
// RotaryEmbedding: against RotaryEmbedding<cpu, float>; backward undoes apply.

template <class T>
void test_rope(lb::Context<lb::cuda>& ctx, std::mt19937& rng, index_t head_dim, index_t start_pos,
               bool half_split, double llama3_factor) {
  const index_t batch = 2;
  const index_t tokens = 7;
  const index_t heads = 3;
  const index_t max_seq_len = 4096;
  const index_t count = batch * tokens * heads * head_dim;
  const auto x = make_values<T>(rng, count, 2.0f);
  const lb::RopeScaling scaling =
      llama3_factor > 0 ? lb::RopeScaling::llama3(llama3_factor) : lb::RopeScaling{};
  const double theta = llama3_factor > 0 ? 500000.0 : 10000.0;
  lb::RotaryEmbedding<lb::cuda, T> rope(
      head_dim, max_seq_len, theta, half_split ? lb::RopeLayout::half_split : lb::RopeLayout::interleaved,
      scaling);
  GuardedBuffer<T> buffer(count);
  upload(buffer.data(), x.rounded);
  const lb::TensorView<T, 4> view(buffer.data(), {batch, tokens, heads, head_dim});
  rope.apply(ctx, view, start_pos);
  ctx.synchronize();
  const std::string what = label<T>(
      "RotaryEmbedding", "head_dim " + std::to_string(head_dim) + " at " + std::to_string(start_pos) +
                             (half_split ? " half_split" : " interleaved") +
                             (llama3_factor > 0 ? " llama3" : ""));
  const std::vector<double> actual = read_checked(what, buffer);
  std::vector<float> cpu = x.exact;
  cpu_rope(cpu.data(), batch, tokens, heads, head_dim, start_pos, max_seq_len, theta, half_split,
           llama3_factor);
  expect_close(what + " vs RotaryEmbedding<cpu, float>", actual, wide(cpu), tolerance_cuda<T>::nmse);

  rope.backward(ctx, view, start_pos);
  ctx.synchronize();
  expect_close(what + " backward(apply(x)) vs x", read_checked(what, buffer), wide(x.exact),
               tolerance_cuda<T>::chain_nmse);

  EXPECT(throws_with<lb::range_error>([&] { rope.apply(ctx, view, max_seq_len - tokens + 1); },
                                      "exceeds max_seq_len"));
}

// ---------------------------------------------------------------------------------------------
// KVCache: the bytes land at [b, h, position, :]; rewinds overwrite; errors change nothing.

template <class T>
void test_kv_cache(lb::Context<lb::cuda>& ctx, std::mt19937& rng, index_t head_dim) {
  const index_t batch = 2;
  const index_t heads = 3;
  const index_t max_seq_len = 9;
  lb::KVCache<lb::cuda, T> cache(batch, heads, head_dim, max_seq_len);
  const std::size_t cache_count = static_cast<std::size_t>(batch * heads * max_seq_len * head_dim);
  std::vector<float> expected_keys(cache_count, 0.0f);
  std::vector<float> expected_values(cache_count, 0.0f);
  auto write = [&](index_t start_pos, index_t tokens) {
    const index_t count = batch * tokens * heads * head_dim;
    const auto k = make_values<T>(rng, count, 4.0f);
    const auto v = make_values<T>(rng, count, 4.0f);
    lb::Tensor<T, 4, lb::cuda> k_device({batch, tokens, heads, head_dim});
    lb::Tensor<T, 4, lb::cuda> v_device({batch, tokens, heads, head_dim});
    upload(k_device.data(), k.rounded);
    upload(v_device.data(), v.rounded);
    cache.write(ctx, start_pos, k_device.cview(), v_device.cview());
    for (index_t b = 0; b < batch; ++b)
      for (index_t t = 0; t < tokens; ++t)
        for (index_t h = 0; h < heads; ++h)
          for (index_t e = 0; e < head_dim; ++e) {
            const auto source = static_cast<std::size_t>(((b * tokens + t) * heads + h) * head_dim + e);
            const auto target =
                static_cast<std::size_t>(((b * heads + h) * max_seq_len + start_pos + t) * head_dim + e);
            expected_keys[target] = k.exact[source];
            expected_values[target] = v.exact[source];
          }
  };
  write(0, 5);
  write(5, 2);
  write(3, 1);  // rewind: positions 3 .. and length 4
  EXPECT(cache.length() == 4);
  std::vector<T> keys(cache_count);
  std::vector<T> values(cache_count);
  lb::detail::allocator<lb::cuda>::copy_to_host(keys.data(), cache.keys().data(), cache_count * sizeof(T));
  lb::detail::allocator<lb::cuda>::copy_to_host(values.data(), cache.values().data(), cache_count * sizeof(T));
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < cache_count; ++i) {
    // Positions written (all 7, the rewind only changed position 3) hold exactly what was written.
    const auto position = static_cast<index_t>(i / static_cast<std::size_t>(head_dim)) % max_seq_len;
    if (position >= 7) continue;
    if (lb::detail::to_float(keys[i]) != expected_keys[i]) ++mismatches;
    if (lb::detail::to_float(values[i]) != expected_values[i]) ++mismatches;
  }
  const std::string what = label<T>("KVCache", "head_dim " + std::to_string(head_dim));
  std::printf("%s %s: %zu mismatching elements after writes at 0, 5 and a rewind to 3\n",
              mismatches == 0 ? "ok  " : "FAIL", what.c_str(), mismatches);
  if (mismatches != 0) ++failures;

  lb::Tensor<T, 4, lb::cuda> one({batch, 1, heads, head_dim});
  EXPECT(throws_with<lb::range_error>([&] { cache.write(ctx, 5, one.cview(), one.cview()); },
                                      "must be in [0, length 4]"));
  lb::Tensor<T, 4, lb::cuda> many({batch, 6, heads, head_dim});
  EXPECT(throws_with<lb::range_error>([&] { cache.write(ctx, 4, many.cview(), many.cview()); },
                                      "exceeds max_seq_len"));
  EXPECT(cache.length() == 4);
}

// ---------------------------------------------------------------------------------------------
// greedy_tokens: each row's argmax as Sampler picks it (lowest id on ties), NaN / +inf / all −inf
// rows flagged.

template <class T>
void test_greedy(lb::Context<lb::cuda>& ctx, std::mt19937& rng, index_t vocab) {
  const index_t batch = 6;
  auto logits = make_values<T>(rng, batch * vocab, 8.0f);
  auto set = [&](index_t row, index_t i, float value) {
    const auto at = static_cast<std::size_t>(row * vocab + i);
    logits.rounded[at] = lb::detail::from_float<T>(value);
    logits.exact[at] = lb::detail::to_float(logits.rounded[at]);
  };
  set(1, vocab - 1, 100.0f);                        // the maximum at the last id
  set(2, 3, 100.0f);                                // a tie: the lower id wins
  set(2, vocab - 2, 100.0f);
  for (index_t i = 0; i < vocab; ++i) set(3, i, -INFINITY);
  set(4, vocab / 2, NAN);
  for (index_t i = 0; i < vocab; ++i) set(5, i, i % 3 == 0 ? -INFINITY : -50.0f);  // -inf masks
  lb::Tensor<T, 2, lb::cuda> device_logits({batch, vocab});
  upload(device_logits.data(), logits.rounded);
  GuardedBuffer<std::int32_t> ids(batch);
  lb::greedy_tokens<T>(ctx, device_logits.cview(), lb::TensorView<std::int32_t, 1>(ids.data(), {batch}));
  ctx.synchronize();
  std::vector<std::int32_t> got;
  const std::string what = label<T>("greedy_tokens", "vocab " + std::to_string(vocab));
  EXPECT(ids.read(got));
  std::vector<std::int32_t> expected(static_cast<std::size_t>(batch));
  for (index_t row = 0; row < batch; ++row) {
    const float* values = logits.exact.data() + row * vocab;
    std::int32_t best = 0;
    bool bad = false;
    for (index_t i = 0; i < vocab; ++i) {
      bad = bad || std::isnan(values[i]) || values[i] == INFINITY;
      if (values[i] > values[best]) best = static_cast<std::int32_t>(i);
    }
    expected[static_cast<std::size_t>(row)] =
        bad ? lb::greedy_bad_logit : values[best] == -INFINITY ? lb::greedy_no_finite_maximum : best;
  }
  EXPECT(expected[1] == vocab - 1 && expected[2] == 3 && expected[5] == 1);
  std::printf("%s %s: ids", got == expected ? "ok  " : "FAIL", what.c_str());
  for (std::size_t i = 0; i < got.size(); ++i) std::printf(" %d (%d)", got[i], expected[i]);
  std::printf("\n");
  if (got != expected) ++failures;
}

// ---------------------------------------------------------------------------------------------
// SwiGLUFeedForward, GroupedQueryAttention and LlamaBlock against their cpu twins.

std::string describe(const LayerShape& s, const std::vector<Step>& steps) {
  std::string text = "batch " + std::to_string(s.batch) + ", heads " + std::to_string(s.n_heads) +
                     "/" + std::to_string(s.n_kv_heads) + ", head_dim " + std::to_string(s.head_dim) +
                     ", steps";
  for (const auto& [start, tokens] : steps)
    text += " " + std::to_string(tokens) + "@" + std::to_string(start);
  return text;
}

template <class T>
void test_swiglu(lb::Context<lb::cuda>& ctx, std::mt19937& rng, index_t rows) {
  const LayerShape s{1, 256, 4, 4, 64, 688, 16, 10000.0, false};
  const Layer<T> layer(rng, s);
  lb::SwiGLUFeedForward<lb::cuda, T> feed_forward(s.dim, s.ffn_hidden_dim);
  layer.load_feed_forward(feed_forward, s);
  const auto x = make_values<T>(rng, rows * s.dim, 1.0f);
  GuardedBuffer<T> x_buffer(rows * s.dim);
  GuardedBuffer<T> out(rows * s.dim);
  upload(x_buffer.data(), x.rounded);
  feed_forward.forward(ctx, lb::TensorView<const T, 3>(x_buffer.data(), {1, rows, s.dim}),
                       lb::TensorView<T, 3>(out.data(), {1, rows, s.dim}));
  ctx.synchronize();
  const std::string what = label<T>("SwiGLUFeedForward", std::to_string(rows) + " rows");
  const std::vector<double> actual = read_checked(what, out);
  std::vector<float> cpu(static_cast<std::size_t>(rows * s.dim));
  cpu_swiglu(s, layer.host(), rows, x.exact.data(), cpu.data());
  expect_close(what + " vs SwiGLUFeedForward<cpu, float>", actual, wide(cpu),
               tolerance_cuda<T>::chain_nmse);
}

/// Runs `steps` through GroupedQueryAttention<cuda, T> (Block false) or LlamaBlock<cuda, T> (Block
/// true) and the cpu twin, comparing every step's output.
template <class T, bool Block>
void test_layer(lb::Context<lb::cuda>& ctx, std::mt19937& rng, const LayerShape& s,
                const std::vector<Step>& steps) {
  const Layer<T> layer(rng, s);
  const lb::ModelConfig config = config_of(s);
  index_t total_tokens = 0;
  for (const auto& step : steps) total_tokens += step.second;
  const auto x = make_values<T>(rng, s.batch * total_tokens * s.dim, 1.0f);
  std::vector<float> cpu(x.exact.size());
  if (Block)
    cpu_llama_block_steps(s, layer.host(), steps, x.exact.data(), cpu.data());
  else
    cpu_attention_steps(s, layer.host(), steps, x.exact.data(), cpu.data());

  lb::GroupedQueryAttention<lb::cuda, T> attention(config);
  lb::LlamaBlock<lb::cuda, T> block(config);
  if (Block) {
    layer.load_attention(block.attention(), s);
    layer.load_feed_forward(block.feed_forward(), s);
    block.attention_norm().weight().copy_from(
        lb::TensorView<const T, 1>(layer.attention_norm.rounded.data(), {s.dim}));
    block.ffn_norm().weight().copy_from(
        lb::TensorView<const T, 1>(layer.ffn_norm.rounded.data(), {s.dim}));
  } else {
    layer.load_attention(attention, s);
  }
  lb::KVCache<lb::cuda, T> cache(config, s.batch);
  const std::string what = label<T>(Block ? "LlamaBlock" : "GroupedQueryAttention", describe(s, steps));
  std::size_t offset = 0;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    const auto [start_pos, tokens] = steps[i];
    const index_t count = s.batch * tokens * s.dim;
    const std::vector<T> step_x(x.rounded.begin() + static_cast<std::ptrdiff_t>(offset),
                                x.rounded.begin() + static_cast<std::ptrdiff_t>(offset) + count);
    GuardedBuffer<T> x_buffer(count);
    GuardedBuffer<T> out(count);
    upload(x_buffer.data(), step_x);
    if (Block) {
      upload(out.data(), step_x);  // the residual stream, updated in place
      block.forward(ctx, lb::TensorView<T, 3>(out.data(), {s.batch, tokens, s.dim}), cache, start_pos);
    } else {
      attention.forward(ctx, lb::TensorView<const T, 3>(x_buffer.data(), {s.batch, tokens, s.dim}),
                        cache, start_pos, lb::TensorView<T, 3>(out.data(), {s.batch, tokens, s.dim}));
    }
    ctx.synchronize();
    EXPECT(cache.length() == start_pos + tokens);
    const std::string step_what = what + " step " + std::to_string(i);
    const std::vector<double> actual = read_checked(step_what, out);
    const std::vector<double> reference(cpu.begin() + static_cast<std::ptrdiff_t>(offset),
                                        cpu.begin() + static_cast<std::ptrdiff_t>(offset) + count);
    expect_close(step_what + " vs cpu", actual, reference, tolerance_cuda<T>::chain_nmse);
    offset += static_cast<std::size_t>(count);
  }

  if (!Block) {
    // A start past the cache length throws and changes neither the cache nor out.
    const index_t length = cache.length();
    GuardedBuffer<T> x_buffer(s.batch * s.dim);
    GuardedBuffer<T> out(s.batch * s.dim);
    EXPECT(throws_with<lb::range_error>(
        [&] {
          attention.forward(ctx, lb::TensorView<const T, 3>(x_buffer.data(), {s.batch, 1, s.dim}),
                            cache, length + 1, lb::TensorView<T, 3>(out.data(), {s.batch, 1, s.dim}));
        },
        "cache length"));
    EXPECT(cache.length() == length);
  }
}

template <class T>
void test_all(lb::Context<lb::cuda>& ctx, std::mt19937& rng) {
  for (index_t rows : {1, 7, 130}) {
    test_linear<T>(ctx, rng, rows, 257, 100);
    test_linear<T>(ctx, rng, rows, 512, 4096);
  }
  test_embedding<T>(ctx, rng, 64);
  test_embedding<T>(ctx, rng, 67);
  test_rope<T>(ctx, rng, 64, 0, false, 0.0);
  test_rope<T>(ctx, rng, 128, 100, true, 0.0);
  test_rope<T>(ctx, rng, 128, 3000, false, 8.0);
  test_kv_cache<T>(ctx, rng, 128);
  test_kv_cache<T>(ctx, rng, 6);
  for (index_t rows : {1, 7, 130}) test_swiglu<T>(ctx, rng, rows);
  test_greedy<T>(ctx, rng, 32000);
  test_greedy<T>(ctx, rng, 37);

  //            batch dim  heads kv  head_dim ffn  max_seq theta   half_split
  const LayerShape mha{1, 256, 4, 4, 64, 688, 64, 10000.0, false};
  const LayerShape gqa4{4, 512, 8, 2, 128, 1376, 256, 10000.0, true};
  const LayerShape gqa8{1, 256, 16, 2, 128, 688, 1024, 500000.0, false};
  const LayerShape mqa{1, 256, 8, 1, 64, 688, 4096, 10000.0, false};
  const LayerShape wide_batch{4, 512, 32, 8, 128, 1376, 2048, 10000.0, false};
  const LayerShape odd_head{2, 192, 4, 2, 96, 512, 128, 10000.0, true};
  const LayerShape big_head{1, 256, 4, 1, 256, 688, 256, 10000.0, false};
  test_layer<T, false>(ctx, rng, mha, {{0, 7}, {7, 1}, {8, 1}, {4, 3}});
  test_layer<T, false>(ctx, rng, gqa4, {{0, 128}, {128, 1}, {129, 1}});
  test_layer<T, false>(ctx, rng, gqa8, {{0, 513}, {513, 1}, {514, 7}});
  test_layer<T, false>(ctx, rng, mqa, {{0, 4095}, {4095, 1}});
  test_layer<T, false>(ctx, rng, wide_batch, {{0, 1000}, {1000, 1}, {1001, 1}});
  test_layer<T, false>(ctx, rng, odd_head, {{0, 33}, {33, 1}});
  test_layer<T, false>(ctx, rng, big_head, {{0, 70}, {70, 1}});
  test_layer<T, true>(ctx, rng, mha, {{0, 7}, {7, 1}, {8, 1}});
  test_layer<T, true>(ctx, rng, gqa4, {{0, 130}, {130, 1}});
}

}  // namespace

int main() {
  return run_cuda_test([](lb::Context<lb::cuda>& ctx) {
    std::mt19937 rng(20261123);
    EXPECT(std::string(cuda_backend_name()) == "cuda");
    test_all<float>(ctx, rng);
    test_all<__half>(ctx, rng);
    test_all<__nv_bfloat16>(ctx, rng);
  });
}
