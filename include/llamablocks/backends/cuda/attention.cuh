// Causal scaled-dot-product attention over a KV cache, cuda backend, for prefill and decode alike:
//   o[b, t, h] = softmax_s( q[b, t, h] · K[b, g(h), s]ᵀ / sqrt(head_dim) ),  s <= start_pos + t
//                · V[b, g(h), s]              g(h) = h / (n_heads / n_kv_heads)
//   q, out: [batch, tokens, n_heads, head_dim]    K, V: the cache [batch, n_kv_heads, max_seq_len, head_dim]
//
// Kernel (flash-attention style, float throughout):
// - A thread block serves one (sequence, kv head) and 16 "rows": the (query token, query head)
//   pairs of that kv head's group, flattened token-major, so that each K/V tile it reads from the
//   cache serves every query head of the group (GQA: one read per kv head, not per query head).
// - Keys and values are read in tiles of 32 positions into shared memory (as float; K padded by
//   one column so that the 32 lanes' dot products hit 32 banks). Tiles past the last row's
//   position are never read (causal tiles skipped).
// - Each warp owns 4 rows. Lane j scores key j of the tile against each of its rows; the softmax
//   is online: running maximum m, running sum l and the unnormalized output acc (each lane holds
//   head_dim/32 of its columns) are rescaled by exp(m_old − m_new) when the maximum grows.
// - Split-KV: when (sequences × kv heads × row blocks) would not fill the GPU (decode), the key
//   range is divided into `splits` parts, each block writes its partial (m, l, acc) to a float
//   workspace, and a merge kernel combines them:  M = max m_s,  L = Σ l_s e^(m_s − M),
//   o = Σ acc_s e^(m_s − M) / L.
// head_dim up to 256 (shared memory: (16 + 65)·head_dim·4 bytes, opt-in above 48 KiB).
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/backends/cuda/kv_cache.cuh"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/workspace.hpp"

#include <algorithm>
#include <cmath>
#include <type_traits>

namespace llamablocks {
namespace detail {

inline constexpr int attention_key_tile = 32;      // keys per shared-memory tile (one per lane)
inline constexpr int attention_warps = 4;          // warps per block
inline constexpr int attention_rows_per_warp = 4;  // (token, head) rows per warp
inline constexpr int attention_block_rows = attention_warps * attention_rows_per_warp;
inline constexpr int attention_max_head_dim = 256;
inline constexpr int attention_max_splits = 32;

/// Shape of one attention call, as the kernels see it.
struct AttentionGeometry {
  int tokens;          // query tokens per sequence
  int n_heads;
  int n_kv_heads;
  int group;           // n_heads / n_kv_heads
  int head_dim;
  int max_seq_len;     // cache capacity (row stride of a kv head)
  int start_pos;       // position of query token 0
  int row_blocks;      // blocks per (sequence, kv head): ceil(tokens·group / block rows)
  int splits;          // key-range parts; 1 writes out directly
  float scale;         // 1 / sqrt(head_dim)
};

/// grid (row_blocks, batch·n_kv_heads, splits), attention_warps·32 threads, dynamic shared memory
/// attention_shared_bytes(head_dim). ColumnsPerLane = ceil(head_dim / 32).
/// With one split, out gets the normalized rows; with more, partial_acc [splits, rows, head_dim]
/// and partial_ml [splits, rows, 2] (rows = batch·tokens·n_heads) get the unnormalized ones.
template <class T, int ColumnsPerLane>
__global__ void __launch_bounds__(attention_warps * 32)
    attention_tiles(const T* __restrict__ q, const T* __restrict__ keys,
                    const T* __restrict__ values, T* __restrict__ out,
                    float* __restrict__ partial_acc, float* __restrict__ partial_ml,
                    AttentionGeometry g) {
  extern __shared__ float shared[];
  const int d = g.head_dim;
  const int k_stride = d + 1;
  float* q_tile = shared;                                  // [block rows][d], pre-scaled
  float* k_tile = q_tile + attention_block_rows * d;       // [32][d + 1]
  float* v_tile = k_tile + attention_key_tile * k_stride;  // [32][d]

  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int kv_head = static_cast<int>(blockIdx.y) % g.n_kv_heads;
  const int b = static_cast<int>(blockIdx.y) / g.n_kv_heads;
  const int split = static_cast<int>(blockIdx.z);
  const int total_rows = g.tokens * g.group;
  const int first_row = static_cast<int>(blockIdx.x) * attention_block_rows;
  const int last_row = min(first_row + attention_block_rows, total_rows) - 1;

  // Load the block's query rows (token-major: row = token·group + head in group).
  for (int i = static_cast<int>(threadIdx.x); i < attention_block_rows * d;
       i += static_cast<int>(blockDim.x)) {
    const int local = i / d;
    const int column = i % d;
    const int row = first_row + local;
    float value = 0.0f;
    if (row < total_rows) {
      const int token = row / g.group;
      const int head = kv_head * g.group + row % g.group;
      const long long offset =
          ((static_cast<long long>(b) * g.tokens + token) * g.n_heads + head) * d + column;
      value = to_float(q[offset]) * g.scale;
    }
    q_tile[i] = value;
  }

  // Keys visible to the block's last row, and this split's share of their tiles.
  const int key_count = g.start_pos + last_row / g.group + 1;
  const int tiles = (key_count + attention_key_tile - 1) / attention_key_tile;
  const int tiles_per_split = (tiles + g.splits - 1) / g.splits;
  const int tile_begin = split * tiles_per_split;
  const int tile_end = min(tiles, tile_begin + tiles_per_split);

  float m[attention_rows_per_warp];
  float l[attention_rows_per_warp];
  float acc[attention_rows_per_warp][ColumnsPerLane];
  int position[attention_rows_per_warp];  // query position of each row; −1 for rows past the end
#pragma unroll
  for (int r = 0; r < attention_rows_per_warp; ++r) {
    const int row = first_row + warp * attention_rows_per_warp + r;
    position[r] = row < total_rows ? g.start_pos + row / g.group : -1;
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int c = 0; c < ColumnsPerLane; ++c) acc[r][c] = 0.0f;
  }

