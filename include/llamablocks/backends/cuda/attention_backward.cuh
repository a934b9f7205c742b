// Backward of causal self-attention over whole sequences from position 0 (training), cuda backend,
// the twin of causal_self_attention_backward in backends/cpu/attention.hpp:
//   S = Q_h K_gᵀ · s (s = 1/sqrt(head_dim), causal: key j visible to query i when j ≤ i)
//   P = softmax(S) row by row, O_h = P V_g           g = h / (n_heads / n_kv_heads)
//   dV_g += Pᵀ dO_h    dP = dO_h V_gᵀ    dS = P ⊙ (dP − rowsum(dO_h ⊙ O_h))
//   dQ_h  = s · dS K_g                    dK_g += s · dSᵀ Q_h
//   q, out, d_out, d_q: [batch, tokens, n_heads, head_dim]
//   k, v, d_k, d_v:     [batch, tokens, n_kv_heads, head_dim]
// P is recomputed from q and k, never stored: no [tokens, tokens] buffer anywhere. Three kernels,
// all in float whatever T is, each warp owning one row and each lane head_dim/32 of its columns
// (lane + 32·c), so every dot product is a warp_sum:
//   1. attention_backward_row_stats, one warp per query row (b, t, h):
//        lse[row] = log Σ_{j ≤ t} exp(S[t, j])  (online: running max m and sum l)
//        delta[row] = Σ_c dO[row, c] · O[row, c]
//   2. attention_backward_dq, one warp per query row: for keys j ≤ t,
//        P = exp(S − lse), dS = P · (dO·V_j − delta), dQ += dS · K_j; then dQ ·= s
//   3. attention_backward_dkv, one warp per key row (b, j, g): for each query head h of group g
//      and each query t ≥ j, the same P and dS, dV_j += P · dO_t, dK_j += dS · Q_t; then dK ·= s.
//      A key row is summed by its one warp only, over the whole group, so there are no atomics and
//      the result does not depend on scheduling.
// Scratch: lse and delta, 2 · batch · tokens · n_heads floats. head_dim up to 256. Correctness and
// clarity before speed: the work is that of two plain attention forwards, without tiles.
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/core/error.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/core/workspace.hpp"

#include <cmath>
#include <type_traits>

namespace llamablocks {
namespace detail {

inline constexpr int attention_backward_warps = 4;  // warps (rows) per block
inline constexpr int attention_backward_max_head_dim = 256;

/// Shape of one backward call, as the kernels see it.
struct SelfAttentionGeometry {
  int batch;
  int tokens;
  int n_heads;
  int n_kv_heads;
  int group;     // n_heads / n_kv_heads
  int head_dim;
  float scale;   // 1 / sqrt(head_dim)
};

/// Lane `lane`'s columns lane + 32·c of a row of `head_dim` elements, as float (0 past the end).
template <class T, int ColumnsPerLane>
__device__ inline void load_row_columns(const T* row, int head_dim, int lane,
                                        float (&values)[ColumnsPerLane]) {
#pragma unroll
  for (int c = 0; c < ColumnsPerLane; ++c) {
    const int column = lane + 32 * c;
    values[c] = column < head_dim ? to_float(row[column]) : 0.0f;
  }
}

/// Offset of row (b, t, head) of a [batch, tokens, heads, head_dim] tensor.
__device__ inline long long head_row_offset(int b, int t, int head, int tokens, int heads,
                                            int head_dim) {
  return ((static_cast<long long>(b) * tokens + t) * heads + head) * head_dim;
}

/// Kernel 1. grid ceil(batch·tokens·n_heads / warps), attention_backward_warps·32 threads.
/// Query row r = (b·tokens + t)·n_heads + h, the row index of q itself.
template <class T, int ColumnsPerLane>
__global__ void __launch_bounds__(attention_backward_warps * 32)
    attention_backward_row_stats(const T* __restrict__ q, const T* __restrict__ k,
                                 const T* __restrict__ out, const T* __restrict__ d_out,
                                 float* __restrict__ lse, float* __restrict__ delta,
                                 SelfAttentionGeometry g) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const long long row = static_cast<long long>(blockIdx.x) * attention_backward_warps +
                        static_cast<int>(threadIdx.x) / 32;
  if (row >= static_cast<long long>(g.batch) * g.tokens * g.n_heads) return;  // the whole warp
  const int h = static_cast<int>(row % g.n_heads);
  const int t = static_cast<int>((row / g.n_heads) % g.tokens);
  const int b = static_cast<int>(row / (static_cast<long long>(g.n_heads) * g.tokens));
  const int kv_head = h / g.group;
  const long long q_offset = row * g.head_dim;

