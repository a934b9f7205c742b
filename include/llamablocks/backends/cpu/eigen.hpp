// Eigen views of llamablocks tensors and the projection kernel every module uses:
//   y = x · Wᵀ       x: [rows, in_features]   W: [out_features, in_features]   y: [rows, out_features]
// and its backward (training):
//   d_x = d_y · W    [rows, in_features]        d_W += d_yᵀ · x    [out_features, in_features]
//
// Many rows (prefill) of float go to our AVX-512 GEMM (gemm.hpp) where the CPU has AVX-512, else
// (and for double) to Eigen's blocked GEMM, threaded by Eigen over the context's threads.
// Few rows (decode) are a matrix-vector product that Eigen does not thread, so the output features
// are split into blocks over OpenMP threads instead; each block streams its rows of W once.
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/cpu_isa.hpp"
#include "llamablocks/backends/cpu/gemm.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/core/weight_type.hpp"
#include "llamablocks/core/workspace.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <type_traits>

namespace llamablocks {
namespace detail {

template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Row-major matrix view of a contiguous [rows, cols] tensor.
template <class T>
Eigen::Map<RowMatrix<T>> as_matrix(const TensorView<T, 2>& view) {
  return {view.data(), view.shape(0), view.shape(1)};
}
template <class T>
Eigen::Map<const RowMatrix<T>> as_matrix(const TensorView<const T, 2>& view) {
  return {view.data(), view.shape(0), view.shape(1)};
}

/// Row-major map of `rows` × `cols` elements whose rows are `row_stride` apart.
template <class T>
using StridedRowMap =
    Eigen::Map<std::conditional_t<std::is_const_v<T>, const RowMatrix<std::remove_const_t<T>>,
                                  RowMatrix<T>>,
               0, Eigen::OuterStride<>>;

template <class T>
StridedRowMap<T> strided_matrix(T* data, index_t rows, index_t cols, index_t row_stride) {
  return StridedRowMap<T>(data, rows, cols, Eigen::OuterStride<>(row_stride));
}

/// Below this many rows the product is treated as a (batched) matrix-vector product.
inline constexpr index_t gemv_row_limit = 8;

template <class T>
void check_cpu_scalar() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "llamablocks cpu backend: T must be float or double");
}

/// Pre-condition: x, w, out contiguous with matching shapes (checked by the calling module).
/// \param scratch the packed panels of gemm_avx512 (float, many rows, an AVX-512 CPU); when null,
///                a Workspace of the calling thread's own, grown once per size and kept.
template <class T>
void linear_kernel(const Context<cpu>& ctx, const TensorView<const T, 2>& x,
                   const TensorView<const T, 2>& weight, const TensorView<T, 2>& out,
                   Workspace<std::uint8_t, cpu>* scratch = nullptr) {
  const index_t rows = x.shape(0);
  const index_t in_features = x.shape(1);
  const index_t out_features = weight.shape(0);
#if LLAMABLOCKS_X86_KERNELS
  if constexpr (std::is_same_v<T, float>) {
    if (rows >= gemv_row_limit && is_avx512(cpu_isa())) {
      const PackedMatrixView w{WeightType::f32, reinterpret_cast<const std::uint8_t*>(weight.data()),
                               out_features, in_features,
                               sizeof(float) * static_cast<std::size_t>(in_features)};
      thread_local Workspace<std::uint8_t, cpu> own_scratch;
      gemm_avx512(ctx, x.data(), in_features, rows, w, out.data(), out_features, false,
                  scratch ? *scratch : own_scratch);
      return;
    }
  }
#endif
  (void)scratch;
  const auto x_matrix = as_matrix(x);
  if (rows >= gemv_row_limit || ctx.num_threads() == 1) {
    as_matrix(out).noalias() = x_matrix * as_matrix(weight).transpose();
    return;
  }
  // Contiguous blocks of output features, a multiple of 16 rows of W each, a few per thread so
  // the static schedule stays balanced.
  const index_t block_count_target = 4 * static_cast<index_t>(ctx.num_threads());
  const index_t block_rows =
      std::max<index_t>(16, (out_features / block_count_target + 15) / 16 * 16);
  const index_t block_count = (out_features + block_rows - 1) / block_rows;
  parallel_for(ctx, block_count, [&](index_t block) {
    const index_t first = block * block_rows;
    const index_t count = std::min(block_rows, out_features - first);
    const auto weight_block = strided_matrix(weight.data() + first * in_features, count,
                                             in_features, in_features);
    auto out_block = strided_matrix(out.data() + first, rows, count, out_features);
    out_block.noalias() = x_matrix * weight_block.transpose();
  });
}

/// d_weight += d_outᵀ · x, the weight gradient of y = x·Wᵀ, accumulated.
/// x: [rows, in_features]  d_out: [rows, out_features]  d_weight: [out_features, in_features].
/// Pre-condition: contiguous, matching shapes, d_weight disjoint from the inputs (checked by the
/// calling module). Eigen's GEMM threads itself with the count the context set.
template <class T>
void linear_weight_grad_kernel(const Context<cpu>& ctx, const TensorView<const T, 2>& x,
                               const TensorView<const T, 2>& d_out, const TensorView<T, 2>& d_weight) {
  (void)ctx;
  as_matrix(d_weight).noalias() += as_matrix(d_out).transpose() * as_matrix(x);
}

/// d_x = d_out · W (accumulate: d_x += d_out · W), the input gradient of y = x·Wᵀ.
/// d_out: [rows, out_features]  weight: [out_features, in_features]  d_x: [rows, in_features].
/// Same pre-conditions as linear_weight_grad_kernel.
template <class T>
void linear_input_grad_kernel(const Context<cpu>& ctx, const TensorView<const T, 2>& d_out,
                              const TensorView<const T, 2>& weight, const TensorView<T, 2>& d_x,
                              bool accumulate) {
  (void)ctx;
  if (accumulate)
    as_matrix(d_x).noalias() += as_matrix(d_out) * as_matrix(weight);
  else
    as_matrix(d_x).noalias() = as_matrix(d_out) * as_matrix(weight);
}

}  // namespace detail
}  // namespace llamablocks