  const long long head_offset =
      (static_cast<long long>(b) * g.n_kv_heads + kv_head) * g.max_seq_len;
  for (int tile = tile_begin; tile < tile_end; ++tile) {
    const int first_key = tile * attention_key_tile;
    __syncthreads();  // the previous tile (and the query rows, on the first pass) are done with
    for (int i = static_cast<int>(threadIdx.x); i < attention_key_tile * d;
         i += static_cast<int>(blockDim.x)) {
      const int key = i / d;
      const int column = i % d;
      float k_value = 0.0f;
      float v_value = 0.0f;
      if (first_key + key < key_count) {
        const long long offset = (head_offset + first_key + key) * d + column;
        k_value = to_float(keys[offset]);
        v_value = to_float(values[offset]);
      }
      k_tile[key * k_stride + column] = k_value;
      v_tile[key * d + column] = v_value;
    }
    __syncthreads();

    // Scores of key (first_key + lane) for the warp's rows.
    float score[attention_rows_per_warp];
#pragma unroll
    for (int r = 0; r < attention_rows_per_warp; ++r) score[r] = 0.0f;
    const float* q_rows = q_tile + warp * attention_rows_per_warp * d;
    const float* k_row = k_tile + lane * k_stride;
    for (int i = 0; i < d; ++i) {
      const float k_value = k_row[i];
#pragma unroll
      for (int r = 0; r < attention_rows_per_warp; ++r) score[r] += q_rows[r * d + i] * k_value;
    }

    float p[attention_rows_per_warp];
#pragma unroll
    for (int r = 0; r < attention_rows_per_warp; ++r) {
      const bool visible = first_key + lane <= position[r];  // false for every key when row is past the end
      const float s = visible ? score[r] : -INFINITY;
      const float tile_max = warp_max(s);
      p[r] = 0.0f;
      if (tile_max == -INFINITY) continue;  // the same for all lanes: nothing visible in this tile
      const float m_new = fmaxf(m[r], tile_max);
      const float rescale = expf(m[r] - m_new);  // 0 on the first visible tile (m = −inf)
      p[r] = visible ? expf(s - m_new) : 0.0f;
      l[r] = l[r] * rescale + warp_sum(p[r]);
      m[r] = m_new;
#pragma unroll
      for (int c = 0; c < ColumnsPerLane; ++c) acc[r][c] *= rescale;
    }
    for (int j = 0; j < attention_key_tile; ++j) {
      float weight[attention_rows_per_warp];
#pragma unroll
      for (int r = 0; r < attention_rows_per_warp; ++r)
        weight[r] = __shfl_sync(0xffffffffu, p[r], j);
      const float* v_row = v_tile + j * d;
#pragma unroll
      for (int c = 0; c < ColumnsPerLane; ++c) {
        const int column = lane + 32 * c;
        const float v_value = column < d ? v_row[column] : 0.0f;
#pragma unroll
        for (int r = 0; r < attention_rows_per_warp; ++r) acc[r][c] += weight[r] * v_value;
      }
    }
  }

