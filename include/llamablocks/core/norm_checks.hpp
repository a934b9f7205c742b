// Argument checks shared by the normalization modules (RMSNorm, LayerNorm) of every backend.
#pragma once

#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"

#include <cmath>

namespace llamablocks {
namespace detail {

inline void check_norm_arguments(const char* module, index_t dim, double norm_eps) {
  require<config_error>(dim > 0, module, ": dim must be > 0, got ", dim);
  require<config_error>(std::isfinite(norm_eps) && norm_eps > 0, module,
                        ": norm_eps must be > 0 and finite, got ", norm_eps);
}

/// x and out: [batch, tokens, dim], contiguous; out is x itself or disjoint from it.
template <class T>
void check_norm_io(const char* where, index_t dim, const TensorView<const T, 3>& x,
                   const TensorView<T, 3>& out) {
  require<shape_error>(x.shape(2) == dim, where, ": x has shape ", format_shape(x.shape()),
                       ", its last dimension must be dim = ", dim);
  expect_shape(where, "x", x, x.shape());
  expect_shape(where, "out", out, x.shape());
  if (static_cast<const void*>(out.data()) != static_cast<const void*>(x.data()))
    expect_disjoint(where, "x", x, "out", out);
}

}  // namespace detail
}  // namespace llamablocks
