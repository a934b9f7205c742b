// Sinusoidal positional encoding on the cpu backend: a [max_seq_len, dim] table computed in double
// once, added row by row.
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/modules/positional_encoding.hpp"

#include <cmath>

namespace llamablocks {

template <class T>
class SinusoidalPositionalEncoding<cpu, T> {
 public:
  /// \param dim         model width; must be even (sin and cos alternate).
  /// \param max_seq_len number of positions in the table.
  /// \param base        wavelength base (10000 in the original Transformer).
  SinusoidalPositionalEncoding(index_t dim, index_t max_seq_len, double base = 10000.0)
      : table_(checked_shape(dim, max_seq_len, base)) {
    detail::check_cpu_scalar<T>();
    auto table = table_.view();
    for (index_t position = 0; position < max_seq_len; ++position)
      for (index_t i = 0; i < dim / 2; ++i) {
        const double angle = static_cast<double>(position) *
                             std::pow(base, -2.0 * static_cast<double>(i) / static_cast<double>(dim));
        table(position, 2 * i) = static_cast<T>(std::sin(angle));
        table(position, 2 * i + 1) = static_cast<T>(std::cos(angle));
      }
  }

  index_t dim() const { return table_.shape(1); }
  index_t max_seq_len() const { return table_.shape(0); }
  /// [max_seq_len, dim]
  TensorView<const T, 2> table() const { return table_.cview(); }

  /// x: [batch, tokens, dim]; x[b, t] += PE[start_pos + t].
  void apply(const Context<cpu>& ctx, const TensorView<T, 3>& x, index_t start_pos) const {
    const char* where = "SinusoidalPositionalEncoding::apply";
    detail::expect_shape(where, "x", x, {x.shape(0), x.shape(1), dim()});
    detail::expect_positions(where, start_pos, x.shape(1), max_seq_len());
    const index_t tokens = x.shape(1);
    detail::parallel_for(ctx, x.shape(0) * tokens, [&](index_t row) {
      const index_t position = start_pos + row % tokens;
      Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(x.data() + row * dim(), dim()) +=
          Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(table_.data() + position * dim(),
                                                               dim());
    });
  }

 private:
  static Shape<2> checked_shape(index_t dim, index_t max_seq_len, double base) {
    const char* module = "SinusoidalPositionalEncoding";
    detail::require<config_error>(dim > 0 && dim % 2 == 0, module,
                                  ": dim must be positive and even, got ", dim);
    detail::require<config_error>(max_seq_len > 0, module, ": max_seq_len must be > 0, got ",
                                  max_seq_len);
    detail::require<config_error>(std::isfinite(base) && base > 1, module,
                                  ": base must be > 1, got ", base);
    return {max_seq_len, dim};
  }

  Tensor<T, 2, cpu> table_;
};

}  // namespace llamablocks