  // Write the warp's rows: normalized into out, or partial into the workspace.
#pragma unroll
  for (int r = 0; r < attention_rows_per_warp; ++r) {
    const int row = first_row + warp * attention_rows_per_warp + r;
    if (row >= total_rows) continue;
    const int token = row / g.group;
    const int head = kv_head * g.group + row % g.group;
    const long long out_row = (static_cast<long long>(b) * g.tokens + token) * g.n_heads + head;
    if (g.splits == 1) {
      const float inverse = 1.0f / l[r];
#pragma unroll
      for (int c = 0; c < ColumnsPerLane; ++c) {
        const int column = lane + 32 * c;
        if (column < d) out[out_row * d + column] = from_float<T>(acc[r][c] * inverse);
      }
    } else {
      const long long rows = static_cast<long long>(gridDim.y / g.n_kv_heads) * g.tokens * g.n_heads;
      const long long slot = static_cast<long long>(split) * rows + out_row;
#pragma unroll
      for (int c = 0; c < ColumnsPerLane; ++c) {
        const int column = lane + 32 * c;
        if (column < d) partial_acc[slot * d + column] = acc[r][c];
      }
      if (lane == 0) {
        partial_ml[slot * 2] = m[r];
        partial_ml[slot * 2 + 1] = l[r];
      }
    }
  }
}

/// One warp per output row: out = Σ_s acc_s e^(m_s − M) / Σ_s l_s e^(m_s − M), M = max_s m_s.
/// Split 0 holds key 0, visible to every row, so M is finite; empty splits have m = −inf, l = 0.
template <class T>
__global__ void attention_merge(const float* __restrict__ partial_acc,
                                const float* __restrict__ partial_ml, T* __restrict__ out,
                                long long rows, int head_dim, int splits) {
  const long long row = static_cast<long long>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  if (row >= rows) return;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  float maximum = -INFINITY;
  for (int s = 0; s < splits; ++s) maximum = fmaxf(maximum, partial_ml[(s * rows + row) * 2]);
  float total = 0.0f;
  for (int s = 0; s < splits; ++s) {
    const float* ml = partial_ml + (s * rows + row) * 2;
    total += ml[1] * expf(ml[0] - maximum);
  }
  const float inverse = 1.0f / total;
  for (int column = lane; column < head_dim; column += 32) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) {
      const float weight = expf(partial_ml[(s * rows + row) * 2] - maximum);
      sum += weight * partial_acc[(s * rows + row) * head_dim + column];
    }
    out[row * head_dim + column] = from_float<T>(sum * inverse);
  }
}

inline std::size_t attention_shared_bytes(int head_dim) {
  return sizeof(float) * static_cast<std::size_t>(attention_block_rows * head_dim +
                                                  attention_key_tile * (head_dim + 1) +
                                                  attention_key_tile * head_dim);
}

/// Key-range parts for a grid of `blocks` blocks over `key_tiles` tiles: enough blocks for two
/// per multiprocessor, each part at least 4 tiles, at most attention_max_splits.
inline int attention_splits(int blocks, int key_tiles, int multiprocessors) {
  const int wanted = (2 * multiprocessors + blocks - 1) / blocks;
  const int by_length = std::max(1, key_tiles / 4);
  return std::clamp(std::min(wanted, by_length), 1, attention_max_splits);
}

