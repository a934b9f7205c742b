// SwiGLUFeedForward on the cuda backend:
//   y = W2 · (silu(W1 · x) ⊙ (W3 · x))
//   x, y: [batch, tokens, dim]   W1 (gate), W3 (up): [ffn_hidden_dim, dim]   W2 (down): [dim, ffn_hidden_dim]
// Three cuBLAS GEMMs (detail::matmul_nt, float accumulation) and the fused activation kernel
// swiglu_activation (gate = silu(gate) · up in one pass). gate and up live in grow-only device
// scratch, so repeated calls of one size allocate nothing.
//
// Training: the forward with Activations keeps x, gate = xW1ᵀ and up = xW3ᵀ (hidden is recomputed);
// backward, with d_hidden = d_out W2 (cuBLAS, float accumulation, weight gradients with beta = 1):
//   d_W2 += d_outᵀ hidden    d_gate, d_up = swiglu_activation_backward(gate, up, d_hidden)
//   d_W1 += d_gateᵀ x        d_W3 += d_upᵀ x        d_x = d_gate W1 + d_up W3
//   d_out, d_x: [rows, dim]   hidden, d_hidden, d_gate, d_up: [rows, ffn_hidden_dim]
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/elementwise.cuh"
#include "llamablocks/backends/cuda/linear.cuh"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/saved_tensor.hpp"
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

  /// What the training forward keeps for backward, owned by the caller (one per call site).
  struct Activations {
    detail::SavedTensor<T, 3, cuda> x;     // [batch, tokens, dim]
    detail::SavedTensor<T, 2, cuda> gate;  // x W1ᵀ before the activation [batch·tokens, ffn_hidden_dim]
    detail::SavedTensor<T, 2, cuda> up;    // x W3ᵀ                        [batch·tokens, ffn_hidden_dim]
  };

  /// Allocates the gradients of w1, w2, w3 in device memory (training only).
  void enable_grad() {
    w1_.enable_grad();
    w2_.enable_grad();
    w3_.enable_grad();
  }
  void zero_grad() {
    w1_.zero_grad();
    w2_.zero_grad();
    w3_.zero_grad();
  }

  /// Training forward: the same output as forward(), and x, gate, up kept in `activations`.
  /// Asynchronous on ctx's stream.
  void forward(const Context<cuda>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out, Activations& activations) {
    const char* where = "SwiGLUFeedForward<cuda>::forward";
    detail::check_projection_io(where, "dim", dim(), dim(), x, out);
    const index_t rows = x.shape(0) * x.shape(1);
    detail::checked_int(where, "rows", rows);
    const Shape<2> hidden_shape{rows, ffn_hidden_dim()};
    const auto hidden = gate_.template get<2>(hidden_shape);
    const auto x_rows = reshape<2>(x, {rows, dim()});
    const auto saved_x = activations.x.prepare(x.shape());
    detail::copy_on_stream(ctx, saved_x.data(), x.data(), x.size());
    const auto gate = activations.gate.prepare(hidden_shape);
    const auto up = activations.up.prepare(hidden_shape);
    detail::matmul_nt<T>(ctx, x_rows, w1_.view(), gate);
    detail::matmul_nt<T>(ctx, x_rows, w3_.view(), up);
    detail::copy_on_stream(ctx, hidden.data(), gate.data(), gate.size());
    swiglu_activation<T>(ctx, hidden, TensorView<const T, 2>(up));
    detail::matmul_nt<T>(ctx, hidden, w2_.view(), reshape<2>(out, {rows, dim()}));
  }

  /// d_out, d_x: [batch, tokens, dim] in device memory, disjoint; d_x is written and the
  /// gradients of w1, w2, w3 accumulated. Needs enable_grad() and a training forward into
  /// `activations`; throws before writing anything otherwise. Asynchronous on ctx's stream.
  void backward(const Context<cuda>& ctx, const Activations& activations,
                const TensorView<const T, 3>& d_out, const TensorView<T, 3>& d_x) {
    const char* where = "SwiGLUFeedForward<cuda>::backward";
    const Shape<3> x_shape =
        detail::check_swiglu_backward(where, activations, dim(), ffn_hidden_dim(), d_out, d_x);
    const index_t rows = x_shape[0] * x_shape[1];
    detail::checked_int(where, "rows", rows);
    const TensorView<const T, 2> w1 = w1_.view();
    const TensorView<const T, 2> w2 = w2_.view();
    const TensorView<const T, 2> w3 = w3_.view();
    const TensorView<T, 2> d_w1 = w1_.grad();
    const TensorView<T, 2> d_w2 = w2_.grad();
    const TensorView<T, 2> d_w3 = w3_.grad();

    // All scratch first: an allocation that fails leaves the gradients as they were.
    const Shape<2> hidden_shape{rows, ffn_hidden_dim()};
    const auto hidden = gate_.template get<2>(hidden_shape);
    const auto d_hidden = d_hidden_.template get<2>(hidden_shape);
    const auto d_gate = d_gate_.template get<2>(hidden_shape);
    const auto d_up = d_up_.template get<2>(hidden_shape);
    const auto x_rows = reshape<2>(activations.x.view(), {rows, dim()});
    const auto d_out_rows = reshape<2>(d_out, {rows, dim()});
    const auto d_x_rows = reshape<2>(d_x, {rows, dim()});
    const TensorView<const T, 2> gate = activations.gate.view();
    const TensorView<const T, 2> up = activations.up.view();

    detail::copy_on_stream(ctx, hidden.data(), gate.data(), gate.size());
    swiglu_activation<T>(ctx, hidden, up);
    detail::matmul_tn<T>(ctx, d_out_rows, TensorView<const T, 2>(hidden), d_w2, 1.0f);
    detail::matmul_nn<T>(ctx, d_out_rows, w2, d_hidden);
    swiglu_activation_backward<T>(ctx, gate, up, TensorView<const T, 2>(d_hidden), d_gate, d_up);
    detail::matmul_tn<T>(ctx, TensorView<const T, 2>(d_gate), x_rows, d_w1, 1.0f);
    detail::matmul_tn<T>(ctx, TensorView<const T, 2>(d_up), x_rows, d_w3, 1.0f);
    detail::matmul_nn<T>(ctx, TensorView<const T, 2>(d_gate), w1, d_x_rows);
    detail::matmul_nn<T>(ctx, TensorView<const T, 2>(d_up), w3, d_x_rows, 1.0f);
  }

 private:
  Workspace<T, cuda> gate_;
  Workspace<T, cuda> up_;
  // Backward only, so inference never allocates them.
  Workspace<T, cuda> d_hidden_;
  Workspace<T, cuda> d_gate_;
  Workspace<T, cuda> d_up_;
};

}  // namespace llamablocks
