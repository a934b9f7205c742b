// RMSNorm on the cpu backend: one row of [batch·tokens, dim] per task,
//   out = x · (1 / sqrt(Σx²/dim + eps)) · γ
// The sum of squares is accumulated in double, so the result does not depend on the row length.
// Training: the forward with Activations keeps x; rms_norm_backward recomputes 1/rms from it.
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/norm_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/saved_tensor.hpp"
#include "llamablocks/modules/rms_norm.hpp"

#include <algorithm>
#include <cmath>

namespace llamablocks {

/// out = x / sqrt(mean(x²) + eps) · weight, row by row.
/// x, out: [rows, dim]; weight: [dim]. out may be x itself.
template <class T>
void rms_norm(const Context<cpu>& ctx, const TensorView<const T, 2>& x,
              const TensorView<const T, 1>& weight, double norm_eps, const TensorView<T, 2>& out) {
  detail::check_cpu_scalar<T>();
  const index_t dim = x.shape(1);
  detail::expect_shape("rms_norm", "weight", weight, {dim});
  detail::expect_shape("rms_norm", "out", out, x.shape());
  const auto x_rows = detail::as_matrix(x);
  auto out_rows = detail::as_matrix(out);
  const auto gain = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>(weight.data(), dim);
  detail::parallel_for(ctx, x.shape(0), [&](index_t row) {
    const double sum_of_squares = x_rows.row(row).template cast<double>().squaredNorm();
    const T inv_rms = static_cast<T>(1.0 / std::sqrt(sum_of_squares / static_cast<double>(dim) + norm_eps));
    out_rows.row(row).array() = x_rows.row(row).array() * inv_rms * gain;
  });
}

/// Backward of out = x · r · γ, r = 1 / sqrt(mean(x²) + eps), row by row, with g = d_out ⊙ γ:
///   d_x       = r · g − r³ · x · (Σⱼ gⱼ xⱼ) / dim          (written)
///   d_weight += Σ_rows d_out ⊙ x · r                        (accumulated)
/// x, d_out, d_x: [rows, dim]; weight, d_weight: [dim]. d_x may be d_out itself.
template <class T>
void rms_norm_backward(const Context<cpu>& ctx, const TensorView<const T, 2>& x,
                       const TensorView<const T, 1>& weight, double norm_eps,
                       const TensorView<const T, 2>& d_out, const TensorView<T, 2>& d_x,
                       const TensorView<T, 1>& d_weight) {
  detail::check_cpu_scalar<T>();
  const char* where = "rms_norm_backward";
  const index_t dim = x.shape(1);
  detail::expect_shape(where, "x", x, x.shape());
  detail::expect_shape(where, "weight", weight, {dim});
  detail::expect_shape(where, "d_out", d_out, x.shape());
  detail::expect_shape(where, "d_x", d_x, x.shape());
  detail::expect_shape(where, "d_weight", d_weight, {dim});
  const auto x_rows = detail::as_matrix(x);
  const auto d_out_rows = detail::as_matrix(d_out);
  auto d_x_rows = detail::as_matrix(d_x);
  const auto gain = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>(weight.data(), dim);
  auto d_gain = Eigen::Map<Eigen::Array<T, 1, Eigen::Dynamic>>(d_weight.data(), dim);
  const auto inv_rms_of = [&](index_t row) {
    const double sum_of_squares = x_rows.row(row).template cast<double>().squaredNorm();
    return 1.0 / std::sqrt(sum_of_squares / static_cast<double>(dim) + norm_eps);
  };
  // d_weight first and serially: every row adds to all of it, and d_x may overwrite d_out.
  for (index_t row = 0; row < x.shape(0); ++row)
    d_gain += d_out_rows.row(row).array() * x_rows.row(row).array() * static_cast<T>(inv_rms_of(row));
  detail::parallel_for(ctx, x.shape(0), [&](index_t row) {
    const double inv_rms = inv_rms_of(row);
    const double g_dot_x = (d_out_rows.row(row).array().template cast<double>() *
                            gain.template cast<double>() *
                            x_rows.row(row).array().template cast<double>())
                               .sum();
    const T g_scale = static_cast<T>(inv_rms);
    const T x_scale =
        static_cast<T>(inv_rms * inv_rms * inv_rms * g_dot_x / static_cast<double>(dim));
    d_x_rows.row(row).array() =
        d_out_rows.row(row).array() * gain * g_scale - x_rows.row(row).array() * x_scale;
  });
}

template <class T>
class RMSNorm<cpu, T> {
 public:
  /// \param dim      width of the normalized (last) dimension.
  /// \param norm_eps added to the mean square; > 0 (LLaMA-2/3: 1e-5).
  RMSNorm(index_t dim, double norm_eps)
      : dim_(checked(dim, norm_eps)), norm_eps_(norm_eps), weight_("RMSNorm.weight", {dim}) {
    std::fill_n(weight_.view().data(), dim, T(1));
  }

  index_t dim() const { return dim_; }
  double norm_eps() const { return norm_eps_; }
  Parameter<T, 1, cpu>& weight() { return weight_; }
  const Parameter<T, 1, cpu>& weight() const { return weight_; }

  /// x, out: [batch, tokens, dim]; out may be x itself (in place).
  void forward(const Context<cpu>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out) const {
    detail::check_norm_io("RMSNorm::forward", dim_, x, out);
    const index_t rows = x.shape(0) * x.shape(1);
    rms_norm<T>(ctx, reshape<2>(x, {rows, dim_}), weight_.view(), norm_eps_,
                reshape<2>(out, {rows, dim_}));
  }

  /// What the training forward keeps for backward, owned by the caller (one per call site).
  struct Activations {
    detail::SavedTensor<T, 3, cpu> x;  // [batch, tokens, dim]
  };

  /// Allocates weight().grad() (training only).
  void enable_grad() { weight_.enable_grad(); }
  void zero_grad() { weight_.zero_grad(); }

  /// Training forward: the same output as forward() (out may be x), and x kept in `activations`.
  void forward(const Context<cpu>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out, Activations& activations) const {
    detail::check_norm_io("RMSNorm::forward", dim_, x, out);
    const auto saved_x = activations.x.prepare(x.shape());
    std::copy_n(x.data(), x.size(), saved_x.data());
    forward(ctx, x, out);
  }

  /// d_out, d_x: [batch, tokens, dim]; d_x is written (it may be d_out itself) and
  /// weight().grad() accumulated, as rms_norm_backward says. Needs enable_grad() and a training
  /// forward into `activations`; throws before writing anything otherwise.
  void backward(const Context<cpu>& ctx, const Activations& activations,
                const TensorView<const T, 3>& d_out, const TensorView<T, 3>& d_x) {
    const Shape<3> x_shape = detail::check_rms_norm_backward("RMSNorm::backward", activations, dim_, d_out, d_x);
    const TensorView<T, 1> d_weight = weight_.grad();
    const index_t rows = x_shape[0] * x_shape[1];
    rms_norm_backward<T>(ctx, reshape<2>(activations.x.view(), {rows, dim_}), weight_.view(),
                         norm_eps_, reshape<2>(d_out, {rows, dim_}), reshape<2>(d_x, {rows, dim_}),
                         d_weight);
  }

 private:
  static index_t checked(index_t dim, double norm_eps) {
    detail::check_norm_arguments("RMSNorm", dim, norm_eps);
    return dim;
  }

  index_t dim_;
  double norm_eps_;
  Parameter<T, 1, cpu> weight_;
};

}  // namespace llamablocks
