// SwiGLUFeedForward on the cpu backend:
//   gate = x W1ᵀ, up = x W3ᵀ  [rows, ffn_hidden_dim];  hidden = silu(gate) ⊙ up;  out = hidden W2ᵀ
// gate and up live in grow-only workspaces; hidden overwrites gate.
// Training: the forward with Activations keeps x, gate and up (hidden is recomputed from them);
// backward, with d_hidden = d_out W2:
//   d_W2 += d_outᵀ hidden    d_gate, d_up = swiglu_activation_backward(gate, up, d_hidden)
//   d_W1 += d_gateᵀ x        d_W3 += d_upᵀ x        d_x = d_gate W1 + d_up W3
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/backends/cpu/packed_matmul.hpp"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/math.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/saved_tensor.hpp"
#include "llamablocks/core/workspace.hpp"
#include "llamablocks/modules/swiglu_feed_forward.hpp"

#include <algorithm>
#include <cmath>

namespace llamablocks {

/// gate[i] = silu(gate[i]) · up[i], in place over equal-shaped contiguous [rows, width] views.
template <class T>
void swiglu_activation(const Context<cpu>& ctx, const TensorView<T, 2>& gate,
                       const TensorView<const T, 2>& up) {
  detail::check_cpu_scalar<T>();
  detail::expect_shape("swiglu_activation", "up", up, gate.shape());
  detail::expect_shape("swiglu_activation", "gate", gate, gate.shape());
  const index_t width = gate.shape(1);
  detail::parallel_for(ctx, gate.shape(0), [&](index_t row) {
    auto g = Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(gate.data() + row * width, width);
    const auto u = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(up.data() + row * width, width);
    // silu(g) = g / (1 + e^{-g}), vectorized by Eigen; see detail::silu for the scalar form.
    g = g / (T(1) + (-g).exp()) * u;
  });
}

/// Backward of hidden = silu(gate) ⊙ up, with σ = 1 / (1 + e^{−gate}):
///   d_up   = d_hidden ⊙ silu(gate)
///   d_gate = d_hidden ⊙ up ⊙ silu′(gate),    silu′(g) = σ(g) · (1 + g · (1 − σ(g)))
/// gate, up, d_hidden, d_gate, d_up: contiguous [rows, width]; d_gate and d_up are written and
/// overlap neither the inputs nor each other.
template <class T>
void swiglu_activation_backward(const Context<cpu>& ctx, const TensorView<const T, 2>& gate,
                                const TensorView<const T, 2>& up,
                                const TensorView<const T, 2>& d_hidden,
                                const TensorView<T, 2>& d_gate, const TensorView<T, 2>& d_up) {
  detail::check_cpu_scalar<T>();
  const char* where = "swiglu_activation_backward";
  detail::expect_shape(where, "gate", gate, gate.shape());
  detail::expect_shape(where, "up", up, gate.shape());
  detail::expect_shape(where, "d_hidden", d_hidden, gate.shape());
  detail::expect_shape(where, "d_gate", d_gate, gate.shape());
  detail::expect_shape(where, "d_up", d_up, gate.shape());
  detail::expect_disjoint(where, "d_gate", d_gate, "d_up", d_up);
  for (const auto* written : {&d_gate, &d_up}) {
    detail::expect_disjoint(where, "gate", gate, "an output", *written);
    detail::expect_disjoint(where, "up", up, "an output", *written);
    detail::expect_disjoint(where, "d_hidden", d_hidden, "an output", *written);
  }
  const index_t width = gate.shape(1);
  detail::parallel_for(ctx, gate.shape(0), [&](index_t row) {
    const index_t first = row * width;
    for (index_t j = first; j < first + width; ++j) {
      const T g = gate.data()[j];
      const T sigmoid = T(1) / (T(1) + std::exp(-g));
      d_up.data()[j] = d_hidden.data()[j] * g * sigmoid;
      d_gate.data()[j] = d_hidden.data()[j] * up.data()[j] * sigmoid * (T(1) + g * (T(1) - sigmoid));
    }
  });
}

template <class T>
class SwiGLUFeedForward<cpu, T> : public detail::FeedForwardWeights<cpu, T> {
  using Weights = detail::FeedForwardWeights<cpu, T>;
  using Weights::w1_, Weights::w2_, Weights::w3_;

 public:
  using Weights::dim, Weights::ffn_hidden_dim;

  /// \param model_dim  width of the residual stream (dim()).
  /// \param inner_dim  inner width, ffn_hidden_dim() (llama_ffn_hidden_dim gives Meta's rule).
  SwiGLUFeedForward(index_t model_dim, index_t inner_dim) : Weights(model_dim, inner_dim) {
    detail::check_cpu_scalar<T>();
  }

  explicit SwiGLUFeedForward(const ModelConfig& config)
      : SwiGLUFeedForward(config.dim, config.ffn_hidden_dim) {}

