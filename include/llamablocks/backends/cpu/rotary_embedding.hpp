// RotaryEmbedding on the cpu backend. cos/sin tables [max_seq_len, head_dim/2] are computed once in
// double from the (scaled) frequencies; the elementwise formulation reads them, the two reference
// formulations recompute the angles in double.
// Training: RoPE is linear and has no parameters, so backward needs only the positions: R_m is
// orthogonal and the gradient is rotated by −m·θ_j (backward). Nothing is saved.
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/modules/rotary_embedding.hpp"

#include <cmath>
#include <complex>
#include <vector>

namespace llamablocks {

template <class T>
class RotaryEmbedding<cpu, T> {
 public:
  /// \param head_dim    width of one head; must be even.
  /// \param max_seq_len positions covered by the tables.
  /// \param rope_theta  frequency base: 10000 (LLaMA-2), 500000 (LLaMA-3), 1e6 (Code Llama).
  /// \param layout      pair layout the q/k weights were trained with.
  /// \param scaling     frequency scaling (LLaMA-3.1: RopeScaling::llama3(8), 3.2: llama3(32)).
  RotaryEmbedding(index_t head_dim, index_t max_seq_len, double rope_theta, RopeLayout layout,
                  RopeScaling scaling = {})
      : head_dim_(head_dim),
        layout_(layout),
        inv_freq_((detail::check_rope_arguments(head_dim, max_seq_len, rope_theta, scaling),
                   detail::rope_frequencies(head_dim, rope_theta, scaling))),
        cos_({max_seq_len, head_dim / 2}),
        sin_({max_seq_len, head_dim / 2}) {
    detail::check_cpu_scalar<T>();
    auto cos_table = cos_.view();
    auto sin_table = sin_.view();
    for (index_t position = 0; position < max_seq_len; ++position)
      for (index_t j = 0; j < head_dim / 2; ++j) {
        const double angle = static_cast<double>(position) * inv_freq_[static_cast<std::size_t>(j)];
        cos_table(position, j) = static_cast<T>(std::cos(angle));
        sin_table(position, j) = static_cast<T>(std::sin(angle));
      }
  }

  explicit RotaryEmbedding(const ModelConfig& config)
      : RotaryEmbedding(config.head_dim, config.max_seq_len, config.rope_theta, config.rope_layout,
                        config.rope_scaling) {}

  index_t head_dim() const { return head_dim_; }
  index_t max_seq_len() const { return cos_.shape(0); }
  RopeLayout layout() const { return layout_; }
  /// θ_j after scaling, j = 0 .. head_dim/2 − 1.
  const std::vector<double>& inv_freq() const { return inv_freq_; }

  /// Rotates x: [batch, tokens, heads, head_dim] in place; token t is at position start_pos + t.
  template <class Formulation = rope::elementwise>
  void apply(const Context<cpu>& ctx, const TensorView<T, 4>& x, index_t start_pos,
             Formulation = {}) const {
    check_rows("RotaryEmbedding::apply", "x", x, start_pos);
    const index_t tokens = x.shape(1);
    const index_t heads = x.shape(2);
    detail::parallel_for(ctx, x.shape(0) * tokens, [&](index_t row) {
      const index_t position = start_pos + row % tokens;
      T* row_data = x.data() + row * heads * head_dim_;
      rotate_row(row_data, heads, position, Formulation{});
    });
  }

  /// Backward of apply(): d_x = R_mᵀ · d_out, the rotation of every pair by −m·θ_j (same layout).
  /// grad: [batch, tokens, heads, head_dim] holds d_out and is overwritten by d_x; token t is at
  /// position start_pos + t, as in the forward.
  void backward(const Context<cpu>& ctx, const TensorView<T, 4>& grad, index_t start_pos) const {
    check_rows("RotaryEmbedding::backward", "grad", grad, start_pos);
    const index_t tokens = grad.shape(1);
    const index_t heads = grad.shape(2);
    detail::parallel_for(ctx, grad.shape(0) * tokens, [&](index_t row) {
      const index_t position = start_pos + row % tokens;
      unrotate_row(grad.data() + row * heads * head_dim_, heads, position);
    });
  }

