// RotaryEmbedding: the scalar reference, the properties of a rotation, the three formulations,
// the two pair layouts, frequency scaling, hand-checkable cases and errors.
#include "support/helpers.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

#include <cmath>

using namespace llamablocks;
using Catch::Matchers::Contains;

namespace {

constexpr double pi = 3.141592653589793238462643383279502884;

template <class T>
Tensor<T, 4> copy_of(const Tensor<T, 4>& source) {
  Tensor<T, 4> copy(source.shape());
  std::copy_n(source.data(), source.size(), copy.data());
  return copy;
}

/// Hugging Face stores each head's q/k rows so that Meta row 2j+i becomes row i·(head_dim/2)+j.
Tensor<double, 2> permute_for_half_split(const Tensor<double, 2>& meta, index_t heads,
                                         index_t head_dim) {
  Tensor<double, 2> hf(meta.shape());
  const index_t width = meta.shape(1);
  for (index_t h = 0; h < heads; ++h)
    for (index_t j = 0; j < head_dim / 2; ++j)
      for (index_t i = 0; i < 2; ++i)
        std::copy_n(&meta.view()(h * head_dim + 2 * j + i, 0), width,
                    &hf.view()(h * head_dim + i * (head_dim / 2) + j, 0));
  return hf;
}

}  // namespace

TEMPLATE_TEST_CASE("RotaryEmbedding matches the scalar reference", "[rope]", float, double) {
  const auto layout = GENERATE(RopeLayout::interleaved, RopeLayout::half_split);
  const double theta = GENERATE(10000.0, 500000.0, 1e6);
  const auto scaling = GENERATE(RopeScaling{}, RopeScaling::llama3(8), RopeScaling::llama3(32, 1, 4, 64),
                                RopeScaling::linear(4));
  const auto [head_dim, heads, tokens, start] = GENERATE(table<index_t, index_t, index_t, index_t>(
      {{64, 4, 7, 0}, {128, 2, 1, 1000}, {2, 3, 5, 3}, {128, 1, 129, 8000}}));
  CAPTURE(to_string(layout), theta, scaling.factor, head_dim, heads, tokens, start);

  const ModelConfig config =
      test::make_config(heads * head_dim, heads, heads, head_dim, 8, 8192 + 2, layout, theta, scaling);
  Context<cpu> ctx(2);
  const RotaryEmbedding<cpu, TestType> rope(config);
  auto x = test::random_tensor<TestType, 4>({2, tokens, heads, head_dim}, 31);
  const auto expected = test::reference::rope(test::to_vector(x.cview()), 2, size_t(tokens),
                                              size_t(heads), test::rope_spec(config), size_t(start));
  rope.apply(ctx, x.view(), start);
  test::require_close("rope", x.data(), expected.data(), expected.size(),
                      test::tolerance<TestType>::nmse);
}

TEST_CASE("RoPE frequencies follow theta^(-2j/d) and LLaMA-3.1 scaling", "[rope]") {
  for (const auto& scaling : {RopeScaling{}, RopeScaling::llama3(8), RopeScaling::llama3(32),
                              RopeScaling::linear(2)}) {
    const RotaryEmbedding<cpu> rope(128, 16, 500000.0, RopeLayout::interleaved, scaling);
    const ModelConfig config = test::make_config(128, 1, 1, 128, 8, 16, RopeLayout::interleaved,
                                                 500000.0, scaling);
    for (std::size_t j = 0; j < 64; ++j)
      CHECK(rope.inv_freq()[j] ==
            Approx(test::reference::rope_frequency(test::rope_spec(config), j)).epsilon(1e-14));
  }
  // LLaMA-3.1 (factor 8, context 8192): short wavelengths kept, long ones divided by 8, a ramp between.
  const RotaryEmbedding<cpu> plain(128, 16, 500000.0, RopeLayout::interleaved);
  const RotaryEmbedding<cpu> scaled(128, 16, 500000.0, RopeLayout::interleaved, RopeScaling::llama3(8));
  int kept = 0, divided = 0, blended = 0;
  for (std::size_t j = 0; j < 64; ++j) {
    const double ratio = plain.inv_freq()[j] / scaled.inv_freq()[j];
    if (ratio == 1.0) ++kept;
    else if (std::abs(ratio - 8.0) < 1e-12) ++divided;
    else if (ratio > 1.0 && ratio < 8.0) ++blended;
  }
  CHECK(kept > 0);
  CHECK(divided > 0);
  CHECK(blended > 0);
  CHECK(kept + divided + blended == 64);
}

