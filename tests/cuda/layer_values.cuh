// Inputs and weights shared by the cross-backend cuda tests (test_cuda_modules, test_cuda_backward):
// host values rounded to T with their float twins for the cpu reference, the output reader that
// checks the guard regions, and the random weights of one layer.
#pragma once

#include "cpu_reference.hpp"
#include "cuda_test_support.cuh"

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

namespace llamablocks::test {

/// Host values rounded to T, and the same values as float for the cpu reference.
template <class T>
struct Values {
  std::vector<T> rounded;
  std::vector<float> exact;
};

template <class T>
Values<T> make_values(std::mt19937& rng, index_t count, float bound) {
  std::vector<double> wide;
  Values<T> values;
  values.rounded = random_values<T>(rng, static_cast<std::size_t>(count), -bound, bound, wide);
  values.exact.assign(wide.begin(), wide.end());
  return values;
}

template <class T>
std::string label(const char* module, const std::string& shape) {
  return std::string(module) + "<cuda, " + tolerance_cuda<T>::name + "> " + shape;
}

template <class T>
std::vector<double> read_checked(const std::string& what, const GuardedBuffer<T>& buffer) {
  std::vector<T> host;
  if (!buffer.read(host)) {
    ++failures;
    std::printf("FAIL %s: a guard region around the output was overwritten\n", what.c_str());
  }
  return widen(host);
}

inline std::vector<double> wide(const std::vector<float>& values) {
  return std::vector<double>(values.begin(), values.end());
}

/// Random weights of one layer, rounded to T; q and k projections 3× larger so that the attention
/// scores spread (standard deviation about 2) and the softmax is far from uniform.
template <class T>
struct Layer {
  Layer(std::mt19937& rng, const LayerShape& s)
      : wq(make_values<T>(rng, s.n_heads * s.head_dim * s.dim, 3.0f * bound(s.dim))),
        wk(make_values<T>(rng, s.n_kv_heads * s.head_dim * s.dim, 3.0f * bound(s.dim))),
        wv(make_values<T>(rng, s.n_kv_heads * s.head_dim * s.dim, bound(s.dim))),
        wo(make_values<T>(rng, s.dim * s.n_heads * s.head_dim, bound(s.n_heads * s.head_dim))),
        w1(make_values<T>(rng, s.ffn_hidden_dim * s.dim, bound(s.dim))),
        w2(make_values<T>(rng, s.dim * s.ffn_hidden_dim, bound(s.ffn_hidden_dim))),
        w3(make_values<T>(rng, s.ffn_hidden_dim * s.dim, bound(s.dim))),
        attention_norm(gains(rng, s.dim)),
        ffn_norm(gains(rng, s.dim)) {}

  static float bound(index_t fan_in) { return std::sqrt(3.0f / static_cast<float>(fan_in)); }
  static Values<T> gains(std::mt19937& rng, index_t dim) {
    Values<T> values = make_values<T>(rng, dim, 0.5f);
    for (std::size_t i = 0; i < values.exact.size(); ++i) {
      values.rounded[i] = detail::from_float<T>(1.0f + values.exact[i]);
      values.exact[i] = detail::to_float(values.rounded[i]);
    }
    return values;
  }

  LayerWeights host() const {
    return {wq.exact.data(), wk.exact.data(), wv.exact.data(), wo.exact.data(), w1.exact.data(),
            w2.exact.data(), w3.exact.data(), attention_norm.exact.data(), ffn_norm.exact.data()};
  }

  template <class Attention>
  void load_attention(Attention& attention, const LayerShape& s) const {
    const index_t q_width = s.n_heads * s.head_dim;
    const index_t kv_width = s.n_kv_heads * s.head_dim;
    attention.wq().copy_from(TensorView<const T, 2>(wq.rounded.data(), {q_width, s.dim}));
    attention.wk().copy_from(TensorView<const T, 2>(wk.rounded.data(), {kv_width, s.dim}));
    attention.wv().copy_from(TensorView<const T, 2>(wv.rounded.data(), {kv_width, s.dim}));
    attention.wo().copy_from(TensorView<const T, 2>(wo.rounded.data(), {s.dim, q_width}));
  }
  template <class FeedForward>
  void load_feed_forward(FeedForward& feed_forward, const LayerShape& s) const {
    feed_forward.w1().copy_from(TensorView<const T, 2>(w1.rounded.data(), {s.ffn_hidden_dim, s.dim}));
    feed_forward.w2().copy_from(TensorView<const T, 2>(w2.rounded.data(), {s.dim, s.ffn_hidden_dim}));
    feed_forward.w3().copy_from(TensorView<const T, 2>(w3.rounded.data(), {s.ffn_hidden_dim, s.dim}));
  }

  Values<T> wq, wk, wv, wo, w1, w2, w3, attention_norm, ffn_norm;
};

}  // namespace llamablocks::test
