// Cross-backend test of the cuda backward passes [cuda]: every gradient of RMSNorm, Linear,
// Embedding, softmax cross-entropy, SwiGLUFeedForward, GroupedQueryAttention and LlamaBlock on the
// cuda backend (inputs and weights) against the cpu backend's backward in float
// (tests/cuda/cpu_backward_reference.cpp) given the same T-rounded inputs, weights and output
// gradients, for T = float, __half and __nv_bfloat16. The training forwards' outputs are compared
// too. Thresholds: tolerance_cuda.hpp (grad_nmse, grad_chain_nmse). Input gradients sit between
// poisoned guard regions, so an unwritten element or a write out of bounds fails; NaN never passes.
//
// Shapes: odd widths (7, 67, 173), head_dim 64 and 128, MHA, GQA 2 and 4, MQA, tokens 1, 7, 128
// and 257, batch 1 and 2. Also: accumulation (a second backward doubles the weight gradients),
// RMSNorm in place (d_x = d_out), cross-entropy in place, and the error paths, each checked to leave
// the gradients and outputs as they were. Exit codes: 0 passed, 1 failed, 77 no CUDA device.
#include "cpu_backward_reference.hpp"
#include "cpu_reference.hpp"
#include "cuda_test_support.cuh"
#include "layer_values.cuh"

#include <algorithm>
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

