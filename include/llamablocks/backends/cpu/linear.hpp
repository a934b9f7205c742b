// Linear on the cpu backend: y = x · Wᵀ through detail::project: Eigen GEMM / threaded GEMV for a
// T weight, packed_matmul for packed f16 / bf16 / Q8_0 rows (Parameter::assign_packed).
// Training: the forward with Activations keeps x; backward gives d_x = d_y · W and adds
// d_yᵀ · x to weight().grad() (detail::linear_*_grad_kernel in eigen.hpp). Training needs T weights.
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/backends/cpu/packed_matmul.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/saved_tensor.hpp"
#include "llamablocks/modules/linear.hpp"

#include <algorithm>

namespace llamablocks {

template <class T>
class Linear<cpu, T> {
 public:
  /// \param in_features  width of the input's last dimension.
  /// \param out_features width of the output's last dimension (the vocabulary for an output head).
  Linear(index_t in_features, index_t out_features)
      : weight_("Linear.weight", {detail::check_positive("Linear", "out_features", out_features),
                                  detail::check_positive("Linear", "in_features", in_features)}) {
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
    detail::check_projection_io("Linear::forward", "in_features", in_features(), out_features(),
                                x, out);
    const index_t rows = x.shape(0) * x.shape(1);
    detail::project<T>(ctx, reshape<2>(x, {rows, in_features()}), weight_,
                       reshape<2>(out, {rows, out_features()}), packed_scratch_);
  }

  /// What the training forward keeps for backward, owned by the caller (one per call site).
  struct Activations {
    detail::SavedTensor<T, 3, cpu> x;  // [batch, tokens, in_features]
  };

  /// Allocates weight().grad() (training only).
  void enable_grad() { weight_.enable_grad(); }
  void zero_grad() { weight_.zero_grad(); }

  /// Training forward: the same output as forward(), and x kept in `activations`.
  void forward(const Context<cpu>& ctx, const TensorView<const T, 3>& x,
               const TensorView<T, 3>& out, Activations& activations) const {
    detail::check_projection_io("Linear::forward", "in_features", in_features(), out_features(),
                                x, out);
    const auto saved_x = activations.x.prepare(x.shape());
    std::copy_n(x.data(), x.size(), saved_x.data());
    forward(ctx, x, out);
  }

  /// d_out: [batch, tokens, out_features] -> d_x = d_out · W: [batch, tokens, in_features]
  /// (written), and weight().grad() += d_outᵀ · x (accumulated). Needs enable_grad() and a training
  /// forward into `activations`; throws before writing anything otherwise.
  void backward(const Context<cpu>& ctx, const Activations& activations,
                const TensorView<const T, 3>& d_out, const TensorView<T, 3>& d_x) {
    const char* where = "Linear::backward";
    const Shape<3> x_shape =
        detail::check_linear_backward(where, activations, in_features(), out_features(), d_out, d_x);
    const TensorView<const T, 2> weight = weight_.view();
    const TensorView<T, 2> d_weight = weight_.grad();
    const index_t rows = x_shape[0] * x_shape[1];
    const auto d_out_rows = reshape<2>(d_out, {rows, out_features()});
    detail::linear_weight_grad_kernel<T>(
        ctx, reshape<2>(activations.x.view(), {rows, in_features()}), d_out_rows, d_weight);
    detail::linear_input_grad_kernel<T>(ctx, d_out_rows, weight,
                                        reshape<2>(d_x, {rows, in_features()}), false);
  }

 private:
  Parameter<T, 2, cpu> weight_;
  mutable Workspace<std::uint8_t, cpu> packed_scratch_;
};

}  // namespace llamablocks
