// RMSNorm on the cuda backend: one row of [batch·tokens, dim] per thread block,
//   out = x · (1 / sqrt(Σx²/dim + eps)) · γ
// Σx² is accumulated in float for every storage type (float, __half, __nv_bfloat16) and the
// product is rounded to T once. Rows are read with 16-byte vector loads when x, out and γ are
// 16-byte aligned and a row is a whole number of vectors, element by element otherwise. A row of
// up to 4 accesses per thread (dim ≤ 32768 for 2-byte types) is held in registers between the sum
// and the scaling, so x is read from memory once; longer rows are read twice.
#pragma once

#include "llamablocks/core/norm_checks.hpp"
#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/modules/rms_norm.hpp"

#include <algorithm>
#include <vector>

namespace llamablocks {
namespace detail {

/// Accesses each thread keeps in registers on the single-read path.
inline constexpr int rms_norm_cached_accesses = 4;

/// One block per row. x and out may be the same memory (each element is read before the thread
/// that read it writes it), so neither is __restrict__.
/// \tparam Width elements per access (16 bytes, or 1 for unaligned rows).
template <class T, int Width>
__global__ void rms_norm_rows(const T* x,            // [rows, dim]
                              const T* __restrict__ weight,  // [dim]
                              T* out,                // [rows, dim]
                              int dim, float norm_eps) {
  using access = vector_of<T, Width>;
  constexpr int cached = rms_norm_cached_accesses;
  const int accesses = dim / Width;
  const auto row_offset = static_cast<std::size_t>(blockIdx.x) * static_cast<std::size_t>(dim);
  const auto* x_row = reinterpret_cast<const access*>(x + row_offset);
  const auto* gain = reinterpret_cast<const access*>(weight);
  auto* out_row = reinterpret_cast<access*>(out + row_offset);
  const int stride = static_cast<int>(blockDim.x);
  const int first = static_cast<int>(threadIdx.x);

  if (accesses <= cached * stride) {
    access held[cached];
    float sum_of_squares = 0.0f;
#pragma unroll
    for (int k = 0; k < cached; ++k) {
      const int i = first + k * stride;
      if (i < accesses) held[k] = x_row[i];
    }
#pragma unroll
    for (int k = 0; k < cached; ++k) {
      if (first + k * stride < accesses) {
#pragma unroll
        for (int j = 0; j < Width; ++j) {
          const float value = to_float(held[k].value[j]);
          sum_of_squares += value * value;
        }
      }
    }
    const float inv_rms = rsqrtf(block_sum(sum_of_squares) / static_cast<float>(dim) + norm_eps);
#pragma unroll
    for (int k = 0; k < cached; ++k) {
      const int i = first + k * stride;
      if (i < accesses) {
        const access g = gain[i];
        access result;
#pragma unroll
        for (int j = 0; j < Width; ++j)
          result.value[j] = from_float<T>(to_float(held[k].value[j]) * inv_rms * to_float(g.value[j]));
        out_row[i] = result;
      }
    }
    return;
  }

  float sum_of_squares = 0.0f;
  for (int i = first; i < accesses; i += stride) {
    const access v = x_row[i];
#pragma unroll
    for (int j = 0; j < Width; ++j) {
      const float value = to_float(v.value[j]);
      sum_of_squares += value * value;
    }
  }
  const float inv_rms = rsqrtf(block_sum(sum_of_squares) / static_cast<float>(dim) + norm_eps);
  for (int i = first; i < accesses; i += stride) {
    const access v = x_row[i];
    const access g = gain[i];
    access result;
#pragma unroll
    for (int j = 0; j < Width; ++j)
      result.value[j] = from_float<T>(to_float(v.value[j]) * inv_rms * to_float(g.value[j]));
    out_row[i] = result;
  }
}

template <class T, int Width>
void launch_rms_norm_rows(const Context<cuda>& ctx, const T* x, const T* weight, T* out, int rows,
                          int dim, float norm_eps) {
  const int accesses = dim / Width;
  // Enough threads that each holds at most `rms_norm_cached_accesses` accesses, in whole warps.
  const int wanted = (accesses + rms_norm_cached_accesses - 1) / rms_norm_cached_accesses;
  const int threads = std::clamp((wanted + 31) / 32 * 32, 32, 1024);
  rms_norm_rows<T, Width><<<rows, threads, 0, ctx.stream()>>>(x, weight, out, dim, norm_eps);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
}

}  // namespace detail

/// out = x / sqrt(mean(x²) + eps) · weight, row by row, on ctx's stream (asynchronous).
/// x, out: [rows, dim] in device memory; weight: [dim]. out may be x itself.
template <class T>
void rms_norm(const Context<cuda>& ctx, const TensorView<const T, 2>& x,
              const TensorView<const T, 1>& weight, double norm_eps, const TensorView<T, 2>& out) {
  detail::check_cuda_scalar<T>();
  const char* where = "rms_norm<cuda>";
  const index_t dim = x.shape(1);
  detail::expect_shape(where, "x", x, x.shape());
  detail::expect_shape(where, "weight", weight, {dim});
  detail::expect_shape(where, "out", out, x.shape());
  const int rows = detail::checked_int(where, "rows", x.shape(0));
  const int dim32 = detail::checked_int(where, "dim", dim);
  if (rows == 0 || dim32 == 0) return;
  const float eps = static_cast<float>(norm_eps);
  constexpr int width = detail::vector_width<T>;
  const bool vectorizable = dim32 % width == 0 && detail::is_aligned(x.data(), 16) &&
                            detail::is_aligned(out.data(), 16) &&
                            detail::is_aligned(weight.data(), 16);
  if (vectorizable)
    detail::launch_rms_norm_rows<T, width>(ctx, x.data(), weight.data(), out.data(), rows, dim32, eps);
  else
    detail::launch_rms_norm_rows<T, 1>(ctx, x.data(), weight.data(), out.data(), rows, dim32, eps);
}

/// RMSNorm whose weight and activations live in device memory.
/// \tparam T float, __half or __nv_bfloat16 (accumulation in float for all three).
template <class T>
class RMSNorm<cuda, T> {
 public:
  /// \param dim      width of the normalized (last) dimension.
  /// \param norm_eps added to the mean square; > 0 (LLaMA-2/3: 1e-5).
  RMSNorm(index_t dim, double norm_eps)
      : dim_(checked(dim, norm_eps)), norm_eps_(norm_eps), weight_("RMSNorm.weight", {dim}) {
    const std::vector<T> ones(static_cast<std::size_t>(dim), detail::from_float<T>(1.0f));
    weight_.copy_from(TensorView<const T, 1>(ones.data(), {dim}));
  }

  index_t dim() const { return dim_; }
  double norm_eps() const { return norm_eps_; }
  Parameter<T, 1, cuda>& weight() { return weight_; }
  const Parameter<T, 1, cuda>& weight() const { return weight_; }

  /// x, out: [batch, tokens, dim] in device memory; out may be x itself (in place). Runs on
  /// ctx's stream and returns before the kernel finishes.
  void forward(const Context<cuda>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out) const {
    detail::check_norm_io("RMSNorm<cuda>::forward", dim_, x, out);
    const index_t rows = x.shape(0) * x.shape(1);
    rms_norm<T>(ctx, reshape<2>(x, {rows, dim_}), weight_.view(), norm_eps_,
                reshape<2>(out, {rows, dim_}));
  }

 private:
  static index_t checked(index_t dim, double norm_eps) {
    detail::check_cuda_scalar<T>();
    detail::check_norm_arguments("RMSNorm", dim, norm_eps);
    return dim;
  }

  index_t dim_;
  double norm_eps_;
  Parameter<T, 1, cuda> weight_;
};

}  // namespace llamablocks