  float q_row[ColumnsPerLane];
  float o_row[ColumnsPerLane];
  float d_o_row[ColumnsPerLane];
  load_row_columns<T, ColumnsPerLane>(q + q_offset, g.head_dim, lane, q_row);
  load_row_columns<T, ColumnsPerLane>(out + q_offset, g.head_dim, lane, o_row);
  load_row_columns<T, ColumnsPerLane>(d_out + q_offset, g.head_dim, lane, d_o_row);
  float dot = 0.0f;
#pragma unroll
  for (int c = 0; c < ColumnsPerLane; ++c) dot += d_o_row[c] * o_row[c];
  const float row_delta = warp_sum(dot);

  float m = -INFINITY;
  float l = 0.0f;
  for (int j = 0; j <= t; ++j) {
    const T* k_row = k + head_row_offset(b, j, kv_head, g.tokens, g.n_kv_heads, g.head_dim);
    float partial = 0.0f;
#pragma unroll
    for (int c = 0; c < ColumnsPerLane; ++c) {
      const int column = lane + 32 * c;
      if (column < g.head_dim) partial += q_row[c] * to_float(k_row[column]);
    }
    const float score = warp_sum(partial) * g.scale;
    const float m_new = fmaxf(m, score);
    l = l * expf(m - m_new) + expf(score - m_new);  // expf(−inf) = 0 on the first key
    m = m_new;
  }
  if (lane == 0) {
    lse[row] = m + logf(l);
    delta[row] = row_delta;
  }
}

/// Kernel 2. The launch of kernel 1; writes d_q row r.
template <class T, int ColumnsPerLane>
__global__ void __launch_bounds__(attention_backward_warps * 32)
    attention_backward_dq(const T* __restrict__ q, const T* __restrict__ k,
                          const T* __restrict__ v, const T* __restrict__ d_out,
                          const float* __restrict__ lse, const float* __restrict__ delta,
                          T* __restrict__ d_q, SelfAttentionGeometry g) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const long long row = static_cast<long long>(blockIdx.x) * attention_backward_warps +
                        static_cast<int>(threadIdx.x) / 32;
  if (row >= static_cast<long long>(g.batch) * g.tokens * g.n_heads) return;  // the whole warp
  const int h = static_cast<int>(row % g.n_heads);
  const int t = static_cast<int>((row / g.n_heads) % g.tokens);
  const int b = static_cast<int>(row / (static_cast<long long>(g.n_heads) * g.tokens));
  const int kv_head = h / g.group;
  const long long q_offset = row * g.head_dim;

  float q_row[ColumnsPerLane];
  float d_o_row[ColumnsPerLane];
  float d_q_row[ColumnsPerLane];
  load_row_columns<T, ColumnsPerLane>(q + q_offset, g.head_dim, lane, q_row);
  load_row_columns<T, ColumnsPerLane>(d_out + q_offset, g.head_dim, lane, d_o_row);
#pragma unroll
  for (int c = 0; c < ColumnsPerLane; ++c) d_q_row[c] = 0.0f;
  const float row_lse = lse[row];
  const float row_delta = delta[row];

  for (int j = 0; j <= t; ++j) {
    const long long kv_offset = head_row_offset(b, j, kv_head, g.tokens, g.n_kv_heads, g.head_dim);
    float k_row[ColumnsPerLane];
    float qk = 0.0f;
    float dov = 0.0f;
#pragma unroll
    for (int c = 0; c < ColumnsPerLane; ++c) {
      const int column = lane + 32 * c;
      k_row[c] = column < g.head_dim ? to_float(k[kv_offset + column]) : 0.0f;
      const float v_value = column < g.head_dim ? to_float(v[kv_offset + column]) : 0.0f;
      qk += q_row[c] * k_row[c];
      dov += d_o_row[c] * v_value;
    }
    const float p = expf(warp_sum(qk) * g.scale - row_lse);
    const float d_score = p * (warp_sum(dov) - row_delta);
#pragma unroll
    for (int c = 0; c < ColumnsPerLane; ++c) d_q_row[c] += d_score * k_row[c];
  }
#pragma unroll
  for (int c = 0; c < ColumnsPerLane; ++c) {
    const int column = lane + 32 * c;
    if (column < g.head_dim) d_q[q_offset + column] = from_float<T>(d_q_row[c] * g.scale);
  }
}