namespace {

using lb::cuda;

template <class T, int Rank>
std::vector<double> read_grad(const lb::Parameter<T, Rank, cuda>& parameter) {
  return read_device(parameter.grad().data(), parameter.size());
}

template <class T>
lb::Tensor<T, 1, cuda> to_device(const std::vector<T>& host) {
  lb::Tensor<T, 1, cuda> tensor(lb::Shape<1>{static_cast<index_t>(host.size())});
  upload(tensor.data(), host);
  return tensor;
}

/// expect_close against the float reference.
void expect_gradient(const std::string& what, const std::vector<double>& actual,
                     const std::vector<float>& reference, double threshold) {
  expect_close(what, actual, wide(reference), threshold);
}

/// The q and k gradients of one-token sequences are zero: one key, P = 1, dS = P·(dP − dO·O) with
/// O = V. The cuda kernels compute dP and dO·O with the same sums and give exact zeros; the cpu's
/// GEMM and dot product may differ in the last bit. Both must stay below 1e-5.
void expect_near_zero(const std::string& what, const std::vector<double>& actual,
                      const std::vector<float>& reference) {
  double actual_max = 0;
  double reference_max = 0;
  bool finite = true;
  for (const double value : actual) {
    finite = finite && std::isfinite(value);
    actual_max = std::max(actual_max, std::fabs(value));
  }
  for (const float value : reference) reference_max = std::max(reference_max, std::fabs(double(value)));
  const bool pass = finite && actual.size() == reference.size() && actual_max <= 1e-5 &&
                    reference_max <= 1e-5;
  std::printf("%s %s: zero for one token, max |actual| %.3g, max |reference| %.3g%s\n",
              pass ? "ok  " : "FAIL", what.c_str(), actual_max, reference_max,
              finite ? "" : ", NOT FINITE");
  if (!pass) ++failures;
}

/// d_wq and d_wk: NMSE, or near zero for one-token sequences.
void expect_qk_gradient(const std::string& what, const std::vector<double>& actual,
                        const std::vector<float>& reference, double threshold, index_t tokens) {
  if (tokens == 1)
    expect_near_zero(what, actual, reference);
  else
    expect_gradient(what, actual, reference, threshold);
}

template <class T>
void expect_unchanged(const std::string& what, const std::vector<double>& before,
                      const std::vector<double>& after) {
  const bool same = before == after;
  std::printf("%s %s: %s\n", same ? "ok  " : "FAIL", what.c_str(),
              same ? "unchanged" : "CHANGED by a call that threw");
  if (!same) ++failures;
}

std::string shape_text(std::initializer_list<index_t> extents) {
  std::string text = "[";
  for (const index_t extent : extents) text += (text.size() > 1 ? ", " : "") + std::to_string(extent);
  return text + "]";
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: d_x and d_γ; in place; accumulation; errors.

template <class T>
void test_rms_norm(lb::Context<cuda>& ctx, std::mt19937& rng, index_t rows, index_t dim) {
  const double eps = 1e-5;
  const auto x = make_values<T>(rng, rows * dim, 2.0f);
  const auto gain = Layer<T>::gains(rng, dim);
  const auto d_out = make_values<T>(rng, rows * dim, 1.0f);
  lb::RMSNorm<cuda, T> norm(dim, eps);
  norm.weight().copy_from(lb::TensorView<const T, 1>(gain.rounded.data(), {dim}));
  norm.enable_grad();
  typename lb::RMSNorm<cuda, T>::Activations saved;
  auto x_device = to_device(x.rounded);
  auto d_out_device = to_device(d_out.rounded);
  GuardedBuffer<T> out(rows * dim);
  GuardedBuffer<T> d_x(rows * dim);
  const lb::Shape<3> io{1, rows, dim};
  const lb::TensorView<const T, 3> x_view(x_device.data(), io);
  const lb::TensorView<const T, 3> d_out_view(d_out_device.data(), io);
  norm.forward(ctx, x_view, lb::TensorView<T, 3>(out.data(), io), saved);
  norm.backward(ctx, saved, d_out_view, lb::TensorView<T, 3>(d_x.data(), io));
  ctx.synchronize();

  std::vector<float> out_ref(static_cast<std::size_t>(rows * dim));
  std::vector<float> d_x_ref(out_ref.size());
  std::vector<float> d_gain_ref(static_cast<std::size_t>(dim));
  cpu_rms_norm(x.exact.data(), gain.exact.data(), out_ref.data(), 1, rows, dim, eps);
  cpu_rms_norm_backward(x.exact.data(), gain.exact.data(), d_out.exact.data(), d_x_ref.data(),
                        d_gain_ref.data(), rows, dim, eps);
  const std::string what = label<T>("RMSNorm", shape_text({rows, dim}));
  expect_close(what + " training forward", read_checked(what, out), wide(out_ref),
               tolerance_cuda<T>::nmse);
  expect_gradient(what + " d_x", read_checked(what, d_x), d_x_ref, tolerance_cuda<T>::grad_nmse);
  expect_gradient(what + " d_weight", read_grad(norm.weight()), d_gain_ref,
                  tolerance_cuda<T>::grad_nmse);

  // In place (d_x = d_out), accumulating: d_weight becomes twice the reference.
  auto in_place = to_device(d_out.rounded);
  const lb::TensorView<T, 3> in_place_view(in_place.data(), io);
  norm.backward(ctx, saved, in_place_view, in_place_view);
  ctx.synchronize();
  std::vector<float> twice(d_gain_ref);
  for (float& value : twice) value *= 2.0f;
  expect_gradient(what + " d_x in place", read_device(in_place.data(), rows * dim), d_x_ref,
                  tolerance_cuda<T>::grad_nmse);
  expect_gradient(what + " d_weight after two backward passes", read_grad(norm.weight()), twice,
                  tolerance_cuda<T>::grad_nmse);

  // Errors leave the gradient and d_x as they were.
  const std::vector<double> before = read_grad(norm.weight());
  typename lb::RMSNorm<cuda, T>::Activations empty;
  GuardedBuffer<T> untouched(rows * dim);
  const lb::TensorView<T, 3> untouched_view(untouched.data(), io);
  EXPECT(throws_with<lb::config_error>([&] { norm.backward(ctx, empty, d_out_view, untouched_view); },
                                       "no training forward"));
  lb::Tensor<T, 3, cuda> wrong({1, rows, dim + 1});
  EXPECT(throws_with<lb::shape_error>(
      [&] { norm.backward(ctx, saved, wrong.cview(), untouched_view); }, "d_out has shape"));
  lb::RMSNorm<cuda, T> no_grad(dim, eps);
  EXPECT(throws_with<lb::config_error>(
      [&] { no_grad.backward(ctx, saved, d_out_view, untouched_view); }, "has no gradient"));
  expect_unchanged<T>(what + " d_weight after refused calls", before, read_grad(norm.weight()));
  std::vector<T> after;
  EXPECT(untouched.read(after));
  bool poisoned = true;
  for (const T value : after) poisoned = poisoned && std::isnan(lb::detail::to_float(value));
  EXPECT(poisoned);
}

// ---------------------------------------------------------------------------------------------
// Linear: d_x = d_y W and d_W += d_yᵀ x.

template <class T>
void test_linear(lb::Context<cuda>& ctx, std::mt19937& rng, index_t rows, index_t in, index_t out) {
  const auto x = make_values<T>(rng, rows * in, 1.0f);
  const auto w = make_values<T>(rng, out * in, Layer<T>::bound(in));
  const auto d_out = make_values<T>(rng, rows * out, 1.0f);
  lb::Linear<cuda, T> linear(in, out);
  linear.weight().copy_from(lb::TensorView<const T, 2>(w.rounded.data(), {out, in}));
  linear.enable_grad();
  typename lb::Linear<cuda, T>::Activations saved;
  auto x_device = to_device(x.rounded);
  auto d_out_device = to_device(d_out.rounded);
  GuardedBuffer<T> y(rows * out);
  GuardedBuffer<T> d_x(rows * in);
  const lb::TensorView<const T, 3> d_out_view(d_out_device.data(), {1, rows, out});
  linear.forward(ctx, lb::TensorView<const T, 3>(x_device.data(), {1, rows, in}),
                 lb::TensorView<T, 3>(y.data(), {1, rows, out}), saved);
  linear.backward(ctx, saved, d_out_view, lb::TensorView<T, 3>(d_x.data(), {1, rows, in}));
  ctx.synchronize();

  std::vector<float> y_ref(static_cast<std::size_t>(rows * out));
  std::vector<float> d_x_ref(static_cast<std::size_t>(rows * in));
  std::vector<float> d_w_ref(static_cast<std::size_t>(out * in));
  cpu_linear(x.exact.data(), w.exact.data(), y_ref.data(), rows, in, out);
  cpu_linear_backward(x.exact.data(), w.exact.data(), d_out.exact.data(), d_x_ref.data(),
                      d_w_ref.data(), rows, in, out);
  const std::string what = label<T>("Linear", shape_text({rows, in}) + " -> " + std::to_string(out));
  expect_close(what + " training forward", read_checked(what, y), wide(y_ref), tolerance_cuda<T>::nmse);
  expect_gradient(what + " d_x", read_checked(what, d_x), d_x_ref, tolerance_cuda<T>::grad_nmse);
  expect_gradient(what + " d_weight", read_grad(linear.weight()), d_w_ref, tolerance_cuda<T>::grad_nmse);

  // A second pass accumulates; a refused one changes nothing.
  linear.backward(ctx, saved, d_out_view, lb::TensorView<T, 3>(d_x.data(), {1, rows, in}));
  ctx.synchronize();
  for (float& value : d_w_ref) value *= 2.0f;
  const std::vector<double> twice = read_grad(linear.weight());
  expect_gradient(what + " d_weight after two backward passes", twice, d_w_ref,
                  tolerance_cuda<T>::grad_nmse);
  lb::Tensor<T, 3, cuda> wrong({1, rows, out + 1});
  EXPECT(throws_with<lb::shape_error>(
      [&] {
        linear.backward(ctx, saved, wrong.cview(), lb::TensorView<T, 3>(d_x.data(), {1, rows, in}));
      },
      "d_out has shape"));
  lb::Linear<cuda, T> no_grad(in, out);
  EXPECT(throws_with<lb::config_error>(
      [&] {
        no_grad.backward(ctx, saved, d_out_view, lb::TensorView<T, 3>(d_x.data(), {1, rows, in}));
      },
      "has no gradient"));
  expect_unchanged<T>(what + " d_weight after refused calls", twice, read_grad(linear.weight()));
}

// ---------------------------------------------------------------------------------------------
// Embedding: the scatter-add of d_out rows onto their ids (repeated ids included).

template <class T>
void test_embedding(lb::Context<cuda>& ctx, std::mt19937& rng, index_t vocab, index_t dim,
                    index_t batch, index_t tokens) {
  const index_t rows = batch * tokens;
  lb::Embedding<cuda, T> embedding(vocab, dim);
  embedding.enable_grad();
  std::uniform_int_distribution<std::int32_t> id(0, static_cast<std::int32_t>(vocab - 1));
  std::vector<std::int32_t> ids(static_cast<std::size_t>(rows));
  for (auto& value : ids) value = id(rng);
  ids[0] = 0;
  ids[static_cast<std::size_t>(rows - 1)] = static_cast<std::int32_t>(vocab - 1);
  if (rows > 2) ids[1] = ids[static_cast<std::size_t>(rows - 1)];  // a repeated id
  const auto d_out = make_values<T>(rng, rows * dim, 1.0f);
  lb::Tensor<std::int32_t, 2, cuda> ids_device({batch, tokens});
  upload(ids_device.data(), ids);
  auto d_out_device = to_device(d_out.rounded);
  lb::Tensor<T, 3, cuda> out({batch, tokens, dim});
  typename lb::Embedding<cuda, T>::Activations saved;
  embedding.forward(ctx, ids_device.cview(), out.view(), saved);
  const lb::TensorView<const T, 3> d_out_view(d_out_device.data(), {batch, tokens, dim});
  embedding.backward(ctx, saved, d_out_view);
  std::vector<float> d_table_ref(static_cast<std::size_t>(vocab * dim));
  cpu_embedding_backward(ids.data(), d_out.exact.data(), d_table_ref.data(), rows, vocab, dim);
  const std::string what = label<T>("Embedding", "vocab " + std::to_string(vocab) + ", dim " +
                                                     std::to_string(dim) + ", " +
                                                     std::to_string(rows) + " ids");
  const std::vector<double> d_table = read_grad(embedding.weight());
  expect_gradient(what + " d_weight", d_table, d_table_ref, tolerance_cuda<T>::grad_nmse);
  std::size_t touched = 0;  // rows no id names stay exactly zero
  for (index_t v = 0; v < vocab; ++v) {
    const bool named = std::find(ids.begin(), ids.end(), static_cast<std::int32_t>(v)) != ids.end();
    for (index_t j = 0; j < dim; ++j)
      if (!named && d_table[static_cast<std::size_t>(v * dim + j)] != 0.0) ++touched;
  }
  EXPECT(touched == 0);

  // Ids saved by a larger Embedding are outside this table: range_error, gradient unchanged.
  lb::Embedding<cuda, T> larger(vocab + 5, dim);
  std::vector<std::int32_t> large_ids(ids);
  large_ids[static_cast<std::size_t>(rows / 2)] = static_cast<std::int32_t>(vocab + 2);
  upload(ids_device.data(), large_ids);
  typename lb::Embedding<cuda, T>::Activations large_saved;
  larger.forward(ctx, ids_device.cview(), out.view(), large_saved);
  std::string message;
  EXPECT(throws_with<lb::range_error>([&] { embedding.backward(ctx, large_saved, d_out_view); },
                                      "outside the vocabulary", &message));
  std::printf("     bad id message: %s\n", message.c_str());
  expect_unchanged<T>(what + " d_weight after a bad id", d_table, read_grad(embedding.weight()));
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy: the loss and d_logits in one pass; in place; a bad target.

template <class T>
void test_cross_entropy(lb::Context<cuda>& ctx, std::mt19937& rng, index_t rows, index_t vocab) {
  const auto logits = make_values<T>(rng, rows * vocab, 6.0f);
  std::uniform_int_distribution<std::int32_t> id(0, static_cast<std::int32_t>(vocab - 1));
  std::vector<std::int32_t> targets(static_cast<std::size_t>(rows));
  for (auto& value : targets) value = id(rng);
  targets[0] = static_cast<std::int32_t>(vocab - 1);
  auto logits_device = to_device(logits.rounded);
  lb::Tensor<std::int32_t, 1, cuda> targets_device({rows});
  upload(targets_device.data(), targets);
  GuardedBuffer<T> d_logits(rows * vocab);
  const lb::TensorView<const T, 2> logits_view(logits_device.data(), {rows, vocab});
  const double loss = lb::cross_entropy_backward<T>(ctx, logits_view, targets_device.cview(),
                                                    lb::TensorView<T, 2>(d_logits.data(), {rows, vocab}));
  const double loss_only = lb::cross_entropy<T>(ctx, logits_view, targets_device.cview());
  std::vector<float> d_logits_ref(static_cast<std::size_t>(rows * vocab));
  const double loss_ref = cpu_cross_entropy_backward(logits.exact.data(), targets.data(),
                                                     d_logits_ref.data(), rows, vocab);
  const std::string what = label<T>("cross_entropy_backward", shape_text({rows, vocab}));
  const bool loss_ok = std::isfinite(loss) && std::fabs(loss - loss_ref) <= 1e-5 * std::fabs(loss_ref) &&
                       loss_only == loss;
  std::printf("%s %s: loss %.9g, cpu %.9g, cross_entropy %.9g\n", loss_ok ? "ok  " : "FAIL",
              what.c_str(), loss, loss_ref, loss_only);
  if (!loss_ok) ++failures;
  expect_gradient(what + " d_logits", read_checked(what, d_logits), d_logits_ref,
                  tolerance_cuda<T>::grad_nmse);

  auto in_place = to_device(logits.rounded);
  const lb::TensorView<T, 2> in_place_view(in_place.data(), {rows, vocab});
  const double in_place_loss =
      lb::cross_entropy_backward<T>(ctx, lb::TensorView<const T, 2>(in_place_view),
                                    targets_device.cview(), in_place_view);
  EXPECT(in_place_loss == loss);
  expect_gradient(what + " d_logits in place", read_device(in_place.data(), rows * vocab),
                  d_logits_ref, tolerance_cuda<T>::grad_nmse);

  // A target outside the vocabulary: range_error naming it and its row, d_logits untouched.
  std::vector<std::int32_t> bad(targets);
  bad[static_cast<std::size_t>(rows - 1)] = static_cast<std::int32_t>(vocab);
  upload(targets_device.data(), bad);
  GuardedBuffer<T> untouched(rows * vocab);
  std::string message;
  EXPECT(throws_with<lb::range_error>(
      [&] {
        lb::cross_entropy_backward<T>(ctx, logits_view, targets_device.cview(),
                                      lb::TensorView<T, 2>(untouched.data(), {rows, vocab}));
      },
      ("target " + std::to_string(vocab) + " at row " + std::to_string(rows - 1)).c_str(), &message));
  std::printf("     bad target message: %s\n", message.c_str());
  std::vector<T> after;
  EXPECT(untouched.read(after));
  bool poisoned = true;
  for (const T value : after) poisoned = poisoned && std::isnan(lb::detail::to_float(value));
  EXPECT(poisoned);
}

// ---------------------------------------------------------------------------------------------
// SwiGLUFeedForward, GroupedQueryAttention and LlamaBlock against their cpu twins.

template <class T>
struct HostGradients {
  explicit HostGradients(const LayerShape& s)
      : wq(static_cast<std::size_t>(s.n_heads * s.head_dim * s.dim)),
        wk(static_cast<std::size_t>(s.n_kv_heads * s.head_dim * s.dim)),
        wv(wk.size()),
        wo(wq.size()),
        w1(static_cast<std::size_t>(s.ffn_hidden_dim * s.dim)),
        w2(w1.size()),
        w3(w1.size()),
        attention_norm(static_cast<std::size_t>(s.dim)),
        ffn_norm(attention_norm.size()) {}
  LayerGradients pointers() {
    return {wq.data(), wk.data(), wv.data(), wo.data(), w1.data(),
            w2.data(), w3.data(), attention_norm.data(), ffn_norm.data()};
  }
  std::vector<float> wq, wk, wv, wo, w1, w2, w3, attention_norm, ffn_norm;
};

std::string describe(const LayerShape& s, index_t tokens) {
  return "batch " + std::to_string(s.batch) + ", dim " + std::to_string(s.dim) + ", heads " +
         std::to_string(s.n_heads) + "/" + std::to_string(s.n_kv_heads) + ", head_dim " +
         std::to_string(s.head_dim) + ", tokens " + std::to_string(tokens);
}

template <class T>
void test_swiglu(lb::Context<cuda>& ctx, std::mt19937& rng, const LayerShape& s, index_t rows) {
  const Layer<T> layer(rng, s);
  lb::SwiGLUFeedForward<cuda, T> feed_forward(s.dim, s.ffn_hidden_dim);
  layer.load_feed_forward(feed_forward, s);
  feed_forward.enable_grad();
  const auto x = make_values<T>(rng, rows * s.dim, 1.0f);
  const auto d_out = make_values<T>(rng, rows * s.dim, 1.0f);
  auto x_device = to_device(x.rounded);
  auto d_out_device = to_device(d_out.rounded);
  GuardedBuffer<T> out(rows * s.dim);
  GuardedBuffer<T> d_x(rows * s.dim);
  const lb::Shape<3> io{1, rows, s.dim};
  typename lb::SwiGLUFeedForward<cuda, T>::Activations saved;
  feed_forward.forward(ctx, lb::TensorView<const T, 3>(x_device.data(), io),
                       lb::TensorView<T, 3>(out.data(), io), saved);
  feed_forward.backward(ctx, saved, lb::TensorView<const T, 3>(d_out_device.data(), io),
                        lb::TensorView<T, 3>(d_x.data(), io));
  ctx.synchronize();

  HostGradients<T> ref(s);
  std::vector<float> out_ref(static_cast<std::size_t>(rows * s.dim));
  std::vector<float> d_x_ref(out_ref.size());
  cpu_swiglu_backward(s, layer.host(), rows, x.exact.data(), d_out.exact.data(), out_ref.data(),
                      d_x_ref.data(), ref.pointers());
  const std::string what = label<T>("SwiGLUFeedForward", "dim " + std::to_string(s.dim) + ", ffn " +
                                                             std::to_string(s.ffn_hidden_dim) + ", " +
                                                             std::to_string(rows) + " rows");
  const double threshold = tolerance_cuda<T>::grad_chain_nmse;
  expect_close(what + " training forward", read_checked(what, out), wide(out_ref),
               tolerance_cuda<T>::chain_nmse);
  expect_gradient(what + " d_x", read_checked(what, d_x), d_x_ref, threshold);
  expect_gradient(what + " d_w1", read_grad(feed_forward.w1()), ref.w1, threshold);
  expect_gradient(what + " d_w2", read_grad(feed_forward.w2()), ref.w2, threshold);
  expect_gradient(what + " d_w3", read_grad(feed_forward.w3()), ref.w3, threshold);

  // d_x overlapping d_out is refused before any gradient changes.
  const std::vector<double> before = read_grad(feed_forward.w2());
  EXPECT(throws_with<lb::shape_error>(
      [&] {
        feed_forward.backward(ctx, saved, lb::TensorView<const T, 3>(d_out_device.data(), io),
                              lb::TensorView<T, 3>(d_out_device.data(), io));
      },
      "overlap"));
  expect_unchanged<T>(what + " d_w2 after a refused call", before, read_grad(feed_forward.w2()));
}

template <class T>
void test_attention(lb::Context<cuda>& ctx, std::mt19937& rng, const LayerShape& s, index_t tokens) {
  const Layer<T> layer(rng, s);
  lb::GroupedQueryAttention<cuda, T> attention(config_of(s));
  layer.load_attention(attention, s);
  attention.enable_grad();
  const index_t count = s.batch * tokens * s.dim;
  const auto x = make_values<T>(rng, count, 1.0f);
  const auto d_out = make_values<T>(rng, count, 1.0f);
  auto x_device = to_device(x.rounded);
  auto d_out_device = to_device(d_out.rounded);
  GuardedBuffer<T> out(count);
  GuardedBuffer<T> d_x(count);
  const lb::Shape<3> io{s.batch, tokens, s.dim};
  const lb::TensorView<const T, 3> d_out_view(d_out_device.data(), io);
  typename lb::GroupedQueryAttention<cuda, T>::Activations saved;
  attention.forward(ctx, lb::TensorView<const T, 3>(x_device.data(), io),
                    lb::TensorView<T, 3>(out.data(), io), saved);
  attention.backward(ctx, saved, d_out_view, lb::TensorView<T, 3>(d_x.data(), io));
  ctx.synchronize();

  HostGradients<T> ref(s);
  std::vector<float> out_ref(static_cast<std::size_t>(count));
  std::vector<float> d_x_ref(out_ref.size());
  cpu_attention_backward(s, layer.host(), tokens, x.exact.data(), d_out.exact.data(),
                         out_ref.data(), d_x_ref.data(), ref.pointers());
  const std::string what = label<T>("GroupedQueryAttention", describe(s, tokens));
  const double threshold = tolerance_cuda<T>::grad_chain_nmse;
  expect_close(what + " training forward", read_checked(what, out), wide(out_ref),
               tolerance_cuda<T>::chain_nmse);
  expect_gradient(what + " d_x", read_checked(what, d_x), d_x_ref, threshold);
  expect_qk_gradient(what + " d_wq", read_grad(attention.wq()), ref.wq, threshold, tokens);
  expect_qk_gradient(what + " d_wk", read_grad(attention.wk()), ref.wk, threshold, tokens);
  expect_gradient(what + " d_wv", read_grad(attention.wv()), ref.wv, threshold);
  expect_gradient(what + " d_wo", read_grad(attention.wo()), ref.wo, threshold);

  // Refused calls (activations of another size, a gradient of the wrong shape) change nothing.
  const std::vector<double> before = read_grad(attention.wo());
  lb::Tensor<T, 3, cuda> wrong({s.batch, tokens + 1, s.dim});
  EXPECT(throws_with<lb::shape_error>(
      [&] { attention.backward(ctx, saved, wrong.cview(), lb::TensorView<T, 3>(d_x.data(), io)); },
      "d_out has shape"));
  typename lb::GroupedQueryAttention<cuda, T>::Activations empty;
  EXPECT(throws_with<lb::config_error>(
      [&] { attention.backward(ctx, empty, d_out_view, lb::TensorView<T, 3>(d_x.data(), io)); },
      "no training forward"));
  expect_unchanged<T>(what + " d_wo after refused calls", before, read_grad(attention.wo()));
}

template <class T>
void test_llama_block(lb::Context<cuda>& ctx, std::mt19937& rng, const LayerShape& s, index_t tokens) {
  const Layer<T> layer(rng, s);
  lb::LlamaBlock<cuda, T> block(config_of(s));
  layer.load_attention(block.attention(), s);
  layer.load_feed_forward(block.feed_forward(), s);
  block.attention_norm().weight().copy_from(
      lb::TensorView<const T, 1>(layer.attention_norm.rounded.data(), {s.dim}));
  block.ffn_norm().weight().copy_from(lb::TensorView<const T, 1>(layer.ffn_norm.rounded.data(), {s.dim}));
  block.enable_grad();
  const index_t count = s.batch * tokens * s.dim;
  const auto x = make_values<T>(rng, count, 1.0f);
  const auto d_out = make_values<T>(rng, count, 1.0f);
  GuardedBuffer<T> residual(count);
  GuardedBuffer<T> grad(count);
  upload(residual.data(), x.rounded);
  upload(grad.data(), d_out.rounded);
  const lb::Shape<3> io{s.batch, tokens, s.dim};
  typename lb::LlamaBlock<cuda, T>::Activations saved;
  block.forward(ctx, lb::TensorView<T, 3>(residual.data(), io), saved);
  block.backward(ctx, saved, lb::TensorView<T, 3>(grad.data(), io));
  ctx.synchronize();

  HostGradients<T> ref(s);
  std::vector<float> out_ref(static_cast<std::size_t>(count));
  std::vector<float> d_x_ref(out_ref.size());
  cpu_llama_block_backward(s, layer.host(), tokens, x.exact.data(), d_out.exact.data(),
                           out_ref.data(), d_x_ref.data(), ref.pointers());
  const std::string what = label<T>("LlamaBlock", describe(s, tokens));
  const double threshold = tolerance_cuda<T>::grad_chain_nmse;
  expect_close(what + " training forward", read_checked(what, residual), wide(out_ref),
               tolerance_cuda<T>::chain_nmse);
  expect_gradient(what + " d_x", read_checked(what, grad), d_x_ref, threshold);
  expect_qk_gradient(what + " d_wq", read_grad(block.attention().wq()), ref.wq, threshold, tokens);
  expect_qk_gradient(what + " d_wk", read_grad(block.attention().wk()), ref.wk, threshold, tokens);
  expect_gradient(what + " d_wv", read_grad(block.attention().wv()), ref.wv, threshold);
  expect_gradient(what + " d_wo", read_grad(block.attention().wo()), ref.wo, threshold);
  expect_gradient(what + " d_w1", read_grad(block.feed_forward().w1()), ref.w1, threshold);
  expect_gradient(what + " d_w2", read_grad(block.feed_forward().w2()), ref.w2, threshold);
  expect_gradient(what + " d_w3", read_grad(block.feed_forward().w3()), ref.w3, threshold);
  expect_gradient(what + " d_attention_norm", read_grad(block.attention_norm().weight()),
                  ref.attention_norm, threshold);
  expect_gradient(what + " d_ffn_norm", read_grad(block.ffn_norm().weight()), ref.ffn_norm,
                  threshold);

  // A block whose attention cannot train leaves its feed-forward gradients untouched.
  lb::LlamaBlock<cuda, T> partial(config_of(s));
  partial.feed_forward().enable_grad();
  partial.ffn_norm().enable_grad();
  typename lb::LlamaBlock<cuda, T>::Activations partial_saved;
  upload(residual.data(), x.rounded);
  partial.forward(ctx, lb::TensorView<T, 3>(residual.data(), io), partial_saved);
  upload(grad.data(), d_out.rounded);
  EXPECT(throws_with<lb::config_error>(
      [&] { partial.backward(ctx, partial_saved, lb::TensorView<T, 3>(grad.data(), io)); },
      "attention_norm has no gradient"));
  const std::vector<double> w2 = read_grad(partial.feed_forward().w2());
  EXPECT(std::all_of(w2.begin(), w2.end(), [](double value) { return value == 0.0; }));
  expect_unchanged<T>(what + " grad after a refused call", widen(d_out.rounded),
                      read_device(grad.data(), count));
}

template <class T>
void test_all(lb::Context<cuda>& ctx, std::mt19937& rng) {
  test_rms_norm<T>(ctx, rng, 1, 7);
  test_rms_norm<T>(ctx, rng, 14, 67);
  test_rms_norm<T>(ctx, rng, 257, 256);
  test_rms_norm<T>(ctx, rng, 130, 4096);

  test_linear<T>(ctx, rng, 1, 67, 33);
  test_linear<T>(ctx, rng, 7, 257, 100);
  test_linear<T>(ctx, rng, 130, 512, 1000);

  test_embedding<T>(ctx, rng, 1000, 64, 2, 7);
  test_embedding<T>(ctx, rng, 1000, 67, 1, 1);
  test_embedding<T>(ctx, rng, 37, 130, 2, 257);  // every id many times

  test_cross_entropy<T>(ctx, rng, 1, 37);
  test_cross_entropy<T>(ctx, rng, 7, 1000);
  test_cross_entropy<T>(ctx, rng, 130, 32000);

  //                     batch dim heads kv head_dim ffn max_seq theta   half_split
  const LayerShape small{1, 67, 4, 4, 64, 173, 512, 10000.0, false};
  const LayerShape gqa2{2, 67, 4, 2, 64, 173, 512, 10000.0, true};
  const LayerShape gqa4{2, 256, 8, 2, 128, 688, 512, 10000.0, false};
  const LayerShape mqa{1, 130, 4, 1, 128, 344, 512, 500000.0, false};
  test_swiglu<T>(ctx, rng, small, 1);
  test_swiglu<T>(ctx, rng, small, 7);
  test_swiglu<T>(ctx, rng, gqa4, 257);

  for (const index_t tokens : {1, 7, 128}) test_attention<T>(ctx, rng, small, tokens);
  for (const index_t tokens : {7, 257}) test_attention<T>(ctx, rng, gqa2, tokens);
  for (const index_t tokens : {1, 128}) test_attention<T>(ctx, rng, gqa4, tokens);
  for (const index_t tokens : {7, 257}) test_attention<T>(ctx, rng, mqa, tokens);

  test_llama_block<T>(ctx, rng, small, 7);
  test_llama_block<T>(ctx, rng, gqa2, 128);
  test_llama_block<T>(ctx, rng, mqa, 1);
}

}  // namespace

int main() {
  return run_cuda_test([](lb::Context<cuda>& ctx) {
    std::mt19937 rng(20261207);
    test_all<float>(ctx, rng);
    test_all<__half>(ctx, rng);
    test_all<__nv_bfloat16>(ctx, rng);
  });
}