TEST_CASE("The three RoPE formulations agree", "[rope]") {
  const auto layout = GENERATE(RopeLayout::interleaved, RopeLayout::half_split);
  const index_t head_dim = GENERATE(64, 128);
  const index_t start = GENERATE(0, 4090);
  Context<cpu> ctx(2);
  const RotaryEmbedding<cpu> rope(head_dim, 4096 + 8, 10000.0, layout, RopeScaling::llama3(8));
  const auto x = test::random_tensor<float, 4>({2, 6, 3, head_dim}, 41);
  auto elementwise = copy_of(x);
  auto matrix = copy_of(x);
  auto complex = copy_of(x);
  rope.apply(ctx, elementwise.view(), start);
  rope.apply(ctx, matrix.view(), start, rope::rotation_matrix{});
  rope.apply(ctx, complex.view(), start, rope::complex_multiply{});
  const auto m = test::compare(matrix.data(), elementwise.data(), size_t(x.size()));
  const auto c = test::compare(complex.data(), elementwise.data(), size_t(x.size()));
  CAPTURE(m.max_abs_error, c.max_abs_error);
  CHECK(m.max_abs_error <= test::tolerance<float>::rope_forms);
  CHECK(c.max_abs_error <= test::tolerance<float>::rope_forms);
}

TEST_CASE("RoPE is a rotation: identity at 0, norm kept, dot products depend on m - n", "[rope]") {
  const auto layout = GENERATE(RopeLayout::interleaved, RopeLayout::half_split);
  Context<cpu> ctx(1);
  const index_t head_dim = 64;
  const RotaryEmbedding<cpu, double> rope(head_dim, 2048, 10000.0, layout);
  const auto q = test::random_tensor<double, 4>({1, 1, 1, head_dim}, 51);
  const auto k = test::random_tensor<double, 4>({1, 1, 1, head_dim}, 52);
  auto rotated = [&](const Tensor<double, 4>& v, index_t position) {
    auto copy = copy_of(v);
    rope.apply(ctx, copy.view(), position);
    return copy;
  };
  auto dot = [&](const Tensor<double, 4>& a, const Tensor<double, 4>& b) {
    double sum = 0;
    for (index_t i = 0; i < head_dim; ++i) sum += a.data()[i] * b.data()[i];
    return sum;
  };

  const auto at_zero = rotated(q, 0);
  for (index_t i = 0; i < head_dim; ++i) CHECK(at_zero.data()[i] == q.data()[i]);

  for (index_t position : {1, 17, 1000, 2047})
    CHECK(std::sqrt(dot(rotated(q, position), rotated(q, position))) ==
          Approx(std::sqrt(dot(q, q))).epsilon(1e-13));

  for (index_t offset : {0, 1, 5, 300}) {
    const double reference = dot(rotated(q, offset), rotated(k, 0));
    for (index_t n : {3, 100, 1500})
      CHECK(dot(rotated(q, n + offset), rotated(k, n)) == Approx(reference).margin(1e-11));
  }
  // ...and it does change with m - n.
  CHECK(std::abs(dot(rotated(q, 5), rotated(k, 0)) - dot(rotated(q, 0), rotated(k, 0))) > 1e-3);
}

TEST_CASE("RoPE hand-checkable cases", "[rope]") {
  Context<cpu> ctx(1);
  SECTION("d=2, base 100, q=[3,4], m=1: rotation by 1 radian") {
    const RotaryEmbedding<cpu, double> rope(2, 2, 100.0, RopeLayout::interleaved);
    std::vector<double> q{3, 4};
    rope.apply(ctx, TensorView<double, 4>(q.data(), {1, 1, 1, 2}), 1);
    CHECK(q[0] == Approx(3 * std::cos(1.0) - 4 * std::sin(1.0)).epsilon(1e-15));
    CHECK(q[1] == Approx(3 * std::sin(1.0) + 4 * std::cos(1.0)).epsilon(1e-15));
    CHECK(q[0] == Approx(-1.744977).margin(1e-6));
    CHECK(q[1] == Approx(4.685622).margin(1e-6));
  }
  SECTION("d=4, base 4, q=[1,1,2,0], m=pi (position 1 with linear scaling 1/pi)") {
    // θ = [1, 0.5]: pair 0 turns by π -> (-1, -1), pair 1 by π/2 -> (0, 2).
    const RotaryEmbedding<cpu, double> rope(4, 2, 4.0, RopeLayout::interleaved,
                                            RopeScaling::linear(1.0 / pi));
    for (auto form : {0, 1, 2}) {
      std::vector<double> q{1, 1, 2, 0};
      const TensorView<double, 4> view(q.data(), {1, 1, 1, 4});
      if (form == 0) rope.apply(ctx, view, 1);
      if (form == 1) rope.apply(ctx, view, 1, rope::rotation_matrix{});
      if (form == 2) rope.apply(ctx, view, 1, rope::complex_multiply{});
      CHECK(q[0] == Approx(-1).margin(1e-14));
      CHECK(q[1] == Approx(-1).margin(1e-14));
      CHECK(q[2] == Approx(0).margin(1e-14));
      CHECK(q[3] == Approx(2).margin(1e-14));
    }
  }
}

