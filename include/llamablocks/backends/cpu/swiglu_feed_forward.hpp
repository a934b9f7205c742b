// SwiGLUFeedForward on the cpu backend:
//   gate = x W1ᵀ, up = x W3ᵀ  [rows, ffn_hidden_dim];  hidden = silu(gate) ⊙ up;  out = hidden W2ᵀ
// gate and up live in grow-only workspaces; hidden overwrites gate.
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/backends/cpu/packed_matmul.hpp"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/math.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/workspace.hpp"
#include "llamablocks/modules/swiglu_feed_forward.hpp"

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

template <class T>
class SwiGLUFeedForward<cpu, T> {
 public:
  /// \param dim            width of the residual stream.
  /// \param ffn_hidden_dim inner width (llama_ffn_hidden_dim gives Meta's rule).
  SwiGLUFeedForward(index_t dim, index_t ffn_hidden_dim)
      : w1_("feed_forward.w1", {checked("ffn_hidden_dim", ffn_hidden_dim), checked("dim", dim)}),
        w2_("feed_forward.w2", {dim, ffn_hidden_dim}),
        w3_("feed_forward.w3", {ffn_hidden_dim, dim}) {
    detail::check_cpu_scalar<T>();
  }

  explicit SwiGLUFeedForward(const ModelConfig& config)
      : SwiGLUFeedForward(config.dim, config.ffn_hidden_dim) {}

  index_t dim() const { return w1_.shape()[1]; }
  index_t ffn_hidden_dim() const { return w1_.shape()[0]; }
  Parameter<T, 2, cpu>& w1() { return w1_; }
  Parameter<T, 2, cpu>& w2() { return w2_; }
  Parameter<T, 2, cpu>& w3() { return w3_; }
  const Parameter<T, 2, cpu>& w1() const { return w1_; }
  const Parameter<T, 2, cpu>& w2() const { return w2_; }
  const Parameter<T, 2, cpu>& w3() const { return w3_; }

  /// x, out: [batch, tokens, dim]; out must not overlap x.
  void forward(const Context<cpu>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out) {
    const char* where = "SwiGLUFeedForward::forward";
    detail::expect_shape(where, "x", x, {x.shape(0), x.shape(1), dim()});
    detail::expect_shape(where, "out", out, x.shape());
    detail::expect_disjoint(where, "x", x, "out", out);
    const index_t rows = x.shape(0) * x.shape(1);
    const auto x_rows = reshape<2>(x, {rows, dim()});
    const auto gate = gate_.template get<2>({rows, ffn_hidden_dim()});
    const auto up = up_.template get<2>({rows, ffn_hidden_dim()});
    detail::project<T>(ctx, x_rows, w1_, gate, packed_scratch_);
    detail::project<T>(ctx, x_rows, w3_, up, packed_scratch_);
    swiglu_activation<T>(ctx, gate, up);
    detail::project<T>(ctx, gate, w2_, reshape<2>(out, {rows, dim()}), packed_scratch_);
  }

 private:
  static index_t checked(const char* name, index_t value) {
    detail::require<config_error>(value > 0, "SwiGLUFeedForward: ", name, " must be > 0, got ",
                                  value);
    return value;
  }

  Parameter<T, 2, cpu> w1_;
  Parameter<T, 2, cpu> w2_;
  Parameter<T, 2, cpu> w3_;
  Workspace<T, cpu> gate_;
  Workspace<T, cpu> up_;
  Workspace<std::uint8_t, cpu> packed_scratch_;
};

}  // namespace llamablocks
