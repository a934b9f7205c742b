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
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/backends/cpu/kv_cache.hpp"
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
  detail::expect_shape(where, "q", q, {cache.batch(), tokens, n_heads, cache.head_dim()});
  detail::expect_shape(where, "out", out, q.shape());
  detail::require<shape_error>(n_heads % n_kv_heads == 0, where, ": n_heads (", n_heads,
                               ") must be a multiple of the cache's n_kv_heads (", n_kv_heads, ")");
  detail::require<range_error>(start_pos >= 0 && tokens <= cache.length() - start_pos, where,
                               ": start_pos ", start_pos, " + tokens ", tokens,
                               " exceeds the cache length ", cache.length());
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

}  // namespace llamablocks