 private:
  void check_rows(const char* where, const char* name, const TensorView<T, 4>& x,
                  index_t start_pos) const {
    detail::check_rope_rows(where, name, x, start_pos, head_dim_, max_seq_len());
  }

  // row: [heads, head_dim] of one token; each pair (a, b) turned by the angle of its frequency,
  // (a cos − b sin, a sin + b cos), or by minus that angle when Inverse (the transpose: backward).
  template <bool Inverse>
  void turn_row(T* row, index_t heads, index_t position) const {
    const T* cos_row = cos_.data() + position * (head_dim_ / 2);
    const T* sin_row = sin_.data() + position * (head_dim_ / 2);
    for (index_t h = 0; h < heads; ++h) {
      T* head = row + h * head_dim_;
      for (index_t j = 0; j < head_dim_ / 2; ++j) {
        const auto pair = detail::rope_pair(layout_, j, head_dim_);
        const T a = head[pair.first];
        const T b = head[pair.second];
        const T sine = Inverse ? -sin_row[j] : sin_row[j];
        head[pair.first] = a * cos_row[j] - b * sine;
        head[pair.second] = a * sine + b * cos_row[j];
      }
    }
  }

  // row: [heads, head_dim] of one token; the transpose of rotate_row(..., rope::elementwise).
  void unrotate_row(T* row, index_t heads, index_t position) const {
    turn_row<true>(row, heads, position);
  }

  // row: [heads, head_dim] of one token.
  void rotate_row(T* row, index_t heads, index_t position, rope::elementwise) const {
    turn_row<false>(row, heads, position);
  }

  void rotate_row(T* row, index_t heads, index_t position, rope::rotation_matrix) const {
    // R_m: identity outside the 2×2 rotation block of each pair.
    detail::RowMatrix<double> rotation = detail::RowMatrix<double>::Zero(head_dim_, head_dim_);
    for (index_t j = 0; j < head_dim_ / 2; ++j) {
      const auto pair = detail::rope_pair(layout_, j, head_dim_);
      const double angle = static_cast<double>(position) * inv_freq_[static_cast<std::size_t>(j)];
      rotation(pair.first, pair.first) = std::cos(angle);
      rotation(pair.first, pair.second) = -std::sin(angle);
      rotation(pair.second, pair.first) = std::sin(angle);
      rotation(pair.second, pair.second) = std::cos(angle);
    }
    for (index_t h = 0; h < heads; ++h) {
      Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>> head(row + h * head_dim_, head_dim_);
      head = (rotation * head.template cast<double>()).template cast<T>();
    }
  }

  void rotate_row(T* row, index_t heads, index_t position, rope::complex_multiply) const {
    for (index_t h = 0; h < heads; ++h) {
      T* head = row + h * head_dim_;
      for (index_t j = 0; j < head_dim_ / 2; ++j) {
        const auto pair = detail::rope_pair(layout_, j, head_dim_);
        const std::complex<double> rotated =
            std::complex<double>(head[pair.first], head[pair.second]) *
            std::polar(1.0, static_cast<double>(position) * inv_freq_[static_cast<std::size_t>(j)]);
        head[pair.first] = static_cast<T>(rotated.real());
        head[pair.second] = static_cast<T>(rotated.imag());
      }
    }
  }

  index_t head_dim_;
  RopeLayout layout_;
  std::vector<double> inv_freq_;
  Tensor<T, 2, cpu> cos_;  // [max_seq_len, head_dim/2]
  Tensor<T, 2, cpu> sin_;  // [max_seq_len, head_dim/2]
};

}  // namespace llamablocks
