// Linear on the cuda backend, and the GEMM every cuda module projects with:
//   y = x · Wᵀ        x: [rows, in] (row-major)   W: [out, in] (nn.Linear layout)   y: [rows, out]
// through cublasGemmEx with float accumulation (CUBLAS_COMPUTE_32F): tensor cores for __half and
// __nv_bfloat16, plain float for float unless the context allows TF32 (Context<cuda>::set_tf32).
//
// Row-major y = x Wᵀ is column-major yᵀ = W xᵀ: cuBLAS sees W (stored [out, in] row-major) as the
// column-major in × out matrix Wᵀ, so the call is C = op(A)·B with A = W transposed (m = out,
// k = in), B = x as stored (column-major in × rows), C = y as stored (column-major out × rows).
//
// Training: the forward with Activations keeps x; backward, with the same float accumulation,
//   d_x  = d_y · W         d_y: [rows, out]  W: [out, in]  d_x: [rows, in]    (matmul_nn, written)
//   d_W += d_yᵀ · x        d_W: [out, in]                                    (matmul_tn, beta = 1)
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/saved_tensor.hpp"
#include "llamablocks/modules/linear.hpp"

#include <type_traits>

namespace llamablocks {
namespace detail {

template <class T>
constexpr cudaDataType_t cuda_data_type() {
  if constexpr (std::is_same_v<T, __half>) {
    return CUDA_R_16F;
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return CUDA_R_16BF;
  } else {
    return CUDA_R_32F;
  }
}

/// The cuBLAS GEMM of the backend, column-major as cuBLAS sees it:
///   C [m, n] = op_a(A) [m, k] · op_b(B) [k, n] + beta · C, float accumulation (TF32 for float only
/// when ctx allows it). Every extent has been checked to fit int by the callers.
template <class T>
void gemm(const Context<cuda>& ctx, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n,
          int k, const T* a, int lda, const T* b, int ldb, T* c, int ldc, float beta) {
  if (m == 0 || n == 0) return;
  const float alpha = 1.0f;
  constexpr cudaDataType_t type = cuda_data_type<T>();
  const cublasComputeType_t compute = std::is_same_v<T, float> && ctx.tf32()
                                          ? CUBLAS_COMPUTE_32F_FAST_TF32
                                          : CUBLAS_COMPUTE_32F;
  LLAMABLOCKS_CUBLAS_CHECK(cublasGemmEx(ctx.cublas(), op_a, op_b, m, n, k, &alpha, a, type, lda, b,
                                        type, ldb, &beta, c, type, ldc, compute,
                                        CUBLAS_GEMM_DEFAULT));
}

/// y = beta·y + x · Wᵀ on ctx's stream. x: [rows, in], w: [out, in], y: [rows, out], all
/// contiguous device memory (checked by the callers); beta is 0 (overwrite) or 1 (accumulate).
template <class T>
void matmul_nt(const Context<cuda>& ctx, const TensorView<const T, 2>& x,
               const TensorView<const T, 2>& w, const TensorView<T, 2>& y, float beta = 0.0f) {
  const char* where = "matmul_nt<cuda>";
  const int rows = checked_int(where, "rows", x.shape(0));
  const int in = checked_int(where, "in_features", x.shape(1));
  const int out = checked_int(where, "out_features", w.shape(0));
  if (rows == 0 || out == 0) return;
  gemm<T>(ctx, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, w.data(), in, x.data(), in, y.data(), out,
          beta);
}

/// c = beta·c + a · b (row-major): a: [m, k], b: [k, n], c: [m, n], contiguous device memory.
/// Column-major that is cᵀ [n, m] = bᵀ [n, k] · aᵀ [k, m], both stored as they are (no transpose).
/// The input gradient of a projection: d_x [rows, in] = d_y [rows, out] · W [out, in].
template <class T>
void matmul_nn(const Context<cuda>& ctx, const TensorView<const T, 2>& a,
               const TensorView<const T, 2>& b, const TensorView<T, 2>& c, float beta = 0.0f) {
  const char* where = "matmul_nn<cuda>";
  const int m = checked_int(where, "m", a.shape(0));
  const int k = checked_int(where, "k", a.shape(1));
  const int n = checked_int(where, "n", b.shape(1));
  if (m == 0 || n == 0) return;
  if (k == 0 && beta == 0.0f) {
    LLAMABLOCKS_CUDA_CHECK(cudaMemsetAsync(c.data(), 0, static_cast<std::size_t>(c.size()) * sizeof(T),
                                           ctx.stream()));
    return;
  }
  gemm<T>(ctx, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, b.data(), n, a.data(), k, c.data(), n, beta);
}

/// c = beta·c + aᵀ · b (row-major): a: [k, m], b: [k, n], c: [m, n], contiguous device memory.
/// Column-major that is cᵀ [n, m] = bᵀ [n, k] · a [k, m]: b as stored, a (column-major m × k)
/// transposed. The weight gradient of a projection: d_W [out, in] += d_yᵀ [out, rows] · x [rows, in].
template <class T>
void matmul_tn(const Context<cuda>& ctx, const TensorView<const T, 2>& a,
               const TensorView<const T, 2>& b, const TensorView<T, 2>& c, float beta = 0.0f) {
  const char* where = "matmul_tn<cuda>";
  const int k = checked_int(where, "k", a.shape(0));
  const int m = checked_int(where, "m", a.shape(1));
  const int n = checked_int(where, "n", b.shape(1));
  if (m == 0 || n == 0 || (k == 0 && beta == 1.0f)) return;
  gemm<T>(ctx, CUBLAS_OP_N, CUBLAS_OP_T, n, m, k, b.data(), n, a.data(), m, c.data(), n, beta);
}

}  // namespace detail

/// y = x · Wᵀ with W in device memory.
/// \tparam T float, __half or __nv_bfloat16 (float accumulation for all three).
template <class T>
class Linear<cuda, T> {
 public:
  /// \param in_features  width of the input's last dimension.
  /// \param out_features width of the output's last dimension (the vocabulary for an output head).
  Linear(index_t in_features, index_t out_features)
      : weight_("Linear.weight", {detail::check_positive("Linear", "out_features", out_features),
                                  detail::check_positive("Linear", "in_features", in_features)}) {
    detail::check_cuda_scalar<T>();
  }

