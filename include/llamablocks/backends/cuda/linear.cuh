// Linear on the cuda backend, and the GEMM every cuda module projects with:
//   y = x · Wᵀ        x: [rows, in] (row-major)   W: [out, in] (nn.Linear layout)   y: [rows, out]
// through cublasGemmEx with float accumulation (CUBLAS_COMPUTE_32F): tensor cores for __half and
// __nv_bfloat16, plain float for float unless the context allows TF32 (Context<cuda>::set_tf32).
//
// Row-major y = x Wᵀ is column-major yᵀ = W xᵀ: cuBLAS sees W (stored [out, in] row-major) as the
// column-major in × out matrix Wᵀ, so the call is C = op(A)·B with A = W transposed (m = out,
// k = in), B = x as stored (column-major in × rows), C = y as stored (column-major out × rows).
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"
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
  const float alpha = 1.0f;
  constexpr cudaDataType_t type = cuda_data_type<T>();
  const cublasComputeType_t compute = std::is_same_v<T, float> && ctx.tf32()
                                          ? CUBLAS_COMPUTE_32F_FAST_TF32
                                          : CUBLAS_COMPUTE_32F;
  LLAMABLOCKS_CUBLAS_CHECK(cublasGemmEx(ctx.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in,
                                        &alpha, w.data(), type, in, x.data(), type, in, &beta,
                                        y.data(), type, out, compute, CUBLAS_GEMM_DEFAULT));
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

 private:
  Parameter<T, 2, cuda> weight_;
};

}  // namespace llamablocks
