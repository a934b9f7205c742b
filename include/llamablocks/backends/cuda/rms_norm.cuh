// RMSNorm on the cuda backend: one row of [batch·tokens, dim] per thread block,
//   out = x · (1 / sqrt(Σx²/dim + eps)) · γ
// Σx² is accumulated in float for every storage type (float, __half, __nv_bfloat16) and the
// product is rounded to T once. Rows are read with 16-byte vector loads when x, out and γ are
// 16-byte aligned and a row is a whole number of vectors, element by element otherwise. A row of
// up to 4 accesses per thread (dim ≤ 32768 for 2-byte types) is held in registers between the sum
// and the scaling, so x is read from memory once; longer rows are read twice.
//
// Training: the forward with Activations keeps x; rms_norm_backward, with r = 1/sqrt(mean(x²)+eps)
// and g = d_out ⊙ γ, in float:
//   d_x       = r · g − r³ · x · (Σⱼ gⱼ xⱼ) / dim        one block per row         (written)
//   d_γ      += Σ_rows d_out ⊙ x · r                       two passes, deterministic (accumulated)
// The d_γ sum runs over rows in a fixed order whatever the scheduling: rms_norm_row_scales writes
// r per row, rms_norm_gain_partials sums chunks of rows per column into a float [chunks, dim]
// scratch, and rms_norm_gain_finish adds the chunks in order into d_γ (one rounding to T).
#pragma once

#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/norm_checks.hpp"
#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/saved_tensor.hpp"
#include "llamablocks/core/workspace.hpp"
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

/// Threads of the row kernels of the backward: whole warps, at most 256.
inline int rms_norm_backward_threads(int dim) { return std::clamp((dim + 31) / 32 * 32, 32, 256); }

/// Block `row`: inv_rms[row] = 1 / sqrt(Σx²/dim + eps).
template <class T>
__global__ void rms_norm_row_scales(const T* __restrict__ x,  // [rows, dim]
                                    float* __restrict__ inv_rms,  // [rows]
                                    int dim, float norm_eps) {
  const T* x_row = x + static_cast<std::size_t>(blockIdx.x) * static_cast<std::size_t>(dim);
  float sum_of_squares = 0.0f;
  for (int i = static_cast<int>(threadIdx.x); i < dim; i += static_cast<int>(blockDim.x)) {
    const float value = to_float(x_row[i]);
    sum_of_squares += value * value;
  }
  const float total = block_sum(sum_of_squares);
  if (threadIdx.x == 0) inv_rms[blockIdx.x] = rsqrtf(total / static_cast<float>(dim) + norm_eps);
}

/// partial[chunk, j] = Σ_{rows r of the chunk} d_out[r, j] · x[r, j] · inv_rms[r], rows in order.
/// grid (ceil(dim / blockDim.x), chunks); chunk c holds rows c·rows_per_chunk .. (exclusive end
/// min((c + 1)·rows_per_chunk, rows)).
template <class T>
__global__ void rms_norm_gain_partials(const T* __restrict__ x,       // [rows, dim]
                                       const T* __restrict__ d_out,   // [rows, dim]
                                       const float* __restrict__ inv_rms,  // [rows]
                                       float* __restrict__ partial,   // [chunks, dim]
                                       int rows, int dim, int rows_per_chunk) {
  const int column = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (column >= dim) return;
  const int chunk = static_cast<int>(blockIdx.y);
  const int first = chunk * rows_per_chunk;
  const int end = min(first + rows_per_chunk, rows);
  float sum = 0.0f;
  for (int row = first; row < end; ++row) {
    const std::size_t at = static_cast<std::size_t>(row) * static_cast<std::size_t>(dim) +
                           static_cast<std::size_t>(column);
    sum += to_float(d_out[at]) * to_float(x[at]) * inv_rms[row];
  }
  partial[static_cast<std::size_t>(chunk) * static_cast<std::size_t>(dim) +
          static_cast<std::size_t>(column)] = sum;
}

