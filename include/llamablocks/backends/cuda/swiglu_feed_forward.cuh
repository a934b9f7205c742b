// SwiGLUFeedForward on the cuda backend:
//   y = W2 · (silu(W1 · x) ⊙ (W3 · x))
//   x, y: [batch, tokens, dim]   W1 (gate), W3 (up): [ffn_hidden_dim, dim]   W2 (down): [dim, ffn_hidden_dim]
// Three cuBLAS GEMMs (detail::matmul_nt, float accumulation) and the fused activation kernel
// swiglu_activation (gate = silu(gate) · up in one pass). gate and up live in grow-only device
// scratch, so repeated calls of one size allocate nothing.
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/elementwise.cuh"
#include "llamablocks/backends/cuda/linear.cuh"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/workspace.hpp"
#include "llamablocks/modules/swiglu_feed_forward.hpp"

namespace llamablocks {

/// Gated feed-forward network with SiLU gate, weights in device memory.
/// \tparam T float, __half or __nv_bfloat16 (float accumulation).
template <class T>
class SwiGLUFeedForward<cuda, T> : public detail::FeedForwardWeights<cuda, T> {
  using Weights = detail::FeedForwardWeights<cuda, T>;
  using Weights::w1_, Weights::w2_, Weights::w3_;

 public:
  using Weights::dim, Weights::ffn_hidden_dim;

  /// \param model_dim  width of the residual stream (dim()).
  /// \param inner_dim  inner width, ffn_hidden_dim() (llama_ffn_hidden_dim gives Meta's rule).
  SwiGLUFeedForward(index_t model_dim, index_t inner_dim) : Weights(model_dim, inner_dim) {
    detail::check_cuda_scalar<T>();
  }

  explicit SwiGLUFeedForward(const ModelConfig& config)
      : SwiGLUFeedForward(config.dim, config.ffn_hidden_dim) {}

  /// x, out: [batch, tokens, dim] in device memory; out must not overlap x. Asynchronous on
  /// ctx's stream.
  void forward(const Context<cuda>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out) {
    detail::check_projection_io("SwiGLUFeedForward<cuda>::forward", "dim", dim(), dim(), x, out);
    const index_t rows = x.shape(0) * x.shape(1);
    const auto x_rows = reshape<2>(x, {rows, dim()});
    const auto gate = gate_.template get<2>({rows, ffn_hidden_dim()});
    const auto up = up_.template get<2>({rows, ffn_hidden_dim()});
    detail::matmul_nt<T>(ctx, x_rows, w1_.view(), gate);
    detail::matmul_nt<T>(ctx, x_rows, w3_.view(), up);
    swiglu_activation<T>(ctx, gate, up);
    detail::matmul_nt<T>(ctx, gate, w2_.view(), reshape<2>(out, {rows, dim()}));
  }

 private:
  Workspace<T, cuda> gate_;
  Workspace<T, cuda> up_;
};

}  // namespace llamablocks