template <class T, int ColumnsPerLane>
void launch_attention(const Context<cuda>& ctx, const T* q, const T* keys, const T* values, T* out,
                      float* partial_acc, float* partial_ml, const AttentionGeometry& g,
                      int batch) {
  const std::size_t shared = attention_shared_bytes(g.head_dim);
  auto kernel = attention_tiles<T, ColumnsPerLane>;
  if (shared > 48 * 1024)
    LLAMABLOCKS_CUDA_CHECK(cudaFuncSetAttribute(
        kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
  const dim3 grid(static_cast<unsigned>(g.row_blocks),
                  static_cast<unsigned>(batch * g.n_kv_heads), static_cast<unsigned>(g.splits));
  kernel<<<grid, attention_warps * 32, shared, ctx.stream()>>>(q, keys, values, out, partial_acc,
                                                               partial_ml, g);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
}

/// Key-range parts of one causal_attention call (1: no split, no workspace).
inline int attention_split_count(const Context<cuda>& ctx, index_t batch, index_t tokens,
                                 index_t start_pos, index_t n_heads, index_t n_kv_heads) {
  const index_t group = n_heads / n_kv_heads;
  const index_t row_blocks = (tokens * group + attention_block_rows - 1) / attention_block_rows;
  const index_t key_tiles = (start_pos + tokens + attention_key_tile - 1) / attention_key_tile;
  const index_t blocks = row_blocks * batch * n_kv_heads;
  if (blocks >= 2 * static_cast<index_t>(ctx.multiprocessor_count())) return 1;
  return attention_splits(static_cast<int>(blocks),
                          static_cast<int>(std::min<index_t>(key_tiles, 1 << 30)),
                          ctx.multiprocessor_count());
}

/// Floats of split workspace for `rows` = batch·tokens·n_heads rows: room for the most splits,
/// partial_acc [splits, rows, head_dim] then partial_ml [splits, rows, 2].
inline index_t attention_split_workspace(index_t rows, index_t head_dim) {
  return attention_max_splits * rows * (head_dim + 2);
}

}  // namespace detail

/// Floats of workspace causal_attention needs for this call: 0 when it runs unsplit, else room for
/// the most splits (attention_max_splits), so that a decode loop, whose split count grows with the
/// cache, allocates once. Callers that must not fail halfway (GroupedQueryAttention) reserve it
/// before writing anything.
inline index_t causal_attention_workspace(const Context<cuda>& ctx, index_t batch, index_t tokens,
                                          index_t start_pos, index_t n_heads, index_t n_kv_heads,
                                          index_t head_dim) {
  if (detail::attention_split_count(ctx, batch, tokens, start_pos, n_heads, n_kv_heads) == 1)
    return 0;
  return detail::attention_split_workspace(batch * tokens * n_heads, head_dim);
}

/// q: [batch, tokens, n_heads, head_dim] (RoPE applied), out: the same shape, both device memory;
/// the cache must already hold positions 0 .. start_pos + tokens − 1. Asynchronous on ctx's stream;
/// `workspace` is grown as needed (see causal_attention_workspace).
template <class T>
void causal_attention(const Context<cuda>& ctx, const TensorView<const T, 4>& q,
                      const KVCache<cuda, T>& cache, index_t start_pos,
                      const TensorView<T, 4>& out, Workspace<float, cuda>& workspace) {
  detail::check_cuda_scalar<T>();
  const char* where = "causal_attention<cuda>";
  detail::check_causal_attention(where, q, cache, start_pos, out);
  const index_t batch = q.shape(0);
  const index_t tokens = q.shape(1);
  const index_t n_heads = q.shape(2);
  const index_t head_dim = q.shape(3);
  detail::require<config_error>(head_dim <= detail::attention_max_head_dim, where, ": head_dim ",
                                head_dim, " exceeds the cuda kernel's limit of ",
                                detail::attention_max_head_dim);
  if (tokens == 0) return;
  detail::checked_int(where, "batch · n_kv_heads", batch * cache.n_kv_heads());
  detail::checked_int(where, "tokens · group", tokens * (n_heads / cache.n_kv_heads()));

  detail::AttentionGeometry g{};
  g.tokens = static_cast<int>(tokens);
  g.n_heads = static_cast<int>(n_heads);
  g.n_kv_heads = static_cast<int>(cache.n_kv_heads());
  g.group = g.n_heads / g.n_kv_heads;
  g.head_dim = static_cast<int>(head_dim);
  g.max_seq_len = static_cast<int>(cache.max_seq_len());
  g.start_pos = static_cast<int>(start_pos);
  g.row_blocks = (g.tokens * g.group + detail::attention_block_rows - 1) /
                 detail::attention_block_rows;
  g.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));

  g.splits = detail::attention_split_count(ctx, batch, tokens, start_pos, n_heads,
                                           cache.n_kv_heads());
  const index_t rows = batch * tokens * n_heads;
  float* partial_acc = nullptr;
  float* partial_ml = nullptr;
  if (g.splits > 1) {
    const auto buffer = workspace.get<1>({detail::attention_split_workspace(rows, head_dim)});
    partial_acc = buffer.data();
    partial_ml = partial_acc + static_cast<index_t>(g.splits) * rows * head_dim;
  }

  const T* keys = cache.keys().data();
  const T* values = cache.values().data();
  const int b = static_cast<int>(batch);
  auto launch = [&](auto columns_per_lane) {
    detail::launch_attention<T, decltype(columns_per_lane)::value>(
        ctx, q.data(), keys, values, out.data(), partial_acc, partial_ml, g, b);
  };
  if (head_dim <= 32)
    launch(std::integral_constant<int, 1>{});
  else if (head_dim <= 64)
    launch(std::integral_constant<int, 2>{});
  else if (head_dim <= 128)
    launch(std::integral_constant<int, 4>{});
  else
    launch(std::integral_constant<int, 8>{});

  if (g.splits > 1) {
    constexpr int rows_per_block = 4;
    const auto blocks = static_cast<unsigned>((rows + rows_per_block - 1) / rows_per_block);
    detail::attention_merge<T><<<blocks, rows_per_block * 32, 0, ctx.stream()>>>(
        partial_acc, partial_ml, out.data(), static_cast<long long>(rows), g.head_dim, g.splits);
    LLAMABLOCKS_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace llamablocks
