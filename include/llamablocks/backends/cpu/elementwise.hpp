// Element-wise kernels of the cpu backend used by generic compositions (LlamaBlock):
//   add_inplace:  x += y     x, y: any shape, contiguous, equal shapes
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/core/tensor.hpp"

namespace llamablocks {

/// x += y (the residual connection). Both contiguous and of equal shape.
template <class T, int Rank>
void add_inplace(const Context<cpu>& ctx, const TensorView<T, Rank>& x,
                 const TensorView<const T, Rank>& y) {
  detail::check_cpu_scalar<T>();
  detail::expect_shape("add_inplace", "y", y, x.shape());
  detail::expect_shape("add_inplace", "x", x, x.shape());
  // Chunks of 16 Ki elements: large enough to amortize the loop, small enough to spread.
  constexpr index_t chunk = 16384;
  const index_t count = x.size();
  detail::parallel_for(ctx, (count + chunk - 1) / chunk, [&](index_t c) {
    const index_t first = c * chunk;
    const index_t n = std::min(chunk, count - first);
    Eigen::Map<Eigen::Array<T, Eigen::Dynamic, 1>>(x.data() + first, n) +=
        Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>(y.data() + first, n);
  });
}

}  // namespace llamablocks
