// Backward passes of the cpu backend (training, issue 7) against central finite differences in
// double; the training forward against the inference forward; accumulation of parameter gradients;
// float against double; and the errors of misuse.
//
// Finite differences: every gradient is checked element by element against
//   (L(p + h) − L(p − h)) / 2h,   h = 1e-5,
// where L is a scalar loss built from the library's inference forward: Σ r ⊙ y with fixed random r
// (so dL/dy = r), or the cross-entropy itself. In double the truncation error is ~h²·|L'''| ≈ 1e-10
// and the rounding error ~1e-16·|L|/h ≈ 1e-11, so a correct gradient passes
//   NMSE ≤ 1e-12 (1e-6 relative RMS)  and  max |analytic − numeric| ≤ 1e-6 · max |numeric|
// with a wide margin, and a wrong term (a missing factor, a wrong sign, a transposed index) does not.
// The finite differences run the forward thousands of times, on one thread (`serial`): a second
// thread adds nothing to what they check, and on a loaded machine each parallel region may wait
// for a time slice. The gradients under test run on the test's own context, often two threads.
#include "support/helpers.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

using namespace llamablocks;
using Catch::Matchers::Contains;

namespace {

constexpr double fd_step = 1e-5;
constexpr double fd_relative_tolerance = 1e-6;

/// Central differences of loss() with respect to values[0 .. count), each restored afterwards.
template <class Loss>
std::vector<double> numeric_gradient(double* values, index_t count, Loss&& loss) {
  std::vector<double> gradient(static_cast<std::size_t>(count));
  for (index_t i = 0; i < count; ++i) {
    const double saved = values[i];
    values[i] = saved + fd_step;
    const double up = loss();
    values[i] = saved - fd_step;
    const double down = loss();
    values[i] = saved;
    gradient[static_cast<std::size_t>(i)] = (up - down) / (2 * fd_step);
  }
  return gradient;
}

/// The finite-difference criterion of the header comment.
void require_gradient(const char* what, const double* analytic, const std::vector<double>& numeric) {
  test::require_close(what, analytic, numeric.data(), numeric.size(),
                      fd_relative_tolerance * fd_relative_tolerance);
  double scale = 0;
  double worst = 0;
  std::size_t worst_index = 0;
  for (std::size_t i = 0; i < numeric.size(); ++i) {
    scale = std::max(scale, std::fabs(numeric[i]));
    const double error = std::fabs(analytic[i] - numeric[i]);
    if (error > worst) {
      worst = error;
      worst_index = i;
    }
  }
  INFO(what << ": worst element " << worst_index << ", analytic " << analytic[worst_index]
            << ", numeric " << numeric[worst_index] << ", scale " << scale);
  REQUIRE(worst <= fd_relative_tolerance * scale);
}

template <class T, int Rank>
void require_gradient(const char* what, const TensorView<T, Rank>& analytic,
                      const std::vector<double>& numeric) {
  REQUIRE(static_cast<std::size_t>(analytic.size()) == numeric.size());
  require_gradient(what, analytic.data(), numeric);
}

/// Σ r ⊙ y: a scalar loss whose gradient with respect to y is r.
template <class T, int Rank>
double weighted_sum(const TensorView<const T, Rank>& y, const Tensor<T, Rank>& r) {
  double sum = 0;
  for (index_t i = 0; i < y.size(); ++i)
    sum += static_cast<double>(y.data()[i]) * static_cast<double>(r.data()[i]);
  return sum;
}

template <class T, int Rank>
std::vector<double> copy_of(const TensorView<T, Rank>& view) {
  return std::vector<double>(view.data(), view.data() + view.size());
}

/// Elements of `view` equal to `expected` exactly (an untouched output or gradient).
template <class T, int Rank>
bool unchanged(const TensorView<T, Rank>& view, const std::vector<double>& expected) {
  return copy_of(view) == expected;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Linear

TEST_CASE("Linear backward matches finite differences", "[train][linear]") {
  const int threads = GENERATE(1, 2);
  Context<cpu> ctx(threads);
  Context<cpu> serial(1);  // for the finite differences
  Linear<cpu, double> linear(10, 7);
  test::randomize(linear.weight(), 1, 0.5);
  auto x = test::random_tensor<double, 3>({2, 3, 10}, 2);
  const auto r = test::random_tensor<double, 3>({2, 3, 7}, 3);
  Tensor<double, 3> out({2, 3, 7});
  const auto loss = [&] {
    linear.forward(serial, x.cview(), out.view());
    return weighted_sum(out.cview(), r);
  };

  linear.enable_grad();
  Linear<cpu, double>::Activations activations;
  Tensor<double, 3> train_out({2, 3, 7});
  linear.forward(ctx, x.cview(), train_out.view(), activations);
  loss();
  CHECK(copy_of(train_out.view()) == copy_of(out.view()));  // the same code path, bit for bit
  Tensor<double, 3> d_x(x.shape());
  linear.backward(ctx, activations, r.cview(), d_x.view());

  require_gradient("linear d_x", d_x.view(), numeric_gradient(x.data(), x.size(), loss));
  require_gradient("linear d_weight", linear.weight().grad(),
                   numeric_gradient(linear.weight().view().data(), linear.weight().size(), loss));
}

TEST_CASE("Linear gradients accumulate over backward calls and zero_grad clears them",
          "[train][linear]") {
  Context<cpu> ctx(1);
  Linear<cpu, double> linear(6, 5);
  test::randomize(linear.weight(), 4, 0.5);
  linear.enable_grad();
  const auto x_a = test::random_tensor<double, 3>({2, 3, 6}, 5);
  const auto x_b = test::random_tensor<double, 3>({1, 4, 6}, 6);
  const auto r_a = test::random_tensor<double, 3>({2, 3, 5}, 7);
  const auto r_b = test::random_tensor<double, 3>({1, 4, 5}, 8);
  Tensor<double, 3> out_a({2, 3, 5}), out_b({1, 4, 5}), d_x_a(x_a.shape()), d_x_b(x_b.shape());
  Linear<cpu, double>::Activations activations;

  auto gradient_of = [&](const Tensor<double, 3>& x, const Tensor<double, 3>& r,
                         Tensor<double, 3>& out, Tensor<double, 3>& d_x) {
    linear.forward(ctx, x.cview(), out.view(), activations);
    linear.backward(ctx, activations, r.cview(), d_x.view());
  };
  gradient_of(x_a, r_a, out_a, d_x_a);
  const auto grad_a = copy_of(linear.weight().grad());
  linear.zero_grad();
  CHECK(std::all_of(linear.weight().grad().data(),
                    linear.weight().grad().data() + linear.weight().size(),
                    [](double value) { return value == 0.0; }));
  gradient_of(x_b, r_b, out_b, d_x_b);
  const auto grad_b = copy_of(linear.weight().grad());
  const auto d_x_b_alone = copy_of(d_x_b.view());
  gradient_of(x_a, r_a, out_a, d_x_a);  // no zero_grad: adds to grad_b

  std::vector<double> expected(grad_a.size());
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = grad_a[i] + grad_b[i];
  test::require_close("accumulated gradient", linear.weight().grad().data(), expected.data(),
                      expected.size(), test::tolerance<double>::nmse);
  // The input gradient is written, not accumulated.
  gradient_of(x_b, r_b, out_b, d_x_b);
  CHECK(copy_of(d_x_b.view()) == d_x_b_alone);
}

TEST_CASE("Linear backward refuses misuse and changes nothing", "[train][linear][errors]") {
  Context<cpu> ctx(1);
  Linear<cpu, double> linear(6, 5);
  test::randomize(linear.weight(), 9, 0.5);
  const auto x = test::random_tensor<double, 3>({2, 3, 6}, 10);
  const auto d_out = test::random_tensor<double, 3>({2, 3, 5}, 11);
  Tensor<double, 3> out({2, 3, 5});
  Tensor<double, 3> d_x(x.shape());
  d_x.view()(0, 0, 0) = 42.0;
  const auto d_x_before = copy_of(d_x.view());
  Linear<cpu, double>::Activations activations;

  // Inference allocates no gradient; a training forward does not either.
  linear.forward(ctx, x.cview(), out.view());
  linear.forward(ctx, x.cview(), out.view(), activations);
  CHECK_FALSE(linear.weight().has_grad());
  CHECK_THROWS_AS(linear.weight().grad(), config_error);
  CHECK_THROWS_WITH(linear.backward(ctx, activations, d_out.cview(), d_x.view()),
                    Contains("Linear.weight has no gradient"));
  CHECK(unchanged(d_x.view(), d_x_before));

  linear.enable_grad();
  Linear<cpu, double>::Activations never_filled;
  CHECK_THROWS_AS(linear.backward(ctx, never_filled, d_out.cview(), d_x.view()), config_error);
  CHECK_THROWS_WITH(linear.backward(ctx, never_filled, d_out.cview(), d_x.view()),
                    Contains("Linear::backward") && Contains("no training forward"));

  const auto wrong_d_out = test::random_tensor<double, 3>({2, 3, 6}, 12);
  CHECK_THROWS_AS(linear.backward(ctx, activations, wrong_d_out.cview(), d_x.view()), shape_error);
  CHECK_THROWS_WITH(linear.backward(ctx, activations, wrong_d_out.cview(), d_x.view()),
                    Contains("d_out has shape [2, 3, 6], expected [2, 3, 5]"));
  Tensor<double, 3> wrong_d_x({2, 2, 6});
  CHECK_THROWS_WITH(linear.backward(ctx, activations, d_out.cview(), wrong_d_x.view()),
                    Contains("d_x has shape [2, 2, 6], expected [2, 3, 6]"));

  Linear<cpu, double> wider(8, 5);
  wider.enable_grad();
  Tensor<double, 3> d_x_wider({2, 3, 8});
  CHECK_THROWS_WITH(wider.backward(ctx, activations, d_out.cview(), d_x_wider.view()),
                    Contains("in_features = 8"));
  CHECK(unchanged(d_x.view(), d_x_before));
  CHECK(std::all_of(linear.weight().grad().data(),
                    linear.weight().grad().data() + linear.weight().size(),
                    [](double value) { return value == 0.0; }));
}

// ---------------------------------------------------------------------------------------------
// Embedding

TEST_CASE("Embedding backward scatter-adds rows and matches finite differences",
          "[train][embedding]") {
  Context<cpu> ctx(2);
  Context<cpu> serial(1);  // for the finite differences
  Embedding<cpu, double> embedding(5, 6);
  test::randomize(embedding.weight(), 13, 1.0);
  // Id 1 three times, id 2 never: repeated rows add up, an unused row stays zero.
  const std::vector<std::int32_t> ids{1, 3, 1, 0, 4, 1};
  const TensorView<const std::int32_t, 2> tokens(ids.data(), {2, 3});
  const auto r = test::random_tensor<double, 3>({2, 3, 6}, 14);
  Tensor<double, 3> out({2, 3, 6});
  const auto loss = [&] {
    embedding.forward(serial, tokens, out.view());
    return weighted_sum(out.cview(), r);
  };

  embedding.enable_grad();
  Embedding<cpu, double>::Activations activations;
  embedding.forward(ctx, tokens, out.view(), activations);
  embedding.backward(ctx, activations, r.cview());
  require_gradient("embedding d_table", embedding.weight().grad(),
                   numeric_gradient(embedding.weight().view().data(), embedding.weight().size(), loss));
  for (index_t j = 0; j < 6; ++j) CHECK(embedding.weight().grad()(2, j) == 0.0);

  // A second backward adds the same again.
  const auto once = copy_of(embedding.weight().grad());
  embedding.backward(ctx, activations, r.cview());
  std::vector<double> twice(once.size());
  for (std::size_t i = 0; i < once.size(); ++i) twice[i] = 2 * once[i];
  test::require_close("embedding accumulated", embedding.weight().grad().data(), twice.data(),
                      twice.size(), test::tolerance<double>::nmse);
}

TEST_CASE("A head tied to the embedding gets one gradient, the sum of both uses",
          "[train][embedding][linear][tied]") {
  Context<cpu> ctx(2);
  Context<cpu> serial(1);  // for the finite differences
  const index_t vocab = 7, dim = 5;
  Embedding<cpu, double> embedding(vocab, dim);
  Linear<cpu, double> head(dim, vocab);  // weight [vocab, dim], the table's shape
  test::randomize(embedding.weight(), 21, 1.0);
  embedding.enable_grad();  // before the tie: the head takes this gradient over
  head.weight().tie(embedding.weight());
  head.enable_grad();       // allocates nothing new
  REQUIRE(head.weight().shares_grad_with(embedding.weight()));
  REQUIRE(head.weight().view().data() == embedding.weight().view().data());
  REQUIRE(head.weight().grad().data() == embedding.weight().grad().data());

  const std::vector<std::int32_t> ids{1, 3, 1, 0, 6, 2};
  const TensorView<const std::int32_t, 2> tokens(ids.data(), {2, 3});
  const auto r = test::random_tensor<double, 3>({2, 3, vocab}, 22);
  Tensor<double, 3> hidden({2, 3, dim});
  Tensor<double, 3> logits({2, 3, vocab});
  const auto loss = [&] {  // logits = E[tokens] · Eᵀ: the table enters twice
    embedding.forward(serial, tokens, hidden.view());
    head.forward(serial, hidden.cview(), logits.view());
    return weighted_sum(logits.cview(), r);
  };

  Embedding<cpu, double>::Activations embedding_activations;
  Linear<cpu, double>::Activations head_activations;
  embedding.forward(ctx, tokens, hidden.view(), embedding_activations);
  head.forward(ctx, hidden.cview(), logits.view(), head_activations);
  Tensor<double, 3> d_hidden(hidden.shape());
  head.backward(ctx, head_activations, r.cview(), d_hidden.view());
  const auto head_part = copy_of(embedding.weight().grad());  // the head's use alone, so far
  embedding.backward(ctx, embedding_activations, d_hidden.cview());
  require_gradient("tied table", embedding.weight().grad(),
                   numeric_gradient(embedding.weight().view().data(), embedding.weight().size(), loss));
  // Both uses are in it: the head's part alone is not the whole gradient.
  CHECK(copy_of(embedding.weight().grad()) != head_part);

  // New storage ends the tie; the head gets a zeroed gradient of its own.
  Tensor<double, 2> own({vocab, dim});
  head.weight().assign(std::move(own));
  CHECK_FALSE(head.weight().shares_grad_with(embedding.weight()));
  REQUIRE(head.weight().has_grad());
  CHECK(head.weight().grad().data() != embedding.weight().grad().data());
  for (index_t i = 0; i < head.weight().size(); ++i) CHECK(head.weight().grad().data()[i] == 0.0);
}

TEST_CASE("tie refuses another shape and leaves the parameter as it was",
          "[train][tied][errors]") {
  Parameter<float, 2, cpu> table("token_embedding.weight", {7, 5});
  Parameter<float, 2, cpu> head("output.weight", {5, 7});
  head.enable_grad();
  const float* storage = head.view().data();
  REQUIRE_THROWS_MATCHES(head.tie(table), shape_error,
                         Catch::Message("output.weight: cannot tie to token_embedding.weight of "
                                        "shape [7, 5], expected [5, 7]"));
  CHECK(head.view().data() == storage);
  CHECK_FALSE(head.shares_grad_with(table));
  CHECK(head.has_grad());
}

TEST_CASE("embedding_backward refuses an id outside the table before writing",
          "[train][embedding][errors]") {
  Context<cpu> ctx(1);
  Tensor<double, 2> d_table({4, 3});
  const auto d_out = test::random_tensor<double, 2>({3, 3}, 15);
  const std::vector<std::int32_t> ids{0, 7, 1};
  CHECK_THROWS_AS(embedding_backward<double>(ctx, TensorView<const std::int32_t, 1>(ids.data(), {3}),
                                             d_out.cview(), d_table.view()),
                  range_error);
  CHECK_THROWS_WITH(embedding_backward<double>(ctx, TensorView<const std::int32_t, 1>(ids.data(), {3}),
                                               d_out.cview(), d_table.view()),
                    Contains("token id 7 at 1"));
  CHECK(std::all_of(d_table.data(), d_table.data() + d_table.size(),
                    [](double value) { return value == 0.0; }));
}

// ---------------------------------------------------------------------------------------------
// RMSNorm

TEST_CASE("RMSNorm backward matches finite differences", "[train][rms_norm]") {
  const int threads = GENERATE(1, 2);
  Context<cpu> ctx(threads);
  Context<cpu> serial(1);  // for the finite differences
  RMSNorm<cpu, double> norm(10, 1e-5);
  test::randomize(norm.weight(), 16, 0.3, 1.0);
  // An offset makes the rows' scale matter (the r³ term is not small).
  auto x = test::random_tensor<double, 3>({2, 3, 10}, 17, 1.0, 0.5);
  const auto r = test::random_tensor<double, 3>({2, 3, 10}, 18);
  Tensor<double, 3> out(x.shape());
  const auto loss = [&] {
    norm.forward(serial, x.cview(), out.view());
    return weighted_sum(out.cview(), r);
  };

  norm.enable_grad();
  RMSNorm<cpu, double>::Activations activations;
  Tensor<double, 3> train_out(x.shape());
  norm.forward(ctx, x.cview(), train_out.view(), activations);
  loss();
  CHECK(copy_of(train_out.view()) == copy_of(out.view()));
  Tensor<double, 3> d_x(x.shape());
  norm.backward(ctx, activations, r.cview(), d_x.view());
  require_gradient("rms_norm d_x", d_x.view(), numeric_gradient(x.data(), x.size(), loss));
  require_gradient("rms_norm d_weight", norm.weight().grad(),
                   numeric_gradient(norm.weight().view().data(), norm.weight().size(), loss));

  // In place (d_x is d_out) gives the same d_x.
  Tensor<double, 3> in_place(x.shape());
  std::copy_n(r.data(), r.size(), in_place.data());
  norm.backward(ctx, activations, in_place.cview(), in_place.view());
  CHECK(copy_of(in_place.view()) == copy_of(d_x.view()));
}

TEST_CASE("RMSNorm training forward in place keeps the input it normalized", "[train][rms_norm]") {
  Context<cpu> ctx(1);
  RMSNorm<cpu, double> norm(6, 1e-5);
  test::randomize(norm.weight(), 19, 0.3, 1.0);
  norm.enable_grad();
  auto x = test::random_tensor<double, 3>({1, 3, 6}, 20);
  const auto x_before = copy_of(x.view());
  const auto r = test::random_tensor<double, 3>({1, 3, 6}, 21);
  RMSNorm<cpu, double>::Activations in_place, copied;
  Tensor<double, 3> out(x.shape());
  norm.forward(ctx, x.cview(), out.view(), copied);
  norm.forward(ctx, x.cview(), x.view(), in_place);
  CHECK(copy_of(x.view()) == copy_of(out.view()));
  CHECK(copy_of(in_place.x.view()) == x_before);
  Tensor<double, 3> d_x_in_place(x.shape()), d_x_copied(x.shape());
  norm.backward(ctx, in_place, r.cview(), d_x_in_place.view());
  norm.backward(ctx, copied, r.cview(), d_x_copied.view());
  CHECK(copy_of(d_x_in_place.view()) == copy_of(d_x_copied.view()));
}

TEST_CASE("RMSNorm backward refuses activations of another width", "[train][rms_norm][errors]") {
  Context<cpu> ctx(1);
  RMSNorm<cpu, double> norm(6, 1e-5), wider(10, 1e-5);
  norm.enable_grad();
  wider.enable_grad();
  const auto x = test::random_tensor<double, 3>({1, 2, 6}, 22);
  Tensor<double, 3> out(x.shape());
  RMSNorm<cpu, double>::Activations activations;
  norm.forward(ctx, x.cview(), out.view(), activations);
  Tensor<double, 3> d({1, 2, 10});
  CHECK_THROWS_AS(wider.backward(ctx, activations, d.cview(), d.view()), shape_error);
  CHECK_THROWS_WITH(wider.backward(ctx, activations, d.cview(), d.view()),
                    Contains("x of shape [1, 2, 6]") && Contains("dim = 10"));
  CHECK(std::all_of(wider.weight().grad().data(), wider.weight().grad().data() + 10,
                    [](double value) { return value == 0.0; }));
  // Partial overlap of d_out and d_x is refused; exact aliasing is in place.
  std::vector<double> buffer(20);
  CHECK_THROWS_WITH(norm.backward(ctx, activations, TensorView<const double, 3>(buffer.data(), {1, 2, 6}),
                                  TensorView<double, 3>(buffer.data() + 3, {1, 2, 6})),
                    Contains("overlap"));
}

// ---------------------------------------------------------------------------------------------
// RotaryEmbedding

TEST_CASE("RotaryEmbedding backward matches finite differences in both layouts",
          "[train][rope]") {
  const auto layout = GENERATE(RopeLayout::interleaved, RopeLayout::half_split);
  const index_t start_pos = GENERATE(0, 2);
  CAPTURE(to_string(layout), start_pos);
  Context<cpu> ctx(2);
  Context<cpu> serial(1);  // for the finite differences
  // head_dim 6: three pairs, so the half_split pairs (j, j + 3) differ from the interleaved ones.
  RotaryEmbedding<cpu, double> rope(6, 8, 10000.0, layout, RopeScaling::llama3(8, 1, 4, 4));
  auto x = test::random_tensor<double, 4>({2, 3, 3, 6}, 23);
  const auto r = test::random_tensor<double, 4>({2, 3, 3, 6}, 24);
  Tensor<double, 4> rotated(x.shape());
  const auto loss = [&] {
    std::copy_n(x.data(), x.size(), rotated.data());
    rope.apply(serial, rotated.view(), start_pos);
    return weighted_sum(rotated.cview(), r);
  };
  Tensor<double, 4> grad(x.shape());
  std::copy_n(r.data(), r.size(), grad.data());
  rope.backward(ctx, grad.view(), start_pos);
  require_gradient("rope d_x", grad.view(), numeric_gradient(x.data(), x.size(), loss));

  // The backward is the inverse rotation: it undoes apply().
  loss();
  rope.backward(ctx, rotated.view(), start_pos);
  test::require_close("rope backward undoes apply", rotated.data(), x.data(),
                      static_cast<std::size_t>(x.size()), test::tolerance<double>::nmse);
}

TEST_CASE("RotaryEmbedding backward refuses positions past its tables", "[train][rope][errors]") {
  Context<cpu> ctx(1);
  RotaryEmbedding<cpu, double> rope(4, 4, 10000.0, RopeLayout::interleaved);
  auto grad = test::random_tensor<double, 4>({1, 3, 2, 4}, 25);
  const auto before = copy_of(grad.view());
  CHECK_THROWS_AS(rope.backward(ctx, grad.view(), 2), range_error);
  CHECK_THROWS_WITH(rope.backward(ctx, grad.view(), 2),
                    Contains("RotaryEmbedding::backward") && Contains("start_pos 2 + tokens 3"));
  Tensor<double, 4> wrong({1, 3, 2, 6});
  CHECK_THROWS_WITH(rope.backward(ctx, wrong.view(), 0), Contains("grad has shape [1, 3, 2, 6]"));
  CHECK(unchanged(grad.view(), before));
}

// ---------------------------------------------------------------------------------------------
// SwiGLU

TEST_CASE("swiglu_activation_backward matches finite differences", "[train][swiglu]") {
  Context<cpu> ctx(2);
  Context<cpu> serial(1);  // for the finite differences
  // Gates up to ±6 reach both tails of the sigmoid.
  auto gate = test::random_tensor<double, 2>({3, 7}, 26, 3.0);
  auto up = test::random_tensor<double, 2>({3, 7}, 27);
  const auto r = test::random_tensor<double, 2>({3, 7}, 28);
  Tensor<double, 2> hidden(gate.shape());
  const auto loss = [&] {
    std::copy_n(gate.data(), gate.size(), hidden.data());
    swiglu_activation<double>(serial, hidden.view(), up.cview());
    return weighted_sum(hidden.cview(), r);
  };
  Tensor<double, 2> d_gate(gate.shape()), d_up(gate.shape());
  swiglu_activation_backward<double>(ctx, gate.cview(), up.cview(), r.cview(), d_gate.view(),
                                     d_up.view());
  require_gradient("swiglu d_gate", d_gate.view(), numeric_gradient(gate.data(), gate.size(), loss));
  require_gradient("swiglu d_up", d_up.view(), numeric_gradient(up.data(), up.size(), loss));
}

TEST_CASE("SwiGLUFeedForward backward matches finite differences", "[train][swiglu]") {
  const int threads = GENERATE(1, 2);
  Context<cpu> ctx(threads);
  Context<cpu> serial(1);  // for the finite differences
  SwiGLUFeedForward<cpu, double> ffn(6, 14);
  test::randomize(ffn.w1(), 29, 0.5);
  test::randomize(ffn.w2(), 30, 0.3);
  test::randomize(ffn.w3(), 31, 0.5);
  auto x = test::random_tensor<double, 3>({2, 3, 6}, 32);
  const auto r = test::random_tensor<double, 3>({2, 3, 6}, 33);
  Tensor<double, 3> out(x.shape());
  const auto loss = [&] {
    ffn.forward(serial, x.cview(), out.view());
    return weighted_sum(out.cview(), r);
  };

  ffn.enable_grad();
  SwiGLUFeedForward<cpu, double>::Activations activations;
  Tensor<double, 3> train_out(x.shape());
  ffn.forward(ctx, x.cview(), train_out.view(), activations);
  loss();
  CHECK(copy_of(train_out.view()) == copy_of(out.view()));
  Tensor<double, 3> d_x(x.shape());
  ffn.backward(ctx, activations, r.cview(), d_x.view());
  require_gradient("ffn d_x", d_x.view(), numeric_gradient(x.data(), x.size(), loss));
  require_gradient("ffn d_w1", ffn.w1().grad(), numeric_gradient(ffn.w1().view().data(), ffn.w1().size(), loss));
  require_gradient("ffn d_w2", ffn.w2().grad(), numeric_gradient(ffn.w2().view().data(), ffn.w2().size(), loss));
  require_gradient("ffn d_w3", ffn.w3().grad(), numeric_gradient(ffn.w3().view().data(), ffn.w3().size(), loss));
}

TEST_CASE("SwiGLUFeedForward backward needs every gradient and a training forward",
          "[train][swiglu][errors]") {
  Context<cpu> ctx(1);
  SwiGLUFeedForward<cpu, double> ffn(6, 14);
  test::randomize(ffn.w1(), 34, 0.5);
  const auto x = test::random_tensor<double, 3>({1, 2, 6}, 35);
  const auto d_out = test::random_tensor<double, 3>({1, 2, 6}, 36);
  Tensor<double, 3> out(x.shape()), d_x(x.shape());
  d_x.view()(0, 1, 5) = 7.0;
  const auto d_x_before = copy_of(d_x.view());
  SwiGLUFeedForward<cpu, double>::Activations activations;
  ffn.w1().enable_grad();  // w2 and w3 not
  CHECK_THROWS_WITH(ffn.backward(ctx, activations, d_out.cview(), d_x.view()),
                    Contains("SwiGLUFeedForward::backward") && Contains("no training forward"));
  ffn.forward(ctx, x.cview(), out.view(), activations);
  CHECK_THROWS_AS(ffn.backward(ctx, activations, d_out.cview(), d_x.view()), config_error);
  CHECK_THROWS_WITH(ffn.backward(ctx, activations, d_out.cview(), d_x.view()),
                    Contains("feed_forward.w2 has no gradient"));
  CHECK(unchanged(d_x.view(), d_x_before));
  CHECK(std::all_of(ffn.w1().grad().data(), ffn.w1().grad().data() + ffn.w1().size(),
                    [](double value) { return value == 0.0; }));
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy

namespace {

/// log Σ exp − logit[target], averaged over rows, straight from the definition (no max shift; the
/// logits of these tests are small enough).
double plain_cross_entropy(const Tensor<double, 2>& logits, const std::vector<std::int32_t>& targets) {
  double total = 0;
  for (index_t i = 0; i < logits.shape(0); ++i) {
    double sum = 0;
    for (index_t j = 0; j < logits.shape(1); ++j) sum += std::exp(logits.view()(i, j));
    total += std::log(sum) - logits.view()(i, targets[static_cast<std::size_t>(i)]);
  }
  return total / static_cast<double>(logits.shape(0));
}

}  // namespace

TEST_CASE("cross_entropy matches its definition and its backward matches finite differences",
          "[train][cross_entropy]") {
  const int threads = GENERATE(1, 2);
  Context<cpu> ctx(threads);
  Context<cpu> serial(1);  // for the finite differences
  auto logits = test::random_tensor<double, 2>({6, 7}, 37, 2.0);
  const std::vector<std::int32_t> targets{3, 0, 6, 3, 1, 5};
  const TensorView<const std::int32_t, 1> target_view(targets.data(), {6});
  const double loss = cross_entropy<double>(ctx, logits.cview(), target_view);
  CHECK(loss == Approx(plain_cross_entropy(logits, targets)).epsilon(1e-12));

  Tensor<double, 2> d_logits(logits.shape());
  CHECK(cross_entropy_backward<double>(ctx, logits.cview(), target_view, d_logits.view()) == loss);
  require_gradient("cross_entropy d_logits", d_logits.view(),
                   numeric_gradient(logits.data(), logits.size(), [&] {
                     return cross_entropy<double>(serial, logits.cview(), target_view);
                   }));

  // In place gives the same gradient.
  Tensor<double, 2> in_place(logits.shape());
  std::copy_n(logits.data(), logits.size(), in_place.data());
  cross_entropy_backward<double>(ctx, in_place.cview(), target_view, in_place.view());
  CHECK(copy_of(in_place.view()) == copy_of(d_logits.view()));
}

TEST_CASE("cross_entropy is stable for large logits", "[train][cross_entropy]") {
  Context<cpu> ctx(1);
  auto logits = test::random_tensor<double, 2>({4, 9}, 38, 2.0);
  const std::vector<std::int32_t> targets{8, 0, 4, 4};
  const TensorView<const std::int32_t, 1> target_view(targets.data(), {4});
  const double loss = cross_entropy<double>(ctx, logits.cview(), target_view);
  Tensor<double, 2> d_logits(logits.shape());
  cross_entropy_backward<double>(ctx, logits.cview(), target_view, d_logits.view());
  // Adding a constant to a row changes neither the loss nor the gradient; e^1000 would overflow
  // without the maximum subtracted.
  for (index_t i = 0; i < logits.size(); ++i) logits.data()[i] += 1000.0;
  Tensor<double, 2> d_shifted(logits.shape());
  const double shifted = cross_entropy_backward<double>(ctx, logits.cview(), target_view, d_shifted.view());
  CHECK(std::isfinite(shifted));
  CHECK(shifted == Approx(loss).epsilon(1e-10));
  test::require_close("shifted gradient", d_shifted.data(), d_logits.data(),
                      static_cast<std::size_t>(d_logits.size()), 1e-20);
}

TEST_CASE("cross_entropy in float agrees with double", "[train][cross_entropy]") {
  Context<cpu> ctx(1);
  const auto logits = test::random_tensor<double, 2>({5, 11}, 39, 3.0);
  Tensor<float, 2> logits_float(logits.shape());
  for (index_t i = 0; i < logits.size(); ++i) logits_float.data()[i] = static_cast<float>(logits.data()[i]);
  const std::vector<std::int32_t> targets{10, 2, 2, 0, 7};
  const TensorView<const std::int32_t, 1> target_view(targets.data(), {5});
  Tensor<double, 2> d_double(logits.shape());
  Tensor<float, 2> d_float(logits.shape());
  const double loss_double = cross_entropy_backward<double>(ctx, logits.cview(), target_view, d_double.view());
  const double loss_float = cross_entropy_backward<float>(ctx, logits_float.cview(), target_view, d_float.view());
  CHECK(loss_float == Approx(loss_double).epsilon(1e-6));
  test::require_close("cross_entropy float vs double", d_float.data(), d_double.data(),
                      static_cast<std::size_t>(d_double.size()), test::tolerance<float>::nmse);
}

TEST_CASE("cross_entropy refuses a target outside the vocabulary", "[train][cross_entropy][errors]") {
  Context<cpu> ctx(1);
  const auto logits = test::random_tensor<double, 2>({3, 7}, 40);
  Tensor<double, 2> d_logits(logits.shape());
  d_logits.view()(0, 0) = 5.0;
  const auto before = copy_of(d_logits.view());
  for (const std::int32_t bad : {7, -1}) {
    const std::vector<std::int32_t> targets{0, 6, bad};
    const TensorView<const std::int32_t, 1> target_view(targets.data(), {3});
    CHECK_THROWS_AS(cross_entropy<double>(ctx, logits.cview(), target_view), range_error);
    CHECK_THROWS_WITH(cross_entropy_backward<double>(ctx, logits.cview(), target_view, d_logits.view()),
                      Contains("target " + std::to_string(bad) + " at row 2") &&
                          Contains("[0, 7)"));
  }
  CHECK(unchanged(d_logits.view(), before));
  const std::vector<std::int32_t> two{0, 1};
  CHECK_THROWS_WITH(cross_entropy<double>(ctx, logits.cview(), TensorView<const std::int32_t, 1>(two.data(), {2})),
                    Contains("targets has shape [2], expected [3]"));
}

// ---------------------------------------------------------------------------------------------
// GroupedQueryAttention

namespace {

/// dim 10, head_dim 4, ffn_hidden_dim 14, max_seq_len 8.
ModelConfig small_config(index_t n_heads, index_t n_kv_heads, RopeLayout layout) {
  return test::make_config(10, n_heads, n_kv_heads, 4, 14, 8, layout);
}

template <class T>
void randomize_attention(GroupedQueryAttention<cpu, T>& attention, std::uint32_t seed) {
  test::randomize(attention.wq(), seed, 0.4);
  test::randomize(attention.wk(), seed + 1, 0.4);
  test::randomize(attention.wv(), seed + 2, 0.4);
  test::randomize(attention.wo(), seed + 3, 0.4);
}

}  // namespace

TEST_CASE("GroupedQueryAttention backward matches finite differences for MHA, GQA and MQA",
          "[train][attention]") {
  const auto [n_heads, n_kv_heads] = GENERATE(table<index_t, index_t>({{4, 4}, {4, 2}, {4, 1}}));
  const auto layout = GENERATE(RopeLayout::interleaved, RopeLayout::half_split);
  const int threads = GENERATE(1, 2);
  CAPTURE(n_heads, n_kv_heads, to_string(layout), threads);
  Context<cpu> ctx(threads);
  Context<cpu> serial(1);  // for the finite differences
  const ModelConfig config = small_config(n_heads, n_kv_heads, layout);
  GroupedQueryAttention<cpu, double> attention(config);
  randomize_attention(attention, 41);
  auto x = test::random_tensor<double, 3>({2, 3, 10}, 45);
  const auto r = test::random_tensor<double, 3>({2, 3, 10}, 46);
  KVCache<cpu, double> cache(config, 2);
  Tensor<double, 3> out(x.shape());
  const auto loss = [&] {
    cache.reset();
    attention.forward(serial, x.cview(), cache, 0, out.view());
    return weighted_sum(out.cview(), r);
  };

  attention.enable_grad();
  GroupedQueryAttention<cpu, double>::Activations activations;
  Tensor<double, 3> train_out(x.shape());
  attention.forward(ctx, x.cview(), train_out.view(), activations);
  loss();
  test::require_close("training forward vs cached forward", train_out.data(), out.data(),
                      static_cast<std::size_t>(out.size()), test::tolerance<double>::nmse);
  Tensor<double, 3> d_x(x.shape());
  attention.backward(ctx, activations, r.cview(), d_x.view());
  require_gradient("attention d_x", d_x.view(), numeric_gradient(x.data(), x.size(), loss));
  require_gradient("attention d_wq", attention.wq().grad(), numeric_gradient(attention.wq().view().data(), attention.wq().size(), loss));
  require_gradient("attention d_wk", attention.wk().grad(), numeric_gradient(attention.wk().view().data(), attention.wk().size(), loss));
  require_gradient("attention d_wv", attention.wv().grad(), numeric_gradient(attention.wv().view().data(), attention.wv().size(), loss));
  require_gradient("attention d_wo", attention.wo().grad(), numeric_gradient(attention.wo().view().data(), attention.wo().size(), loss));
}

TEST_CASE("GroupedQueryAttention training forward needs positions inside the rope tables",
          "[train][attention][errors]") {
  Context<cpu> ctx(1);
  const ModelConfig config = small_config(4, 2, RopeLayout::interleaved);  // max_seq_len 8
  GroupedQueryAttention<cpu, double> attention(config);
  attention.enable_grad();
  const auto x = test::random_tensor<double, 3>({1, 9, 10}, 47);
  Tensor<double, 3> out(x.shape());
  GroupedQueryAttention<cpu, double>::Activations activations;
  CHECK_THROWS_AS(attention.forward(ctx, x.cview(), out.view(), activations), range_error);
  CHECK_THROWS_WITH(attention.forward(ctx, x.cview(), out.view(), activations),
                    Contains("tokens 9 exceeds max_seq_len 8"));
  CHECK_FALSE(activations.x.saved());
  Tensor<double, 3> d_x(x.shape());
  CHECK_THROWS_WITH(attention.backward(ctx, activations, x.cview(), d_x.view()),
                    Contains("no training forward"));
}

// ---------------------------------------------------------------------------------------------
// LlamaBlock

namespace {

template <class T>
void randomize_block(LlamaBlock<cpu, T>& block, std::uint32_t seed) {
  test::randomize(block.attention_norm().weight(), seed, 0.3, 1.0);
  randomize_attention(block.attention(), seed + 1);
  test::randomize(block.ffn_norm().weight(), seed + 5, 0.3, 1.0);
  test::randomize(block.feed_forward().w1(), seed + 6, 0.4);
  test::randomize(block.feed_forward().w2(), seed + 7, 0.3);
  test::randomize(block.feed_forward().w3(), seed + 8, 0.4);
}

template <class T>
std::vector<Parameter<T, 1, cpu>*> block_gains(LlamaBlock<cpu, T>& block) {
  return {&block.attention_norm().weight(), &block.ffn_norm().weight()};
}

template <class T>
std::vector<Parameter<T, 2, cpu>*> block_matrices(LlamaBlock<cpu, T>& block) {
  auto& attention = block.attention();
  auto& ffn = block.feed_forward();
  return {&attention.wq(), &attention.wk(), &attention.wv(), &attention.wo(),
          &ffn.w1(), &ffn.w2(), &ffn.w3()};
}

}  // namespace

TEST_CASE("LlamaBlock backward matches finite differences", "[train][llama_block]") {
  const int threads = GENERATE(1, 2);
  Context<cpu> ctx(threads);
  Context<cpu> serial(1);  // for the finite differences
  const ModelConfig config = small_config(4, 2, RopeLayout::half_split);
  LlamaBlock<cpu, double> block(config);
  randomize_block(block, 48);
  auto x = test::random_tensor<double, 3>({2, 3, 10}, 57);
  const auto r = test::random_tensor<double, 3>({2, 3, 10}, 58);
  KVCache<cpu, double> cache(config, 2);
  Tensor<double, 3> stream(x.shape());
  const auto loss = [&] {
    cache.reset();
    std::copy_n(x.data(), x.size(), stream.data());
    block.forward(serial, stream.view(), cache, 0);
    return weighted_sum(stream.cview(), r);
  };

  block.enable_grad();
  LlamaBlock<cpu, double>::Activations activations;
  Tensor<double, 3> grad(x.shape());
  std::copy_n(x.data(), x.size(), grad.data());
  block.forward(ctx, grad.view(), activations);
  loss();
  test::require_close("training forward vs cached forward", grad.data(), stream.data(),
                      static_cast<std::size_t>(stream.size()), test::tolerance<double>::nmse);
  std::copy_n(r.data(), r.size(), grad.data());
  block.backward(ctx, activations, grad.view());
  require_gradient("block d_x", grad.view(), numeric_gradient(x.data(), x.size(), loss));
  for (auto* gain : block_gains(block)) {
    INFO("parameter " << gain->name());
    require_gradient("block gain", gain->grad(), numeric_gradient(gain->view().data(), gain->size(), loss));
  }
  for (auto* matrix : block_matrices(block)) {
    INFO("parameter " << matrix->name());
    require_gradient("block matrix", matrix->grad(),
                     numeric_gradient(matrix->view().data(), matrix->size(), loss));
  }
}

TEST_CASE("LlamaBlock gradients accumulate over micro-batches", "[train][llama_block]") {
  Context<cpu> ctx(2);
  const ModelConfig config = small_config(4, 1, RopeLayout::interleaved);
  LlamaBlock<cpu, double> block(config);
  randomize_block(block, 59);
  block.enable_grad();
  const auto x_a = test::random_tensor<double, 3>({2, 3, 10}, 68);
  const auto x_b = test::random_tensor<double, 3>({1, 5, 10}, 69);
  const auto r_a = test::random_tensor<double, 3>({2, 3, 10}, 70);
  const auto r_b = test::random_tensor<double, 3>({1, 5, 10}, 71);
  LlamaBlock<cpu, double>::Activations activations;
  auto run = [&](const Tensor<double, 3>& x, const Tensor<double, 3>& r) {
    Tensor<double, 3> stream(x.shape());
    std::copy_n(x.data(), x.size(), stream.data());
    block.forward(ctx, stream.view(), activations);
    std::copy_n(r.data(), r.size(), stream.data());
    block.backward(ctx, activations, stream.view());
  };
  auto all_gradients = [&] {
    std::vector<double> values;
    for (auto* gain : block_gains(block)) {
      const auto g = copy_of(gain->grad());
      values.insert(values.end(), g.begin(), g.end());
    }
    for (auto* matrix : block_matrices(block)) {
      const auto g = copy_of(matrix->grad());
      values.insert(values.end(), g.begin(), g.end());
    }
    return values;
  };
  run(x_a, r_a);
  const auto grad_a = all_gradients();
  block.zero_grad();
  run(x_b, r_b);
  const auto grad_b = all_gradients();
  run(x_a, r_a);
  std::vector<double> expected(grad_a.size());
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = grad_a[i] + grad_b[i];
  const auto accumulated = all_gradients();
  test::require_close("accumulated block gradients", accumulated.data(), expected.data(),
                      expected.size(), test::tolerance<double>::nmse);
}

TEST_CASE("LlamaBlock in float agrees with double", "[train][llama_block]") {
  Context<cpu> ctx(2);
  const ModelConfig config = small_config(4, 2, RopeLayout::interleaved);
  LlamaBlock<cpu, double> block_double(config);
  LlamaBlock<cpu, float> block_float(config);
  randomize_block(block_double, 72);
  const auto gains_double = block_gains(block_double);
  const auto gains_float = block_gains(block_float);
  for (std::size_t i = 0; i < gains_double.size(); ++i)
    for (index_t j = 0; j < gains_double[i]->size(); ++j)
      gains_float[i]->view().data()[j] = static_cast<float>(gains_double[i]->view().data()[j]);
  const auto matrices_double = block_matrices(block_double);
  const auto matrices_float = block_matrices(block_float);
  for (std::size_t i = 0; i < matrices_double.size(); ++i)
    for (index_t j = 0; j < matrices_double[i]->size(); ++j)
      matrices_float[i]->view().data()[j] = static_cast<float>(matrices_double[i]->view().data()[j]);
  block_double.enable_grad();
  block_float.enable_grad();

  const auto x = test::random_tensor<double, 3>({2, 5, 10}, 81);
  const auto r = test::random_tensor<double, 3>({2, 5, 10}, 82);
  Tensor<double, 3> stream_double(x.shape());
  Tensor<float, 3> stream_float(x.shape());
  for (index_t i = 0; i < x.size(); ++i) {
    stream_double.data()[i] = x.data()[i];
    stream_float.data()[i] = static_cast<float>(x.data()[i]);
  }
  LlamaBlock<cpu, double>::Activations activations_double;
  LlamaBlock<cpu, float>::Activations activations_float;
  block_double.forward(ctx, stream_double.view(), activations_double);
  block_float.forward(ctx, stream_float.view(), activations_float);
  test::require_close("block forward float vs double", stream_float.data(), stream_double.data(),
                      static_cast<std::size_t>(x.size()), test::tolerance<float>::nmse);
  for (index_t i = 0; i < x.size(); ++i) {
    stream_double.data()[i] = r.data()[i];
    stream_float.data()[i] = static_cast<float>(r.data()[i]);
  }
  block_double.backward(ctx, activations_double, stream_double.view());
  block_float.backward(ctx, activations_float, stream_float.view());
  // Loose: float rounding compounds through a dozen products and two softmax backwards.
  constexpr double float_gradient_nmse = 1e-9;
  test::require_close("block d_x float vs double", stream_float.data(), stream_double.data(),
                      static_cast<std::size_t>(x.size()), float_gradient_nmse);
  for (std::size_t i = 0; i < matrices_double.size(); ++i) {
    INFO("parameter " << matrices_double[i]->name());
    test::require_close("block gradient float vs double", matrices_float[i]->grad().data(),
                        matrices_double[i]->grad().data(),
                        static_cast<std::size_t>(matrices_double[i]->size()), float_gradient_nmse);
  }
  for (std::size_t i = 0; i < gains_double.size(); ++i)
    test::require_close("block gain gradient float vs double", gains_float[i]->grad().data(),
                        gains_double[i]->grad().data(),
                        static_cast<std::size_t>(gains_double[i]->size()), float_gradient_nmse);
}

TEST_CASE("LlamaBlock backward checks every gradient before changing any", "[train][llama_block][errors]") {
  Context<cpu> ctx(1);
  const ModelConfig config = small_config(4, 2, RopeLayout::interleaved);
  LlamaBlock<cpu, double> block(config);
  randomize_block(block, 83);
  // The feed-forward (whose backward runs first) and the norms can train, the attention cannot.
  block.attention_norm().enable_grad();
  block.ffn_norm().enable_grad();
  block.feed_forward().enable_grad();
  const auto x = test::random_tensor<double, 3>({1, 3, 10}, 84);
  Tensor<double, 3> grad(x.shape());
  std::copy_n(x.data(), x.size(), grad.data());
  LlamaBlock<cpu, double>::Activations activations;
  CHECK_THROWS_WITH(block.backward(ctx, activations, grad.view()), Contains("no training forward"));
  block.forward(ctx, grad.view(), activations);
  const auto grad_before = copy_of(grad.view());
  CHECK_THROWS_AS(block.backward(ctx, activations, grad.view()), config_error);
  CHECK_THROWS_WITH(block.backward(ctx, activations, grad.view()),
                    Contains("attention.wq has no gradient"));
  CHECK(unchanged(grad.view(), grad_before));
  CHECK(std::all_of(block.feed_forward().w2().grad().data(),
                    block.feed_forward().w2().grad().data() + block.feed_forward().w2().size(),
                    [](double value) { return value == 0.0; }));
  Tensor<double, 3> wrong({1, 2, 10});
  block.attention().enable_grad();
  CHECK_THROWS_WITH(block.backward(ctx, activations, wrong.view()),
                    Contains("grad has shape [1, 2, 10], the training forward saved [1, 3, 10]"));
}
