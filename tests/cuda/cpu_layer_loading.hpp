// The float weights of a LayerShape / LayerWeights (cpu_reference.hpp) copied into an attention or
// feed-forward module, for the host-compiled cpu references (cpu_reference.cpp,
// cpu_backward_reference.cpp). Host memory only.
#pragma once

#include "cpu_reference.hpp"

#include "llamablocks/core/tensor.hpp"

#include <cstdint>

namespace llamablocks::test {

template <class Attention>
void load_attention(Attention& attention, const LayerShape& s, const LayerWeights& w) {
  const std::int64_t q_width = s.n_heads * s.head_dim;
  const std::int64_t kv_width = s.n_kv_heads * s.head_dim;
  attention.wq().copy_from(TensorView<const float, 2>(w.wq, {q_width, s.dim}));
  attention.wk().copy_from(TensorView<const float, 2>(w.wk, {kv_width, s.dim}));
  attention.wv().copy_from(TensorView<const float, 2>(w.wv, {kv_width, s.dim}));
  attention.wo().copy_from(TensorView<const float, 2>(w.wo, {s.dim, q_width}));
}

template <class FeedForward>
void load_feed_forward(FeedForward& feed_forward, const LayerShape& s, const LayerWeights& w) {
  feed_forward.w1().copy_from(TensorView<const float, 2>(w.w1, {s.ffn_hidden_dim, s.dim}));
  feed_forward.w2().copy_from(TensorView<const float, 2>(w.w2, {s.dim, s.ffn_hidden_dim}));
  feed_forward.w3().copy_from(TensorView<const float, 2>(w.w3, {s.ffn_hidden_dim, s.dim}));
}

}  // namespace llamablocks::test
