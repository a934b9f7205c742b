// Scalar math shared by the host and device backends, written once.
//   silu(x) = x · σ(x) = x / (1 + e^{-x})
//   rope_inv_freq(j) = θ^(-2j/d), the angular frequency of pair j of a d-wide head
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define LLAMABLOCKS_HOST_DEVICE __host__ __device__
#else
#define LLAMABLOCKS_HOST_DEVICE
#endif

namespace llamablocks {
namespace detail {

template <class T>
LLAMABLOCKS_HOST_DEVICE inline T silu(T x) {
  // For x -> -inf, exp(-x) overflows to inf and the quotient is -0, the correct limit.
  return x / (T(1) + exp(-x));
}

LLAMABLOCKS_HOST_DEVICE inline double rope_inv_freq(double rope_theta, long long pair,
                                                    long long head_dim) {
  return pow(rope_theta, -2.0 * static_cast<double>(pair) / static_cast<double>(head_dim));
}

}  // namespace detail
}  // namespace llamablocks
