// Linear on the cpu backend: y = x · Wᵀ through detail::project: Eigen GEMM / threaded GEMV for a
// T weight, packed_matmul for packed f16 / bf16 / Q8_0 rows (Parameter::assign_packed).
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/packed_matmul.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/modules/linear.hpp"

namespace llamablocks {

template <class T>
class Linear<cpu, T> {
 public:
  /// \param in_features  width of the input's last dimension.
  /// \param out_features width of the output's last dimension (the vocabulary for an output head).
  Linear(index_t in_features, index_t out_features)
      : weight_("Linear.weight", {checked("out_features", out_features),
                                  checked("in_features", in_features)}) {
    detail::check_cpu_scalar<T>();
  }

  index_t in_features() const { return weight_.shape()[1]; }
  index_t out_features() const { return weight_.shape()[0]; }
  Parameter<T, 2, cpu>& weight() { return weight_; }
  const Parameter<T, 2, cpu>& weight() const { return weight_; }

  /// x: [batch, tokens, in_features] -> out: [batch, tokens, out_features]; no overlap allowed.
  /// Not safe to call concurrently on one Linear: the scratch of packed weights is shared.
  void forward(const Context<cpu>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out) const {
    const char* where = "Linear::forward";
    detail::require<shape_error>(x.shape(2) == in_features(), where, ": x has shape ",
                                 detail::format_shape(x.shape()),
                                 ", its last dimension must be in_features = ", in_features());
    detail::expect_shape(where, "x", x, x.shape());
    detail::expect_shape(where, "out", out, {x.shape(0), x.shape(1), out_features()});
    detail::expect_disjoint(where, "x", x, "out", out);
    const index_t rows = x.shape(0) * x.shape(1);
    detail::project<T>(ctx, reshape<2>(x, {rows, in_features()}), weight_,
                       reshape<2>(out, {rows, out_features()}), packed_scratch_);
  }

 private:
  static index_t checked(const char* name, index_t value) {
    detail::require<config_error>(value > 0, "Linear: ", name, " must be > 0, got ", value);
    return value;
  }

  Parameter<T, 2, cpu> weight_;
  mutable Workspace<std::uint8_t, cpu> packed_scratch_;
};

}  // namespace llamablocks
