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
class SwiGLUFeedForward<cuda, T> {
 public:
  /// \param dim            width of the residual stream.
  /// \param ffn_hidden_dim inner width (llama_ffn_hidden_dim gives Meta's rule).
  SwiGLUFeedForward(index_t dim, index_t ffn_hidden_dim)
      : w1_("feed_forward.w1",
            {detail::check_positive("SwiGLUFeedForward", "ffn_hidden_dim", ffn_hidden_dim),
             detail::check_positive("SwiGLUFeedForward", "dim", dim)}),
        w2_("feed_forward.w2", {dim, ffn_hidden_dim}),
        w3_("feed_forward.w3", {ffn_hidden_dim, dim}) {
    detail::check_cuda_scalar<T>();
  }

  explicit SwiGLUFeedForward(const ModelConfig& config)
      : SwiGLUFeedForward(config.dim, config.ffn_hidden_dim) {}

  index_t dim() const { return w1_.shape()[1]; }
  index_t ffn_hidden_dim() const { return w1_.shape()[0]; }
  Parameter<T, 2, cuda>& w1() { return w1_; }
  Parameter<T, 2, cuda>& w2() { return w2_; }
  Parameter<T, 2, cuda>& w3() { return w3_; }
  const Parameter<T, 2, cuda>& w1() const { return w1_; }
  const Parameter<T, 2, cuda>& w2() const { return w2_; }
  const Parameter<T, 2, cuda>& w3() const { return w3_; }

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
  Parameter<T, 2, cuda> w1_;
  Parameter<T, 2, cuda> w2_;
  Parameter<T, 2, cuda> w3_;
  Workspace<T, cuda> gate_;
  Workspace<T, cuda> up_;
};

}  // namespace llamablocks
