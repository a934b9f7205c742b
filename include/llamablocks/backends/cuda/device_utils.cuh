// Device-side helpers shared by the cuda kernels: the element types the backend accepts, their
// float conversions, 16-byte vectors of them, and block-wide sums and maxima.
//   float accumulation for every storage type: float, __half, __nv_bfloat16
#pragma once

#if !defined(__CUDACC__)
#error "llamablocks/backends/cuda/device_utils.cuh must be compiled by nvcc; include llamablocks/cuda.cuh"
#endif

#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <climits>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace llamablocks {
namespace detail {

template <class T>
inline constexpr bool is_cuda_scalar_v = std::is_same_v<T, float> || std::is_same_v<T, __half> ||
                                         std::is_same_v<T, __nv_bfloat16>;

template <class T>
void check_cuda_scalar() {
  static_assert(is_cuda_scalar_v<T>,
                "llamablocks cuda backend: T must be float, __half or __nv_bfloat16");
}

__host__ __device__ inline float to_float(float value) { return value; }
__host__ __device__ inline float to_float(__half value) { return __half2float(value); }
__host__ __device__ inline float to_float(__nv_bfloat16 value) { return __bfloat162float(value); }

/// float -> T, rounding to nearest even.
template <class T>
__host__ __device__ inline T from_float(float value) {
  if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(value);
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(value);
  } else {
    return value;
  }
}

/// `Count` elements moved as one aligned access (16 bytes when Count · sizeof(T) == 16).
template <class T, int Count>
struct alignas(sizeof(T) * Count) vector_of {
  T value[Count];
};

/// Elements of T in one 16-byte access.
template <class T>
inline constexpr int vector_width = 16 / static_cast<int>(sizeof(T));

inline bool is_aligned(const void* pointer, std::size_t bytes) {
  return reinterpret_cast<std::uintptr_t>(pointer) % bytes == 0;
}

/// Sum over a warp; every lane returns the total.
__device__ inline float warp_sum(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

/// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread returns the total.
/// Contains __syncthreads(): every thread of the block must call it. Two calls in one kernel need a
/// __syncthreads() between them (the second would overwrite warp_totals while some threads may
/// still be reading the first).
__device__ inline float block_sum(float value) {
  __shared__ float warp_totals[32];
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int warps = static_cast<int>(blockDim.x) / 32;
  value = warp_sum(value);
  if (lane == 0) warp_totals[warp] = value;
  __syncthreads();
  float total = lane < warps ? warp_totals[lane] : 0.0f;
  total = warp_sum(total);
  return total;
}

/// Maximum over a warp; every lane returns it.
__device__ inline float warp_max(float value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2)
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}

/// Maximum over the block (blockDim.x a multiple of 32, at most 1024); every thread returns it.
/// Contains __syncthreads(); like block_sum, two calls in a row need a __syncthreads() between
/// them, since the second may overwrite the per-warp slots before every thread has read the first.
__device__ inline float block_max(float value) {
  __shared__ float warp_maxima[32];
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int warps = static_cast<int>(blockDim.x) / 32;
  value = warp_max(value);
  if (lane == 0) warp_maxima[warp] = value;
  __syncthreads();
  float total = lane < warps ? warp_maxima[lane] : -INFINITY;
  total = warp_max(total);
  return total;
}

/// Throws range_error when an extent does not fit the 32-bit indices the kernels use.
inline int checked_int(const char* where, const char* name, index_t value) {
  require<range_error>(value >= 0 && value <= INT_MAX, where, ": ", name, " = ", value,
                       " exceeds the 32-bit limit of the cuda kernels");
  return static_cast<int>(value);
}

}  // namespace detail
}  // namespace llamablocks
