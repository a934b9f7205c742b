// Argument checks shared by the cpu and cuda specializations of the weight-owning modules, so that
// both backends refuse the same inputs with the same messages, before anything is written:
//   positive extents (config_error), projection inputs x: [batch, tokens, in] -> out: [.., out]
//   (shape_error), RoPE arguments and rows, KVCache shapes and writes, attention configs, inputs and
//   cache positions (range_error for positions), the q, k, v of the training self-attention, and
//   the arguments of every backward (a training forward saved, from a module of this shape; d_out
//   and d_x of its shape, disjoint).
#pragma once

#include "llamablocks/core/config.hpp"
#include "llamablocks/core/error.hpp"
#include "llamablocks/core/saved_tensor.hpp"
#include "llamablocks/core/tensor.hpp"

#include <cmath>

namespace llamablocks {
namespace detail {

/// config_error "<module>: <name> must be > 0, got <value>" unless value > 0; returns value.
inline index_t check_positive(const char* module, const char* name, index_t value) {
  require<config_error>(value > 0, module, ": ", name, " must be > 0, got ", value);
  return value;
}

/// x: [batch, tokens, in_features] contiguous; out: [batch, tokens, out_features], disjoint from x.
/// in_name names in_features in the message ("in_features", "dim").
template <class T>
void check_projection_io(const char* where, const char* in_name, index_t in_features,
                         index_t out_features, const TensorView<const T, 3>& x,
                         const TensorView<T, 3>& out) {
  require<shape_error>(x.shape(2) == in_features, where, ": x has shape ", format_shape(x.shape()),
                       ", its last dimension must be ", in_name, " = ", in_features);
  expect_shape(where, "x", x, x.shape());
  expect_shape(where, "out", out, {x.shape(0), x.shape(1), out_features});
  expect_disjoint(where, "x", x, "out", out);
}

inline void check_rope_arguments(index_t head_dim, index_t max_seq_len, double rope_theta,
                                 const RopeScaling& scaling) {
  const char* module = "RotaryEmbedding";
  require<config_error>(head_dim > 0 && head_dim % 2 == 0, module,
                        ": head_dim must be positive and even, got ", head_dim);
  require<config_error>(max_seq_len > 0, module, ": max_seq_len must be > 0, got ", max_seq_len);
  require<config_error>(std::isfinite(rope_theta) && rope_theta > 1, module,
                        ": rope_theta must be > 1 and finite, got ", rope_theta);
  scaling.validate();
}

/// x: [batch, tokens, heads, head_dim] contiguous, at positions start_pos .. < max_seq_len.
template <class T>
void check_rope_rows(const char* where, const char* name, const TensorView<T, 4>& x,
                     index_t start_pos, index_t head_dim, index_t max_seq_len) {
  require<shape_error>(x.shape(3) == head_dim, where, ": ", name, " has shape ",
                       format_shape(x.shape()), ", its last dimension must be head_dim = ",
                       head_dim);
  expect_shape(where, name, x, x.shape());
  expect_positions(where, start_pos, x.shape(1), max_seq_len);
}

/// [batch, n_kv_heads, max_seq_len, head_dim], every extent > 0.
inline Shape<4> kv_cache_shape(index_t batch, index_t n_kv_heads, index_t head_dim,
                               index_t max_seq_len) {
  const char* module = "KVCache";
  check_positive(module, "batch", batch);
  check_positive(module, "n_kv_heads", n_kv_heads);
  check_positive(module, "head_dim", head_dim);
  check_positive(module, "max_seq_len", max_seq_len);
  return {batch, n_kv_heads, max_seq_len, head_dim};
}

/// k, v: [batch, tokens, n_kv_heads, head_dim] contiguous, written at start_pos <= length without
/// passing max_seq_len.
template <class Cache, class T>
void check_kv_cache_write(const Cache& cache, index_t start_pos, const TensorView<const T, 4>& k,
                          const TensorView<const T, 4>& v) {
  const char* where = "KVCache::write";
  const Shape<4> expected{cache.batch(), k.shape(1), cache.n_kv_heads(), cache.head_dim()};
  expect_shape(where, "k", k, expected);
  expect_shape(where, "v", v, expected);
  require<range_error>(start_pos >= 0 && start_pos <= cache.length(), where, ": start_pos ",
                       start_pos, " must be in [0, length ", cache.length(),
                       "] (positions are written without gaps)");
  expect_positions(where, start_pos, k.shape(1), cache.max_seq_len());
}

/// 0 <= new_length <= cache.length().
template <class Cache>
void check_kv_cache_truncate(const Cache& cache, index_t new_length) {
  require<range_error>(new_length >= 0 && new_length <= cache.length(),
                       "KVCache::truncate: new_length ", new_length, " must be in [0, length ",
                       cache.length(), "]");
}

/// dim, heads and head_dim positive, n_heads a multiple of n_kv_heads, rope present and of
/// config.head_dim.
template <class Rope>
void check_attention_config(const ModelConfig& config, const Rope* rope) {
  const char* module = "GroupedQueryAttention";
  check_positive(module, "dim", config.dim);
  check_positive(module, "n_heads", config.n_heads);
  check_positive(module, "n_kv_heads", config.n_kv_heads);
  check_positive(module, "head_dim", config.head_dim);
  require<config_error>(config.n_heads % config.n_kv_heads == 0, module, ": n_heads (",
                        config.n_heads, ") must be divisible by n_kv_heads (", config.n_kv_heads,
                        ")");
  require<config_error>(rope != nullptr, module, ": rope must not be null");
  require<config_error>(rope->head_dim() == config.head_dim, module, ": rope head_dim ",
                        rope->head_dim(), " differs from head_dim ", config.head_dim);
}

/// x: [batch, tokens ≥ 1, dim] contiguous, out: x's shape and disjoint from it.
template <class T>
void check_attention_input(const char* where, index_t dim, const TensorView<const T, 3>& x,
                           const TensorView<T, 3>& out) {
  expect_shape(where, "x", x, {x.shape(0), x.shape(1), dim});
  expect_shape(where, "out", out, x.shape());
  expect_disjoint(where, "x", x, "out", out);
  require<shape_error>(x.shape(1) >= 1, where, ": x must hold at least one token, got ",
                       x.shape(1));
}

/// The cache holds [batch, n_kv_heads, .., head_dim] and start_pos <= its length; the tokens fit
/// both the cache and the rotary tables.
template <class Cache>
void check_attention_cache(const char* where, const Cache& cache, index_t batch, index_t tokens,
                           index_t n_kv_heads, index_t head_dim, index_t start_pos,
                           index_t rope_max_seq_len) {
  require<shape_error>(
      cache.batch() == batch && cache.n_kv_heads() == n_kv_heads && cache.head_dim() == head_dim,
      where, ": cache [batch ", cache.batch(), ", n_kv_heads ", cache.n_kv_heads(), ", head_dim ",
      cache.head_dim(), "] does not match x batch ", batch, ", n_kv_heads ", n_kv_heads,
      ", head_dim ", head_dim);
  require<range_error>(start_pos >= 0 && start_pos <= cache.length(), where, ": start_pos ",
                       start_pos, " must be in [0, cache length ", cache.length(), "]");
  expect_positions(where, start_pos, tokens, cache.max_seq_len());
  expect_positions(where, start_pos, tokens, rope_max_seq_len);
}

/// q, out: [cache batch, tokens, n_heads, cache head_dim] contiguous, n_heads a multiple of the
/// cache's n_kv_heads, and positions start_pos .. start_pos + tokens − 1 already in the cache.
template <class Cache, class T>
void check_causal_attention(const char* where, const TensorView<const T, 4>& q,
                            const Cache& cache, index_t start_pos, const TensorView<T, 4>& out) {
  const index_t tokens = q.shape(1);
  const index_t n_heads = q.shape(2);
  expect_shape(where, "q", q, {cache.batch(), tokens, n_heads, cache.head_dim()});
  expect_shape(where, "out", out, q.shape());
  require<shape_error>(n_heads % cache.n_kv_heads() == 0, where, ": n_heads (", n_heads,
                       ") must be a multiple of the cache's n_kv_heads (", cache.n_kv_heads(),
                       ")");
  require<range_error>(start_pos >= 0 && tokens <= cache.length() - start_pos, where,
                       ": start_pos ", start_pos, " + tokens ", tokens,
                       " exceeds the cache length ", cache.length());
}

/// Training self-attention: q: [batch, tokens, n_heads, head_dim], k and v: [batch, tokens,
/// n_kv_heads, head_dim], contiguous, n_heads a multiple of n_kv_heads ≥ 1.
template <class T>
void check_self_attention(const char* where, const TensorView<const T, 4>& q,
                          const TensorView<const T, 4>& k, const TensorView<const T, 4>& v) {
  expect_shape(where, "q", q, q.shape());
  const index_t n_kv_heads = k.shape(2);
  require<shape_error>(n_kv_heads >= 1 && q.shape(2) % n_kv_heads == 0, where, ": n_heads (",
                       q.shape(2), ") of q must be a multiple of n_kv_heads (", n_kv_heads,
                       ") of k");
  expect_shape(where, "k", k, {q.shape(0), q.shape(1), n_kv_heads, q.shape(3)});
  expect_shape(where, "v", v, k.shape());
}

/// causal_self_attention_backward (either backend): q, k, v as check_self_attention; out, d_out
/// and d_q of q's shape, d_k and d_v of k's.
template <class T>
void check_self_attention_backward(const char* where, const TensorView<const T, 4>& q,
                                   const TensorView<const T, 4>& k, const TensorView<const T, 4>& v,
                                   const TensorView<const T, 4>& out,
                                   const TensorView<const T, 4>& d_out, const TensorView<T, 4>& d_q,
                                   const TensorView<T, 4>& d_k, const TensorView<T, 4>& d_v) {
  check_self_attention(where, q, k, v);
  expect_shape(where, "out", out, q.shape());
  expect_shape(where, "d_out", d_out, q.shape());
  expect_shape(where, "d_q", d_q, q.shape());
  expect_shape(where, "d_k", d_k, k.shape());
  expect_shape(where, "d_v", d_v, k.shape());
}

/// d_out: [batch, tokens, out_features] and d_x: x_shape (the saved x's), disjoint unless
/// `in_place` allows d_x to be d_out itself (same data, then of the same shape).
template <class T>
void check_backward_io(const char* where, const Shape<3>& x_shape, index_t out_features,
                       const TensorView<const T, 3>& d_out, const TensorView<T, 3>& d_x,
                       bool in_place = false) {
  expect_shape(where, "d_out", d_out, {x_shape[0], x_shape[1], out_features});
  expect_shape(where, "d_x", d_x, x_shape);
  if (!in_place || static_cast<const void*>(d_x.data()) != static_cast<const void*>(d_out.data()))
    expect_disjoint(where, "d_out", d_out, "d_x", d_x);
}

/// RMSNorm's backward (either backend): a training forward saved x: [batch, tokens, dim]; d_out
/// and d_x of that shape, d_x disjoint from d_out or d_out itself. Returns the saved x's shape.
template <class Activations, class T>
Shape<3> check_rms_norm_backward(const char* where, const Activations& activations, index_t dim,
                                 const TensorView<const T, 3>& d_out, const TensorView<T, 3>& d_x) {
  expect_saved(where, activations.x);
  const Shape<3> x_shape = activations.x.shape();
  require<shape_error>(x_shape[2] == dim, where, ": activations hold x of shape ", format_shape(x_shape),
                       ", not from an RMSNorm with dim = ", dim);
  check_backward_io(where, x_shape, dim, d_out, d_x, /*in_place=*/true);
  return x_shape;
}

/// Linear's backward: a training forward saved x: [batch, tokens, in_features]; d_out: [batch,
/// tokens, out_features], d_x: x's shape, disjoint. Returns the saved x's shape.
template <class Activations, class T>
Shape<3> check_linear_backward(const char* where, const Activations& activations, index_t in_features,
                               index_t out_features, const TensorView<const T, 3>& d_out,
                               const TensorView<T, 3>& d_x) {
  expect_saved(where, activations.x);
  const Shape<3> x_shape = activations.x.shape();
  require<shape_error>(x_shape[2] == in_features, where, ": activations hold x of shape ",
                       format_shape(x_shape), ", not from a Linear with in_features = ", in_features);
  check_backward_io(where, x_shape, out_features, d_out, d_x);
  return x_shape;
}

/// SwiGLUFeedForward's backward: a training forward saved x: [batch, tokens, dim] and gate:
/// [batch·tokens, ffn_hidden_dim]; d_out and d_x of x's shape, disjoint. Returns x's shape.
template <class Activations, class T>
Shape<3> check_swiglu_backward(const char* where, const Activations& activations, index_t dim,
                               index_t ffn_hidden_dim, const TensorView<const T, 3>& d_out,
                               const TensorView<T, 3>& d_x) {
  expect_saved(where, activations.x);
  const Shape<3> x_shape = activations.x.shape();
  const index_t rows = x_shape[0] * x_shape[1];
  require<shape_error>(
      x_shape[2] == dim && activations.gate.shape() == Shape<2>{rows, ffn_hidden_dim}, where,
      ": activations hold x of shape ", format_shape(x_shape), " and gate of shape ",
      format_shape(activations.gate.shape()), ", not from a SwiGLUFeedForward with dim = ", dim,
      ", ffn_hidden_dim = ", ffn_hidden_dim);
  check_backward_io(where, x_shape, dim, d_out, d_x);
  return x_shape;
}

/// GroupedQueryAttention's backward: a training forward saved x: [batch, tokens, dim], q after
/// RoPE: [batch, tokens, n_heads, head_dim] and k: [batch, tokens, n_kv_heads, head_dim]; d_out
/// and d_x of x's shape, disjoint. Returns x's shape.
template <class Activations, class T>
Shape<3> check_attention_backward(const char* where, const Activations& activations, index_t dim,
                                  index_t n_heads, index_t n_kv_heads, index_t head_dim,
                                  const TensorView<const T, 3>& d_out, const TensorView<T, 3>& d_x) {
  expect_saved(where, activations.x);
  const Shape<3> x_shape = activations.x.shape();
  const index_t batch = x_shape[0], tokens = x_shape[1];
  require<shape_error>(
      x_shape[2] == dim && activations.q.shape() == Shape<4>{batch, tokens, n_heads, head_dim} &&
          activations.k.shape() == Shape<4>{batch, tokens, n_kv_heads, head_dim},
      where, ": activations hold x of shape ", format_shape(x_shape), ", q of shape ",
      format_shape(activations.q.shape()), " and k of shape ", format_shape(activations.k.shape()),
      ", not from a GroupedQueryAttention with dim ", dim, ", n_heads ", n_heads, ", n_kv_heads ",
      n_kv_heads, ", head_dim ", head_dim);
  check_backward_io(where, x_shape, dim, d_out, d_x);
  return x_shape;
}

}  // namespace detail
}  // namespace llamablocks
