// RMSNorm on the cpu backend: one row of [batch·tokens, dim] per task,
//   out = x · (1 / sqrt(Σx²/dim + eps)) · γ
// The sum of squares is accumulated in double, so the result does not depend on the row length.
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/core/norm_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/modules/rms_norm.hpp"

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
