// Causal scaled-dot-product attention over a KV cache, cpu backend (the core of
// GroupedQueryAttention, after the projections and RoPE):
//   o[b, t, h] = softmax_s( q[b, t, h] · K[b, g(h), s]ᵀ / sqrt(head_dim) ),  s <= start_pos + t
//                · V[b, g(h), s]              g(h) = h / (n_heads / n_kv_heads)
//   q, out: [batch, tokens, n_heads, head_dim]    K, V: the cache [batch, n_kv_heads, max_seq_len, head_dim]
//
// Work is split into tasks of (sequence, kv head, tile of query tokens). A task stacks the queries
// of all heads of its group for its tokens into one matrix, so each K and V block is read once per
// group (not once per query head) and the scores come from one GEMM: S = Q Kᵀ, then a row-wise
// stable softmax (max subtracted) with the causal mask, then O = P V.
//
// Training (causal_self_attention and its backward): whole sequences from position 0, k and v
// taken from the projections rather than a cache, one task per (sequence, kv head). The backward
// recomputes P from q and k instead of keeping [tokens, tokens] per head:
//   dV_g += Pᵀ dO_h    dP = dO_h V_gᵀ    dS = P ⊙ (dP − rowsum(dO_h ⊙ O_h))
//   dQ_h  = dS K_g / sqrt(head_dim)      dK_g += dSᵀ Q_h / sqrt(head_dim)
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/backends/cpu/kv_cache.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/core/workspace.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace llamablocks {
namespace detail {

/// Rows (query token × head of the group) stacked per task: enough for an efficient GEMM,
/// few enough that the score block of a long cache stays in cache.
inline constexpr index_t attention_tile_rows = 64;

}  // namespace detail

/// Scratch causal_attention needs, [threads, elements per thread]: per thread the stacked queries
/// [rows, head_dim], the scores [rows, keys] and the outputs [rows, head_dim] of one task.
/// Callers that must not fail halfway (GroupedQueryAttention) reserve it before writing anything.
inline Shape<2> causal_attention_scratch_shape(const Context<cpu>& ctx, index_t tokens,
                                               index_t start_pos, index_t n_heads,
                                               index_t n_kv_heads, index_t head_dim) {
  const index_t group = n_heads / n_kv_heads;
  const index_t tile_tokens = std::max<index_t>(1, detail::attention_tile_rows / group);
  const index_t max_rows = std::min(tile_tokens, tokens) * group;
  return {ctx.num_threads(), max_rows * (2 * head_dim + start_pos + tokens)};
}

/// q: [batch, tokens, n_heads, head_dim], RoPE applied; the cache must already hold positions
/// 0 .. start_pos + tokens − 1. out: [batch, tokens, n_heads, head_dim]. scratch is grown as needed.
template <class T>
void causal_attention(const Context<cpu>& ctx, const TensorView<const T, 4>& q,
                      const KVCache<cpu, T>& cache, index_t start_pos, const TensorView<T, 4>& out,
                      Workspace<T, cpu>& scratch) {
  detail::check_cpu_scalar<T>();
  const char* where = "causal_attention";
  const index_t batch = q.shape(0);
  const index_t tokens = q.shape(1);
  const index_t n_heads = q.shape(2);
  const index_t head_dim = q.shape(3);
  const index_t n_kv_heads = cache.n_kv_heads();
  detail::check_causal_attention(where, q, cache, start_pos, out);
  if (tokens == 0) return;

  const index_t group = n_heads / n_kv_heads;
  const index_t tile_tokens = std::max<index_t>(1, detail::attention_tile_rows / group);
  const index_t tiles = (tokens + tile_tokens - 1) / tile_tokens;
  const auto buffers = scratch.template get<2>(
      causal_attention_scratch_shape(ctx, tokens, start_pos, n_heads, n_kv_heads, head_dim));
  const index_t per_thread = buffers.shape(1);
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  const auto keys = cache.keys();
  const auto values = cache.values();

  detail::parallel_for(ctx, batch * n_kv_heads * tiles, [&](index_t task) {
    const index_t tile = task % tiles;
    const index_t kv_head = (task / tiles) % n_kv_heads;
    const index_t b = task / (tiles * n_kv_heads);
    const index_t first_token = tile * tile_tokens;
    const index_t tile_count = std::min(tile_tokens, tokens - first_token);
    const index_t rows = tile_count * group;
    const index_t key_count = start_pos + first_token + tile_count;  // visible to the last row

    T* buffer = buffers.data() + detail::thread_index() * per_thread;
    auto stacked_q = detail::strided_matrix(buffer, rows, head_dim, head_dim);
    auto scores = detail::strided_matrix(buffer + rows * head_dim, rows, key_count, key_count);
    auto stacked_out =
        detail::strided_matrix(buffer + rows * (head_dim + key_count), rows, head_dim, head_dim);

    // Row r = (token first_token + r / group, query head kv_head * group + r % group); the heads
    // of one group are adjacent in q, so each token contributes one [group, head_dim] block.
    for (index_t i = 0; i < tile_count; ++i)
      stacked_q.middleRows(i * group, group) =
          detail::strided_matrix(&q(b, first_token + i, kv_head * group, 0), group, head_dim,
                                 head_dim) * scale;

    const auto k_block = detail::strided_matrix(&keys(b, kv_head, 0, 0), key_count, head_dim,
                                                head_dim);
    const auto v_block = detail::strided_matrix(&values(b, kv_head, 0, 0), key_count, head_dim,
                                                head_dim);
    scores.noalias() = stacked_q * k_block.transpose();

    for (index_t r = 0; r < rows; ++r) {
      const index_t visible = start_pos + first_token + r / group + 1;
      auto row = scores.row(r);
      auto seen = row.head(visible).array();
      const T row_max = seen.maxCoeff();
      seen = (seen - row_max).exp();
      seen /= seen.sum();
      row.tail(key_count - visible).setZero();
    }
    stacked_out.noalias() = scores * v_block;

    for (index_t i = 0; i < tile_count; ++i)
      detail::strided_matrix(&out(b, first_token + i, kv_head * group, 0), group, head_dim,
                             head_dim) = stacked_out.middleRows(i * group, group);
  });
}

namespace detail {

/// P = softmax(Q Kᵀ · scale + causal mask) for one (sequence, head) from position 0: row t sees
/// keys 0 .. t and is zero beyond. q_head: [tokens, head_dim], k_head: [tokens, head_dim] (strided
/// maps), probabilities: [tokens, tokens].
template <class T, class QueryMap, class KeyMap, class ProbabilityMap>
void causal_probabilities(const QueryMap& q_head, const KeyMap& k_head, T scale,
                          ProbabilityMap& probabilities) {
  const index_t tokens = q_head.rows();
  probabilities.noalias() = q_head * k_head.transpose();
  for (index_t r = 0; r < tokens; ++r) {
    auto row = probabilities.row(r);
    auto seen = row.head(r + 1).array();
    seen *= scale;
    const T row_max = seen.maxCoeff();
    seen = (seen - row_max).exp();
    seen /= seen.sum();
    row.tail(tokens - r - 1).setZero();
  }
}

/// Scratch of the training attention: per thread, `blocks` [tokens, tokens] matrices.
inline Shape<2> self_attention_scratch_shape(const Context<cpu>& ctx, index_t tokens, index_t blocks) {
  return {ctx.num_threads(), blocks * tokens * tokens};
}

/// What causal_self_attention and its backward derive from q [batch, tokens, n_heads, head_dim]
/// and k [batch, tokens, n_kv_heads, head_dim] (checked by check_self_attention first).
template <class T>
struct SelfAttentionLayout {
  index_t batch, tokens, n_heads, head_dim, n_kv_heads;
  index_t group;      // query heads per kv head: head h reads kv head h / group
  index_t q_stride;   // elements between consecutive tokens of q, out: n_heads · head_dim
  index_t kv_stride;  // of k, v: n_kv_heads · head_dim
  T scale;            // 1 / sqrt(head_dim)

  SelfAttentionLayout(const TensorView<const T, 4>& q, const TensorView<const T, 4>& k)
      : batch(q.shape(0)), tokens(q.shape(1)), n_heads(q.shape(2)), head_dim(q.shape(3)),
        n_kv_heads(k.shape(2)), group(n_kv_heads > 0 ? n_heads / n_kv_heads : 0),
        q_stride(n_heads * head_dim), kv_stride(n_kv_heads * head_dim),
        scale(static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim)))) {}

  /// Head `head` of sequence b of q, out or a gradient of their shape: [tokens, head_dim].
  template <class U>
  auto q_rows(const TensorView<U, 4>& x, index_t b, index_t head) const {
    return strided_matrix(&x(b, 0, head, 0), tokens, head_dim, q_stride);
  }
  /// Kv head `kv_head` of sequence b of k, v or a gradient of their shape: [tokens, head_dim].
  template <class U>
  auto kv_rows(const TensorView<U, 4>& x, index_t b, index_t kv_head) const {
    return strided_matrix(&x(b, 0, kv_head, 0), tokens, head_dim, kv_stride);
  }
};

}  // namespace detail