  index_t in_features() const { return weight_.shape()[1]; }
  index_t out_features() const { return weight_.shape()[0]; }
  Parameter<T, 2, cuda>& weight() { return weight_; }
  const Parameter<T, 2, cuda>& weight() const { return weight_; }

  /// x: [batch, tokens, in_features] -> out: [batch, tokens, out_features], device memory, no
  /// overlap; asynchronous on ctx's stream.
  void forward(const Context<cuda>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out) const {
    detail::check_projection_io("Linear<cuda>::forward", "in_features", in_features(),
                                out_features(), x, out);
    const index_t rows = x.shape(0) * x.shape(1);
    detail::matmul_nt<T>(ctx, reshape<2>(x, {rows, in_features()}), weight_.view(),
                         reshape<2>(out, {rows, out_features()}));
  }

  /// What the training forward keeps for backward, owned by the caller (one per call site).
  struct Activations {
    detail::SavedTensor<T, 3, cuda> x;  // [batch, tokens, in_features]
  };

  /// Allocates weight().grad() in device memory (training only).
  void enable_grad() { weight_.enable_grad(); }
  void zero_grad() { weight_.zero_grad(); }

  /// Training forward: the same output as forward(), and x kept in `activations` (a device copy
  /// on ctx's stream).
  void forward(const Context<cuda>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out, Activations& activations) const {
    detail::check_projection_io("Linear<cuda>::forward", "in_features", in_features(),
                                out_features(), x, out);
    detail::checked_int("Linear<cuda>::forward", "rows", x.shape(0) * x.shape(1));
    const auto saved_x = activations.x.prepare(x.shape());
    detail::copy_on_stream(ctx, saved_x.data(), x.data(), x.size());
    forward(ctx, x, out);
  }

  /// d_out: [batch, tokens, out_features] -> d_x = d_out · W: [batch, tokens, in_features]
  /// (written), and weight().grad() += d_outᵀ · x (accumulated, beta = 1), device memory,
  /// asynchronous on ctx's stream. Needs enable_grad() and a training forward into `activations`;
  /// throws before writing anything otherwise.
  void backward(const Context<cuda>& ctx, const Activations& activations,
                const TensorView<const T, 3>& d_out, const TensorView<T, 3>& d_x) {
    const char* where = "Linear<cuda>::backward";
    const Shape<3> x_shape =
        detail::check_linear_backward(where, activations, in_features(), out_features(), d_out, d_x);
    const TensorView<const T, 2> weight = weight_.view();
    const TensorView<T, 2> d_weight = weight_.grad();
    const index_t rows = x_shape[0] * x_shape[1];
    detail::checked_int(where, "rows", rows);
    const auto d_out_rows = reshape<2>(d_out, {rows, out_features()});
    detail::matmul_tn<T>(ctx, d_out_rows, reshape<2>(activations.x.view(), {rows, in_features()}),
                         d_weight, 1.0f);
    detail::matmul_nn<T>(ctx, d_out_rows, weight, reshape<2>(d_x, {rows, in_features()}));
  }

 private:
  Parameter<T, 2, cuda> weight_;
};

}  // namespace llamablocks