/// d_weight[j] += Σ_chunks partial[chunk, j], chunks in order, one rounding to T.
template <class T>
__global__ void rms_norm_gain_finish(const float* __restrict__ partial,  // [chunks, dim]
                                     T* __restrict__ d_weight,          // [dim]
                                     int dim, int chunks) {
  const int column = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (column >= dim) return;
  float sum = 0.0f;
  for (int chunk = 0; chunk < chunks; ++chunk)
    sum += partial[static_cast<std::size_t>(chunk) * static_cast<std::size_t>(dim) +
                   static_cast<std::size_t>(column)];
  d_weight[column] = from_float<T>(to_float(d_weight[column]) + sum);
}

/// Block `row`: d_x = r·g − r³·x·(g·x)/dim with g = d_out ⊙ γ and r = inv_rms[row]. d_x may be
/// d_out itself: each element is read (twice) and then written by one thread, and the dot
/// product is complete (block_sum's barrier) before any element is written.
template <class T>
__global__ void rms_norm_input_grad(const T* __restrict__ x,          // [rows, dim]
                                    const T* __restrict__ weight,     // [dim]
                                    const float* __restrict__ inv_rms,  // [rows]
                                    const T* d_out,                   // [rows, dim]
                                    T* d_x,                           // [rows, dim]
                                    int dim) {
  const std::size_t row_offset = static_cast<std::size_t>(blockIdx.x) * static_cast<std::size_t>(dim);
  const T* x_row = x + row_offset;
  const T* d_out_row = d_out + row_offset;
  T* d_x_row = d_x + row_offset;
  float g_dot_x = 0.0f;
  for (int i = static_cast<int>(threadIdx.x); i < dim; i += static_cast<int>(blockDim.x))
    g_dot_x += to_float(d_out_row[i]) * to_float(weight[i]) * to_float(x_row[i]);
  g_dot_x = block_sum(g_dot_x);
  const float r = inv_rms[blockIdx.x];
  const float x_scale = r * r * r * g_dot_x / static_cast<float>(dim);
  for (int i = static_cast<int>(threadIdx.x); i < dim; i += static_cast<int>(blockDim.x))
    d_x_row[i] = from_float<T>(to_float(d_out_row[i]) * to_float(weight[i]) * r -
                               to_float(x_row[i]) * x_scale);
}

/// Chunks of rows of the d_γ reduction: about 16 rows each, at most 256 chunks.
inline int rms_norm_gain_chunks(int rows) { return std::clamp((rows + 15) / 16, 1, 256); }

}  // namespace detail