/// Causal self-attention over whole sequences from position 0, without a cache (training):
///   out[b, :, h] = softmax( q[b, :, h] · k[b, :, g(h)]ᵀ / sqrt(head_dim) + causal mask ) · v[b, :, g(h)]
/// q, out: [batch, tokens, n_heads, head_dim]   k, v: [batch, tokens, n_kv_heads, head_dim],
/// g(h) = h / (n_heads / n_kv_heads). scratch grows to one [tokens, tokens] block per thread.
template <class T>
void causal_self_attention(const Context<cpu>& ctx, const TensorView<const T, 4>& q,
                           const TensorView<const T, 4>& k, const TensorView<const T, 4>& v,
                           const TensorView<T, 4>& out, Workspace<T, cpu>& scratch) {
  detail::check_cpu_scalar<T>();
  const char* where = "causal_self_attention";
  detail::check_self_attention(where, q, k, v);
  detail::expect_shape(where, "out", out, q.shape());
  const detail::SelfAttentionLayout<T> s(q, k);
  if (s.tokens == 0) return;
  const auto buffers =
      scratch.template get<2>(detail::self_attention_scratch_shape(ctx, s.tokens, 1));

  detail::parallel_for(ctx, s.batch * s.n_heads, [&](index_t task) {
    const index_t head = task % s.n_heads;
    const index_t b = task / s.n_heads;
    const index_t kv_head = head / s.group;
    auto probabilities = detail::strided_matrix(
        buffers.data() + detail::thread_index() * buffers.shape(1), s.tokens, s.tokens, s.tokens);
    const auto q_head = s.q_rows(q, b, head);
    const auto k_head = s.kv_rows(k, b, kv_head);
    const auto v_head = s.kv_rows(v, b, kv_head);
    detail::causal_probabilities(q_head, k_head, s.scale, probabilities);
    s.q_rows(out, b, head).noalias() = probabilities * v_head;
  });
}

