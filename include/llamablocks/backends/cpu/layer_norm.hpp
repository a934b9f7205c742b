// LayerNorm on the cpu backend: one row of [batch·tokens, dim] per task, statistics in double,
//   out = (x − mean) / sqrt(var + eps) · γ + β      (biased variance, as PyTorch)
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/core/norm_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/modules/layer_norm.hpp"

#include <cmath>

namespace llamablocks {

/// x, out: [rows, dim]; weight, bias: [dim]. out may be x itself.
template <class T>
void layer_norm(const Context<cpu>& ctx, const TensorView<const T, 2>& x,
                const TensorView<const T, 1>& weight, const TensorView<const T, 1>& bias,
                double norm_eps, const TensorView<T, 2>& out) {
  detail::check_cpu_scalar<T>();
  const index_t dim = x.shape(1);
  detail::expect_shape("layer_norm", "weight", weight, {dim});
  detail::expect_shape("layer_norm", "bias", bias, {dim});
  detail::expect_shape("layer_norm", "out", out, x.shape());
  const auto x_rows = detail::as_matrix(x);
  auto out_rows = detail::as_matrix(out);
  const auto gain = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>(weight.data(), dim);
  const auto shift = Eigen::Map<const Eigen::Array<T, 1, Eigen::Dynamic>>(bias.data(), dim);
  detail::parallel_for(ctx, x.shape(0), [&](index_t row) {
    const auto values = x_rows.row(row).array().template cast<double>();
    const double mean = values.mean();
    const double variance = (values - mean).square().mean();
    const double inv_std = 1.0 / std::sqrt(variance + norm_eps);
    out_rows.row(row).array() =
        ((values - mean) * inv_std).template cast<T>() * gain + shift;
  });
}

template <class T>
class LayerNorm<cpu, T> {
 public:
  /// \param dim      width of the normalized (last) dimension.
  /// \param norm_eps added to the variance; > 0.
  LayerNorm(index_t dim, double norm_eps)
      : dim_(checked(dim, norm_eps)),
        norm_eps_(norm_eps),
        weight_("LayerNorm.weight", {dim}),
        bias_("LayerNorm.bias", {dim}) {
    std::fill_n(weight_.view().data(), dim, T(1));
  }

  index_t dim() const { return dim_; }
  double norm_eps() const { return norm_eps_; }
  Parameter<T, 1, cpu>& weight() { return weight_; }
  const Parameter<T, 1, cpu>& weight() const { return weight_; }
  Parameter<T, 1, cpu>& bias() { return bias_; }
  const Parameter<T, 1, cpu>& bias() const { return bias_; }

  /// x, out: [batch, tokens, dim]; out may be x itself (in place).
  void forward(const Context<cpu>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out) const {
    detail::check_norm_io("LayerNorm::forward", dim_, x, out);
    const index_t rows = x.shape(0) * x.shape(1);
    layer_norm<T>(ctx, reshape<2>(x, {rows, dim_}), weight_.view(), bias_.view(), norm_eps_,
                  reshape<2>(out, {rows, dim_}));
  }

 private:
  static index_t checked(index_t dim, double norm_eps) {
    detail::check_norm_arguments("LayerNorm", dim, norm_eps);
    return dim;
  }

  index_t dim_;
  double norm_eps_;
  Parameter<T, 1, cpu> weight_;
  Parameter<T, 1, cpu> bias_;
};

}  // namespace llamablocks