/// Backward of out = x · r · γ, r = 1 / sqrt(mean(x²) + eps), row by row, with g = d_out ⊙ γ:
///   d_x       = r · g − r³ · x · (Σⱼ gⱼ xⱼ) / dim          (written)
///   d_weight += Σ_rows d_out ⊙ x · r                        (accumulated, rows in a fixed order)
/// x, d_out, d_x: [rows, dim]; weight, d_weight: [dim], device memory. d_x may be d_out itself
/// (d_weight is computed first). `scratch` grows to rows + chunks · dim floats. Asynchronous on
/// ctx's stream.
template <class T>
void rms_norm_backward(const Context<cuda>& ctx, const TensorView<const T, 2>& x,
                       const TensorView<const T, 1>& weight, double norm_eps,
                       const TensorView<const T, 2>& d_out, const TensorView<T, 2>& d_x,
                       const TensorView<T, 1>& d_weight, Workspace<float, cuda>& scratch) {
  detail::check_cuda_scalar<T>();
  const char* where = "rms_norm_backward<cuda>";
  const index_t dim = x.shape(1);
  detail::expect_shape(where, "x", x, x.shape());
  detail::expect_shape(where, "weight", weight, {dim});
  detail::expect_shape(where, "d_out", d_out, x.shape());
  detail::expect_shape(where, "d_x", d_x, x.shape());
  detail::expect_shape(where, "d_weight", d_weight, {dim});
  const int rows = detail::checked_int(where, "rows", x.shape(0));
  const int dim32 = detail::checked_int(where, "dim", dim);
  if (rows == 0 || dim32 == 0) return;
  const int chunks = detail::rms_norm_gain_chunks(rows);
  const int rows_per_chunk = (rows + chunks - 1) / chunks;
  const auto buffer = scratch.get<1>({rows + static_cast<index_t>(chunks) * dim});
  float* inv_rms = buffer.data();
  float* partial = inv_rms + rows;
  const float eps = static_cast<float>(norm_eps);
  const int row_threads = detail::rms_norm_backward_threads(dim32);
  detail::rms_norm_row_scales<T><<<rows, row_threads, 0, ctx.stream()>>>(x.data(), inv_rms, dim32, eps);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
  constexpr int column_threads = 128;
  const dim3 partial_grid(static_cast<unsigned>((dim32 + column_threads - 1) / column_threads),
                          static_cast<unsigned>(chunks));
  detail::rms_norm_gain_partials<T><<<partial_grid, column_threads, 0, ctx.stream()>>>(
      x.data(), d_out.data(), inv_rms, partial, rows, dim32, rows_per_chunk);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
  detail::rms_norm_gain_finish<T><<<(dim32 + column_threads - 1) / column_threads, column_threads, 0,
                                    ctx.stream()>>>(partial, d_weight.data(), dim32, chunks);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
  detail::rms_norm_input_grad<T><<<rows, row_threads, 0, ctx.stream()>>>(
      x.data(), weight.data(), inv_rms, d_out.data(), d_x.data(), dim32);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
}

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

  /// What the training forward keeps for backward, owned by the caller (one per call site).
  struct Activations {
    detail::SavedTensor<T, 3, cuda> x;  // [batch, tokens, dim]
  };

  /// Allocates weight().grad() in device memory (training only).
  void enable_grad() { weight_.enable_grad(); }
  void zero_grad() { weight_.zero_grad(); }

  /// Training forward: the same output as forward() (out may be x), and x kept in `activations`
  /// (a device copy on ctx's stream, taken before out is written).
  void forward(const Context<cuda>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out, Activations& activations) const {
    const char* where = "RMSNorm<cuda>::forward";
    detail::check_norm_io(where, dim_, x, out);
    detail::checked_int(where, "rows", x.shape(0) * x.shape(1));
    const auto saved_x = activations.x.prepare(x.shape());
    detail::copy_on_stream(ctx, saved_x.data(), x.data(), x.size());
    forward(ctx, x, out);
  }

  /// d_out, d_x: [batch, tokens, dim] in device memory; d_x is written (it may be d_out itself)
  /// and weight().grad() accumulated, as rms_norm_backward says. Needs enable_grad() and a
  /// training forward into `activations`; throws before writing anything otherwise.
  /// Asynchronous on ctx's stream.
  void backward(const Context<cuda>& ctx, const Activations& activations,
                const TensorView<const T, 3>& d_out, const TensorView<T, 3>& d_x) {
    const Shape<3> x_shape = detail::check_rms_norm_backward("RMSNorm<cuda>::backward", activations, dim_, d_out, d_x);
    const TensorView<T, 1> d_weight = weight_.grad();
    const index_t rows = x_shape[0] * x_shape[1];
    rms_norm_backward<T>(ctx, reshape<2>(activations.x.view(), {rows, dim_}), weight_.view(),
                         norm_eps_, reshape<2>(d_out, {rows, dim_}), reshape<2>(d_x, {rows, dim_}),
                         d_weight, scratch_);
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
  // Backward only (1/rms per row and the d_γ partial sums), so inference never allocates it.
  Workspace<float, cuda> scratch_;
};

}  // namespace llamablocks