/// Kernel 3. grid ceil(batch·tokens·n_kv_heads / warps), attention_backward_warps·32 threads.
/// Key row r = (b·tokens + j)·n_kv_heads + g, the row index of k itself; writes d_k and d_v row r.
template <class T, int ColumnsPerLane>
__global__ void __launch_bounds__(attention_backward_warps * 32)
    attention_backward_dkv(const T* __restrict__ q, const T* __restrict__ k,
                           const T* __restrict__ v, const T* __restrict__ d_out,
                           const float* __restrict__ lse, const float* __restrict__ delta,
                           T* __restrict__ d_k, T* __restrict__ d_v, SelfAttentionGeometry g) {
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const long long row = static_cast<long long>(blockIdx.x) * attention_backward_warps +
                        static_cast<int>(threadIdx.x) / 32;
  if (row >= static_cast<long long>(g.batch) * g.tokens * g.n_kv_heads) return;  // the whole warp
  const int kv_head = static_cast<int>(row % g.n_kv_heads);
  const int j = static_cast<int>((row / g.n_kv_heads) % g.tokens);
  const int b = static_cast<int>(row / (static_cast<long long>(g.n_kv_heads) * g.tokens));
  const long long kv_offset = row * g.head_dim;

  float k_row[ColumnsPerLane];
  float v_row[ColumnsPerLane];
  float d_k_row[ColumnsPerLane];
  float d_v_row[ColumnsPerLane];
  load_row_columns<T, ColumnsPerLane>(k + kv_offset, g.head_dim, lane, k_row);
  load_row_columns<T, ColumnsPerLane>(v + kv_offset, g.head_dim, lane, v_row);
#pragma unroll
  for (int c = 0; c < ColumnsPerLane; ++c) {
    d_k_row[c] = 0.0f;
    d_v_row[c] = 0.0f;
  }

  for (int h = kv_head * g.group; h < (kv_head + 1) * g.group; ++h) {
    for (int t = j; t < g.tokens; ++t) {
      const long long q_index = (static_cast<long long>(b) * g.tokens + t) * g.n_heads + h;
      const long long q_offset = q_index * g.head_dim;
      float q_row[ColumnsPerLane];
      float d_o_row[ColumnsPerLane];
      load_row_columns<T, ColumnsPerLane>(q + q_offset, g.head_dim, lane, q_row);
      load_row_columns<T, ColumnsPerLane>(d_out + q_offset, g.head_dim, lane, d_o_row);
      float qk = 0.0f;
      float dov = 0.0f;
#pragma unroll
      for (int c = 0; c < ColumnsPerLane; ++c) {
        qk += q_row[c] * k_row[c];
        dov += d_o_row[c] * v_row[c];
      }
      const float p = expf(warp_sum(qk) * g.scale - lse[q_index]);
      const float d_score = p * (warp_sum(dov) - delta[q_index]);
#pragma unroll
      for (int c = 0; c < ColumnsPerLane; ++c) {
        d_v_row[c] += p * d_o_row[c];
        d_k_row[c] += d_score * q_row[c];
      }
    }
  }
#pragma unroll
  for (int c = 0; c < ColumnsPerLane; ++c) {
    const int column = lane + 32 * c;
    if (column < g.head_dim) {
      d_k[kv_offset + column] = from_float<T>(d_k_row[c] * g.scale);
      d_v[kv_offset + column] = from_float<T>(d_v_row[c]);
    }
  }
}

