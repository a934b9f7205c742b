// Greedy sampling on the device: the id of each row's largest logit, so that a greedy decode step
// copies one int32 per sequence to the host instead of the whole [vocab_size] row of logits.
//   logits: [batch, vocab_size] (T)  ->  ids: [batch] int32
//   ids[b] = argmax_i logits[b, i], the lowest i among equal maxima (Sampler's greedy rule);
//            greedy_no_finite_maximum when every logit is −inf,
//            greedy_bad_logit when the row holds NaN or +inf (no distribution to pick from).
// One thread block per row: each thread scans a strided part of the row, then (value, index)
// pairs are reduced across the warp and the block, ties going to the lower index.
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/core/tensor.hpp"

#include <climits>
#include <cstdint>

namespace llamablocks {

/// ids[b] when row b holds NaN or +inf.
inline constexpr std::int32_t greedy_bad_logit = -1;
/// ids[b] when every logit of row b is −inf.
inline constexpr std::int32_t greedy_no_finite_maximum = -2;

namespace detail {

/// (value, index) of the larger value, the lower index on equal values.
__device__ inline void keep_larger(float& value, int& index, float other_value, int other_index) {
  if (other_value > value || (other_value == value && other_index < index)) {
    value = other_value;
    index = other_index;
  }
}

template <class T>
__global__ void argmax_rows(const T* __restrict__ logits, int vocab_size,
                            std::int32_t* __restrict__ ids) {
  __shared__ float warp_values[32];
  __shared__ int warp_indices[32];
  const T* row = logits + static_cast<std::size_t>(blockIdx.x) * static_cast<std::size_t>(vocab_size);
  float best = -INFINITY;
  int best_index = INT_MAX;  // no finite maximum seen yet
  bool bad = false;
  // Ascending indices per thread, strictly-greater updates: each thread keeps its lowest argmax.
  for (int i = static_cast<int>(threadIdx.x); i < vocab_size; i += static_cast<int>(blockDim.x)) {
    const float value = to_float(row[i]);
    if (isnan(value) || value == INFINITY)
      bad = true;
    else if (value > best)
      keep_larger(best, best_index, value, i);
  }
  const bool row_bad = __syncthreads_or(bad) != 0;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other_value = __shfl_xor_sync(0xffffffffu, best, offset);
    const int other_index = __shfl_xor_sync(0xffffffffu, best_index, offset);
    keep_larger(best, best_index, other_value, other_index);
  }
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  if (lane == 0) {
    warp_values[warp] = best;
    warp_indices[warp] = best_index;
  }
  __syncthreads();
  if (warp != 0) return;
  const int warps = static_cast<int>(blockDim.x) / 32;
  best = lane < warps ? warp_values[lane] : -INFINITY;
  best_index = lane < warps ? warp_indices[lane] : INT_MAX;
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) {
    const float other_value = __shfl_xor_sync(0xffffffffu, best, offset);
    const int other_index = __shfl_xor_sync(0xffffffffu, best_index, offset);
    keep_larger(best, best_index, other_value, other_index);
  }
  if (lane == 0)
    ids[blockIdx.x] = row_bad ? greedy_bad_logit
                              : best_index == INT_MAX ? greedy_no_finite_maximum : best_index;
}

}  // namespace detail

/// ids[b] = the greedy choice of row b of logits (see the top of this header), on ctx's stream.
/// logits: [batch, vocab_size] and ids: [batch], contiguous device memory.
template <class T>
void greedy_tokens(const Context<cuda>& ctx, const TensorView<const T, 2>& logits,
                   const TensorView<std::int32_t, 1>& ids) {
  detail::check_cuda_scalar<T>();
  const char* where = "greedy_tokens<cuda>";
  detail::expect_shape(where, "logits", logits, logits.shape());
  detail::expect_shape(where, "ids", ids, {logits.shape(0)});
  const int rows = detail::checked_int(where, "batch", logits.shape(0));
  const int vocab_size = detail::checked_int(where, "vocab_size", logits.shape(1));
  detail::require<shape_error>(vocab_size > 0, where, ": vocab_size must be > 0");
  if (rows == 0) return;
  detail::argmax_rows<T><<<rows, 1024, 0, ctx.stream()>>>(logits.data(), vocab_size, ids.data());
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
}

}  // namespace llamablocks
