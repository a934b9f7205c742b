// Backend tags and the per-backend execution context.
//
// A module is a template on a backend tag: RMSNorm<cpu> runs on the host through Eigen,
// RMSNorm<cuda> on an NVIDIA GPU. Tags are empty types; what a backend needs at run time (thread
// count, CUDA stream, cuBLAS handle) lives in Context<Backend>, which every forward call takes as its
// first argument, so there is no hidden global state.
#pragma once

#include <type_traits>

namespace llamablocks {

/// Host backend: Eigen for matrix products, OpenMP for threading.
struct cpu {};

/// NVIDIA GPU backend (cuBLAS + kernels in backends/cuda). Available through llamablocks/cuda.cuh.
struct cuda {};

/// Static properties of a backend tag.
template <class Backend>
struct backend_traits;

template <>
struct backend_traits<cpu> {
  static constexpr const char* name = "cpu";
  /// Whether memory of this backend is directly addressable from host code.
  static constexpr bool host_accessible = true;
};

template <>
struct backend_traits<cuda> {
  static constexpr const char* name = "cuda";
  static constexpr bool host_accessible = false;
};

/// Run-time state of a backend (threads, streams, library handles). Specialized per backend.
template <class Backend>
class Context;

namespace detail {

/// A `false` that depends on a template parameter, for static_asserts in primary templates.
template <class...>
inline constexpr bool dependent_false = false;

}  // namespace detail
}  // namespace llamablocks
