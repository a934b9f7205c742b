// The work of one forward call, from which the benchmarks derive their rate counters:
//   flops             FLOP / s
//   bytes_per_second  (weight + activation + KV cache bytes) / s
//   items_per_second  tokens / s
//
// How FLOPs are counted: a multiply-add is 2, so a product [m, k]·[k, n] is 2·m·k·n. exp, sqrt and
// division count 1 each. Attention counts the causally visible scores only (Σ over query tokens of
// the positions each one sees); the kernel also computes, then zeroes, the masked corner of its
// last tile, which is not counted. Every formulation of an operation is charged the same nominal
// FLOPs (RoPE's rotation-matrix form does far more arithmetic), so their rates compare directly.
//
// How bytes are counted: the compulsory traffic at the module's interface. Every weight (and
// constant table row) used is read once, every input read once, every output written once, and the
// KV cache positions attended to are read once per kv head and the new ones written once. Internal
// scratch (q/k/v, the SwiGLU gate/up, scores) is not counted, so bytes_per_second is a lower bound
// on the memory traffic; in a decode step the weights dominate and it compares directly with the
// machine's memory bandwidth.
#pragma once

#include "bench_shapes.hpp"

#include "llamablocks/core/tensor.hpp"

#include <cstdint>

namespace llamablocks::bench {

/// Work of one forward call. Bytes are split by what they belong to; bytes() is their sum.
struct Cost {
  double flop = 0;
  double weight_bytes = 0;
  double activation_bytes = 0;
  double kv_bytes = 0;

  double bytes() const { return weight_bytes + activation_bytes + kv_bytes; }
};

inline double real(index_t value) { return static_cast<double>(value); }

/// Size of `count` elements of T.
template <class T>
double bytes_of(double count) {
  return count * static_cast<double>(sizeof(T));
}

/// RMSNorm over [tokens, dim]: per element a square, an add, and two scalings (1/rms, gain).
template <class T>
Cost rms_norm_cost(index_t dim, index_t tokens) {
  const double elements = real(tokens) * real(dim);
  Cost cost;
  cost.flop = 4 * elements;
  cost.weight_bytes = bytes_of<T>(real(dim));
  cost.activation_bytes = bytes_of<T>(2 * elements);
  return cost;
}

/// RoPE applied in place to [tokens, heads, head_dim]: per pair 4 multiplications and 2 additions
/// (3 FLOP per element); the cos and sin rows of each position (head_dim/2 each) are read.
template <class T>
Cost rope_cost(index_t heads, index_t head_dim, index_t tokens) {
  const double elements = real(tokens) * real(heads) * real(head_dim);
  Cost cost;
  cost.flop = 3 * elements;
  cost.weight_bytes = bytes_of<T>(real(tokens) * real(head_dim));
  cost.activation_bytes = bytes_of<T>(2 * elements);
  return cost;
}

/// GroupedQueryAttention::forward of `tokens` tokens after `cached` positions: projections by
/// wq, wk, wv, wo; RoPE on q and k; q·kᵀ and p·v over the visible positions; softmax (subtract
/// the maximum, exp, divide: 3 FLOP per score).
template <class T>
Cost attention_cost(const ModelShape& shape, index_t tokens, index_t cached) {
  const double t = real(tokens);
  const double dim = real(shape.dim);
  const double q_width = real(shape.n_heads * shape.head_dim);
  const double kv_width = real(shape.n_kv_heads * shape.head_dim);
  // Σ_{i < tokens} (cached + i + 1): query token i sees positions 0 .. cached + i.
  const double visible = t * real(cached) + t * (t + 1) / 2;
  const double scores = visible * real(shape.n_heads);
  const Cost rope_q = rope_cost<T>(shape.n_heads, shape.head_dim, tokens);
  const Cost rope_k = rope_cost<T>(shape.n_kv_heads, shape.head_dim, tokens);

  Cost cost;
  cost.flop = 2 * t * dim * (2 * q_width + 2 * kv_width) + rope_q.flop + rope_k.flop +
              4 * scores * real(shape.head_dim) + 3 * scores;
  // q and k rotate with the same table rows: counted once.
  cost.weight_bytes = bytes_of<T>(2 * q_width * dim + 2 * kv_width * dim) + rope_q.weight_bytes;
  cost.activation_bytes = bytes_of<T>(2 * t * dim);
  // Keys and values of every position read (once per kv head), of the new positions written.
  const double positions = real(cached + tokens);
  cost.kv_bytes = bytes_of<T>(2 * kv_width * (positions + t));
  return cost;
}

/// SwiGLUFeedForward::forward: three products of width ffn_hidden_dim, and silu(gate)·up
/// (negate, exp, add, divide, multiply: 5 FLOP per hidden element).
template <class T>
Cost swiglu_cost(const ModelShape& shape, index_t tokens) {
  const double t = real(tokens);
  const double dim = real(shape.dim);
  const double hidden = real(shape.ffn_hidden_dim);
  Cost cost;
  cost.flop = 3 * 2 * t * dim * hidden + 5 * t * hidden;
  cost.weight_bytes = bytes_of<T>(3 * dim * hidden);
  cost.activation_bytes = bytes_of<T>(2 * t * dim);
  return cost;
}

/// One pre-norm decoder layer: two RMSNorms, attention, SwiGLU and two residual additions. The
/// residual stream is read and written once (in place); what passes between the sub-layers is
/// internal.
template <class T>
Cost llama_block_cost(const ModelShape& shape, index_t tokens, index_t cached) {
  const Cost norm = rms_norm_cost<T>(shape.dim, tokens);
  const Cost attention = attention_cost<T>(shape, tokens, cached);
  const Cost feed_forward = swiglu_cost<T>(shape, tokens);
  const double residual = real(tokens) * real(shape.dim);
  Cost cost;
  cost.flop = 2 * norm.flop + attention.flop + feed_forward.flop + 2 * residual;
  cost.weight_bytes = 2 * norm.weight_bytes + attention.weight_bytes + feed_forward.weight_bytes;
  cost.activation_bytes = bytes_of<T>(2 * residual);
  cost.kv_bytes = attention.kv_bytes;
  return cost;
}

/// Linear::forward [tokens, in_features] -> [tokens, out_features].
template <class T>
Cost linear_cost(index_t in_features, index_t out_features, index_t tokens) {
  const double t = real(tokens);
  const double in = real(in_features);
  const double out = real(out_features);
  Cost cost;
  cost.flop = 2 * t * in * out;
  cost.weight_bytes = bytes_of<T>(in * out);
  cost.activation_bytes = bytes_of<T>(t * (in + out));
  return cost;
}

/// Embedding::forward: no arithmetic; the rows of the looked-up tokens are read (not the whole
/// table), the int32 ids read and the vectors written.
template <class T>
Cost embedding_cost(index_t dim, index_t tokens) {
  const double t = real(tokens);
  const double rows = t * real(dim);
  Cost cost;
  cost.weight_bytes = bytes_of<T>(rows);
  cost.activation_bytes = bytes_of<T>(rows) + t * static_cast<double>(sizeof(std::int32_t));
  return cost;
}

/// KVCache::write of `tokens` positions: k and v read, then written into the cache.
template <class T>
Cost kv_cache_write_cost(index_t n_kv_heads, index_t head_dim, index_t tokens) {
  const double elements = 2 * real(tokens) * real(n_kv_heads * head_dim);
  Cost cost;
  cost.activation_bytes = bytes_of<T>(elements);
  cost.kv_bytes = bytes_of<T>(elements);
  return cost;
}

}  // namespace llamablocks::bench