  /// x, out: [batch, tokens, dim]; out must not overlap x.
  void forward(const Context<cpu>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out) {
    detail::check_projection_io("SwiGLUFeedForward::forward", "dim", dim(), dim(), x, out);
    const index_t rows = x.shape(0) * x.shape(1);
    const auto x_rows = reshape<2>(x, {rows, dim()});
    const auto gate = gate_.template get<2>({rows, ffn_hidden_dim()});
    const auto up = up_.template get<2>({rows, ffn_hidden_dim()});
    detail::project<T>(ctx, x_rows, w1_, gate, packed_scratch_);
    detail::project<T>(ctx, x_rows, w3_, up, packed_scratch_);
    swiglu_activation<T>(ctx, gate, up);
    detail::project<T>(ctx, gate, w2_, reshape<2>(out, {rows, dim()}), packed_scratch_);
  }

  /// What the training forward keeps for backward, owned by the caller (one per call site).
  struct Activations {
    detail::SavedTensor<T, 3, cpu> x;     // [batch, tokens, dim]
    detail::SavedTensor<T, 2, cpu> gate;  // x W1ᵀ before the activation [batch·tokens, ffn_hidden_dim]
    detail::SavedTensor<T, 2, cpu> up;    // x W3ᵀ                        [batch·tokens, ffn_hidden_dim]
  };

  /// Allocates the gradients of w1, w2, w3 (training only).
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
  void forward(const Context<cpu>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out, Activations& activations) {
    detail::check_projection_io("SwiGLUFeedForward::forward", "dim", dim(), dim(), x, out);
    const index_t rows = x.shape(0) * x.shape(1);
    const auto x_rows = reshape<2>(x, {rows, dim()});
    const auto saved_x = activations.x.prepare(x.shape());
    std::copy_n(x.data(), x.size(), saved_x.data());
    const auto gate = activations.gate.prepare({rows, ffn_hidden_dim()});
    const auto up = activations.up.prepare({rows, ffn_hidden_dim()});
    detail::project<T>(ctx, x_rows, w1_, gate, packed_scratch_);
    detail::project<T>(ctx, x_rows, w3_, up, packed_scratch_);
    const auto hidden = gate_.template get<2>({rows, ffn_hidden_dim()});
    std::copy_n(gate.data(), gate.size(), hidden.data());
    swiglu_activation<T>(ctx, hidden, up);
    detail::project<T>(ctx, hidden, w2_, reshape<2>(out, {rows, dim()}), packed_scratch_);
  }

  /// d_out, d_x: [batch, tokens, dim], disjoint; d_x is written and the gradients of w1, w2, w3
  /// accumulated. Needs enable_grad() and a training forward into `activations`; throws before
  /// writing anything otherwise.
  void backward(const Context<cpu>& ctx, const Activations& activations,
                const TensorView<const T, 3>& d_out, const TensorView<T, 3>& d_x) {
    const char* where = "SwiGLUFeedForward::backward";
    const Shape<3> x_shape =
        detail::check_swiglu_backward(where, activations, dim(), ffn_hidden_dim(), d_out, d_x);
    const index_t rows = x_shape[0] * x_shape[1];
    const TensorView<const T, 2> w1 = w1_.view();
    const TensorView<const T, 2> w2 = w2_.view();
    const TensorView<const T, 2> w3 = w3_.view();
    const TensorView<T, 2> d_w1 = w1_.grad();
    const TensorView<T, 2> d_w2 = w2_.grad();
    const TensorView<T, 2> d_w3 = w3_.grad();

    const Shape<2> hidden_shape{rows, ffn_hidden_dim()};
    const auto x_rows = reshape<2>(activations.x.view(), {rows, dim()});
    const auto d_out_rows = reshape<2>(d_out, {rows, dim()});
    const auto d_x_rows = reshape<2>(d_x, {rows, dim()});
    const auto hidden = gate_.template get<2>(hidden_shape);
    const auto d_hidden = d_hidden_.template get<2>(hidden_shape);
    const auto d_gate = d_gate_.template get<2>(hidden_shape);
    const auto d_up = d_up_.template get<2>(hidden_shape);

    std::copy_n(activations.gate.view().data(), hidden.size(), hidden.data());
    swiglu_activation<T>(ctx, hidden, activations.up.view());
    detail::linear_weight_grad_kernel<T>(ctx, hidden, d_out_rows, d_w2);
    detail::linear_input_grad_kernel<T>(ctx, d_out_rows, w2, d_hidden, false);
    swiglu_activation_backward<T>(ctx, activations.gate.view(), activations.up.view(), d_hidden,
                                  d_gate, d_up);
    detail::linear_weight_grad_kernel<T>(ctx, x_rows, d_gate, d_w1);
    detail::linear_weight_grad_kernel<T>(ctx, x_rows, d_up, d_w3);
    detail::linear_input_grad_kernel<T>(ctx, d_gate, w1, d_x_rows, false);
    detail::linear_input_grad_kernel<T>(ctx, d_up, w3, d_x_rows, true);
  }

 private:
  Workspace<T, cpu> gate_;
  Workspace<T, cpu> up_;
  Workspace<std::uint8_t, cpu> packed_scratch_;
  // Backward only, so inference never allocates them.
  Workspace<T, cpu> d_hidden_;
  Workspace<T, cpu> d_gate_;
  Workspace<T, cpu> d_up_;
};

}  // namespace llamablocks