TEST_CASE("Interleaved RoPE on Meta weights equals rotate_half on HF-permuted weights", "[rope]") {
  const index_t dim = 96, heads = 3, head_dim = 32, tokens = 9;
  Context<cpu> ctx(1);
  const auto x = test::random_tensor<double, 2>({tokens, dim}, 61);
  const auto wq_meta = test::random_tensor<double, 2>({heads * head_dim, dim}, 62, 0.1);
  const auto wk_meta = test::random_tensor<double, 2>({heads * head_dim, dim}, 63, 0.1);
  const auto wq_hf = permute_for_half_split(wq_meta, heads, head_dim);
  const auto wk_hf = permute_for_half_split(wk_meta, heads, head_dim);

  auto scores = [&](const Tensor<double, 2>& wq, const Tensor<double, 2>& wk, RopeLayout layout) {
    const RotaryEmbedding<cpu, double> rope(head_dim, 64, 10000.0, layout);
    Tensor<double, 4> q({1, tokens, heads, head_dim}), k({1, tokens, heads, head_dim});
    detail::linear_kernel<double>(ctx, x.cview(), wq.cview(), reshape<2>(q.view(), {tokens, heads * head_dim}));
    detail::linear_kernel<double>(ctx, x.cview(), wk.cview(), reshape<2>(k.view(), {tokens, heads * head_dim}));
    rope.apply(ctx, q.view(), 0);
    rope.apply(ctx, k.view(), 0);
    std::vector<double> result;
    for (index_t h = 0; h < heads; ++h)
      for (index_t m = 0; m < tokens; ++m)
        for (index_t n = 0; n < tokens; ++n) {
          double sum = 0;
          for (index_t i = 0; i < head_dim; ++i) sum += q.view()(0, m, h, i) * k.view()(0, n, h, i);
          result.push_back(sum);
        }
    return result;
  };
  const auto meta = scores(wq_meta, wk_meta, RopeLayout::interleaved);
  const auto hf = scores(wq_hf, wk_hf, RopeLayout::half_split);
  test::require_close("scores", hf.data(), meta.data(), meta.size(), test::tolerance<double>::nmse);
  // Without the matching layout the scores differ: the permutation is what makes them equal.
  const auto mismatched = scores(wq_hf, wk_hf, RopeLayout::interleaved);
  CHECK(test::compare(mismatched.data(), meta.data(), meta.size()).nmse > 1e-3);
}

TEST_CASE("RotaryEmbedding rejects bad arguments and leaves x untouched", "[rope]") {
  CHECK_THROWS_AS(RotaryEmbedding<cpu>(7, 16, 10000.0, RopeLayout::interleaved), config_error);
  CHECK_THROWS_WITH(RotaryEmbedding<cpu>(7, 16, 10000.0, RopeLayout::interleaved),
                    Contains("head_dim must be positive and even, got 7"));
  CHECK_THROWS_WITH(RotaryEmbedding<cpu>(8, 0, 10000.0, RopeLayout::interleaved),
                    Contains("max_seq_len"));
  CHECK_THROWS_WITH(RotaryEmbedding<cpu>(8, 16, 0.5, RopeLayout::interleaved),
                    Contains("rope_theta"));
  CHECK_THROWS_WITH(RotaryEmbedding<cpu>(8, 16, 1e4, RopeLayout::interleaved, RopeScaling::llama3(-1)),
                    Contains("factor"));

  Context<cpu> ctx(1);
  const RotaryEmbedding<cpu> rope(8, 16, 10000.0, RopeLayout::interleaved);
  auto x = test::random_tensor<float, 4>({1, 4, 2, 8}, 71);
  const auto before = test::to_vector(x.cview());
  CHECK_THROWS_AS(rope.apply(ctx, x.view(), 13), range_error);
  CHECK_THROWS_WITH(rope.apply(ctx, x.view(), 13),
                    Contains("start_pos 13") && Contains("tokens 4") && Contains("max_seq_len 16"));
  CHECK_THROWS_AS(rope.apply(ctx, x.view(), -1), range_error);
  CHECK(test::to_vector(x.cview()) == before);
  auto wrong = test::random_tensor<float, 4>({1, 4, 2, 6}, 72);
  CHECK_THROWS_WITH(rope.apply(ctx, wrong.view(), 0), Contains("head_dim = 8"));
}