template <class T, int ColumnsPerLane>
void launch_attention_backward(const Context<cuda>& ctx, const T* q, const T* k, const T* v,
                               const T* out, const T* d_out, T* d_q, T* d_k, T* d_v, float* lse,
                               float* delta, const SelfAttentionGeometry& g) {
  constexpr int threads = attention_backward_warps * 32;
  const long long q_rows = static_cast<long long>(g.batch) * g.tokens * g.n_heads;
  const long long kv_rows = static_cast<long long>(g.batch) * g.tokens * g.n_kv_heads;
  const auto q_blocks =
      static_cast<unsigned>((q_rows + attention_backward_warps - 1) / attention_backward_warps);
  const auto kv_blocks =
      static_cast<unsigned>((kv_rows + attention_backward_warps - 1) / attention_backward_warps);
  attention_backward_row_stats<T, ColumnsPerLane><<<q_blocks, threads, 0, ctx.stream()>>>(
      q, k, out, d_out, lse, delta, g);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
  attention_backward_dq<T, ColumnsPerLane><<<q_blocks, threads, 0, ctx.stream()>>>(
      q, k, v, d_out, lse, delta, d_q, g);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
  attention_backward_dkv<T, ColumnsPerLane><<<kv_blocks, threads, 0, ctx.stream()>>>(
      q, k, v, d_out, lse, delta, d_k, d_v, g);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
}

}  // namespace detail

/// Floats of scratch causal_self_attention_backward needs: lse and delta per query row.
inline index_t causal_self_attention_backward_workspace(index_t batch, index_t tokens,
                                                        index_t n_heads) {
  return 2 * batch * tokens * n_heads;
}

/// Backward of causal self-attention (see the formulas at the top), P recomputed from q and k.
/// q, out, d_out, d_q: [batch, tokens, n_heads, head_dim]; k, v, d_k, d_v: [batch, tokens,
/// n_kv_heads, head_dim], all device memory; d_q, d_k, d_v are written and must not overlap the
/// inputs. `scratch` grows to causal_self_attention_backward_workspace floats. Asynchronous on
/// ctx's stream.
template <class T>
void causal_self_attention_backward(const Context<cuda>& ctx, const TensorView<const T, 4>& q,
                                    const TensorView<const T, 4>& k,
                                    const TensorView<const T, 4>& v,
                                    const TensorView<const T, 4>& out,
                                    const TensorView<const T, 4>& d_out,
                                    const TensorView<T, 4>& d_q, const TensorView<T, 4>& d_k,
                                    const TensorView<T, 4>& d_v, Workspace<float, cuda>& scratch) {
  detail::check_cuda_scalar<T>();
  const char* where = "causal_self_attention_backward<cuda>";
  detail::check_self_attention_backward(where, q, k, v, out, d_out, d_q, d_k, d_v);
  const index_t head_dim = q.shape(3);
  detail::require<config_error>(head_dim <= detail::attention_backward_max_head_dim, where,
                                ": head_dim ", head_dim, " exceeds the cuda kernel's limit of ",
                                detail::attention_backward_max_head_dim);
  detail::SelfAttentionGeometry g{};
  g.batch = detail::checked_int(where, "batch", q.shape(0));
  g.tokens = detail::checked_int(where, "tokens", q.shape(1));
  g.n_heads = detail::checked_int(where, "n_heads", q.shape(2));
  g.n_kv_heads = detail::checked_int(where, "n_kv_heads", k.shape(2));
  g.head_dim = static_cast<int>(head_dim);
  detail::checked_int(where, "batch · tokens · n_heads", q.shape(0) * q.shape(1) * q.shape(2));
  if (q.size() == 0) return;
  g.group = g.n_heads / g.n_kv_heads;
  g.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  const index_t rows = q.shape(0) * q.shape(1) * q.shape(2);
  const auto buffer = scratch.get<1>(
      {causal_self_attention_backward_workspace(q.shape(0), q.shape(1), q.shape(2))});
  float* lse = buffer.data();
  float* delta = lse + rows;

  auto launch = [&](auto columns_per_lane) {
    detail::launch_attention_backward<T, decltype(columns_per_lane)::value>(
        ctx, q.data(), k.data(), v.data(), out.data(), d_out.data(), d_q.data(), d_k.data(),
        d_v.data(), lse, delta, g);
  };
  if (head_dim <= 32)
    launch(std::integral_constant<int, 1>{});
  else if (head_dim <= 64)
    launch(std::integral_constant<int, 2>{});
  else if (head_dim <= 128)
    launch(std::integral_constant<int, 4>{});
  else
    launch(std::integral_constant<int, 8>{});
}

}  // namespace llamablocks