/// Backward of causal_self_attention (see the formulas at the top), P recomputed from q and k.
/// q, out, d_out, d_q: [batch, tokens, n_heads, head_dim]; k, v, d_k, d_v: [batch, tokens,
/// n_kv_heads, head_dim]; d_q, d_k, d_v are written and must not overlap the inputs. scratch grows
/// to two [tokens, tokens] blocks per thread.
template <class T>
void causal_self_attention_backward(const Context<cpu>& ctx, const TensorView<const T, 4>& q,
                                    const TensorView<const T, 4>& k,
                                    const TensorView<const T, 4>& v,
                                    const TensorView<const T, 4>& out,
                                    const TensorView<const T, 4>& d_out,
                                    const TensorView<T, 4>& d_q, const TensorView<T, 4>& d_k,
                                    const TensorView<T, 4>& d_v, Workspace<T, cpu>& scratch) {
  detail::check_cpu_scalar<T>();
  const char* where = "causal_self_attention_backward";
  detail::check_self_attention_backward(where, q, k, v, out, d_out, d_q, d_k, d_v);
  const detail::SelfAttentionLayout<T> s(q, k);
  if (s.tokens == 0) return;
  const auto buffers =
      scratch.template get<2>(detail::self_attention_scratch_shape(ctx, s.tokens, 2));

  // One task per (sequence, kv head): it alone writes d_k and d_v of that head, summing over the
  // query heads of its group, so no two threads add into the same rows.
  detail::parallel_for(ctx, s.batch * s.n_kv_heads, [&](index_t task) {
    const index_t kv_head = task % s.n_kv_heads;
    const index_t b = task / s.n_kv_heads;
    T* buffer = buffers.data() + detail::thread_index() * buffers.shape(1);
    auto probabilities = detail::strided_matrix(buffer, s.tokens, s.tokens, s.tokens);
    auto d_scores =
        detail::strided_matrix(buffer + s.tokens * s.tokens, s.tokens, s.tokens, s.tokens);
    const auto k_head = s.kv_rows(k, b, kv_head);
    const auto v_head = s.kv_rows(v, b, kv_head);
    auto d_k_head = s.kv_rows(d_k, b, kv_head);
    auto d_v_head = s.kv_rows(d_v, b, kv_head);
    d_k_head.setZero();
    d_v_head.setZero();
    for (index_t head = kv_head * s.group; head < (kv_head + 1) * s.group; ++head) {
      const auto q_head = s.q_rows(q, b, head);
      const auto out_head = s.q_rows(out, b, head);
      const auto d_out_head = s.q_rows(d_out, b, head);
      auto d_q_head = s.q_rows(d_q, b, head);
      detail::causal_probabilities(q_head, k_head, s.scale, probabilities);
      d_v_head.noalias() += probabilities.transpose() * d_out_head;
      d_scores.noalias() = d_out_head * v_head.transpose();
      for (index_t r = 0; r < s.tokens; ++r) {
        const T row_dot = d_out_head.row(r).dot(out_head.row(r));
        d_scores.row(r).array() = probabilities.row(r).array() * (d_scores.row(r).array() - row_dot);
      }
      d_q_head.noalias() = d_scores * k_head;
      d_q_head *= s.scale;
      d_k_head.noalias() += (d_scores.transpose() * q_head) * s.scale;
    }
  });
}

}  // namespace llamablocks
