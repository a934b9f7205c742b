// Context<cpu>: the thread count used by llamablocks' OpenMP loops and by Eigen's matrix products.
//
// One pool: our kernels parallelize with OpenMP and Eigen's GEMM uses OpenMP too, never both at
// once (Eigen runs single-threaded inside our parallel regions), so the machine is never
// oversubscribed. Without OpenMP everything runs on the calling thread.
#pragma once

#include "llamablocks/core/backend.hpp"
#include "llamablocks/core/error.hpp"

#include <Eigen/Core>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace llamablocks {

template <>
class Context<cpu> {
 public:
  /// Uses every hardware thread OpenMP reports (or one without OpenMP).
  Context() : Context(default_num_threads()) {}

  /// \param num_threads threads for kernels and Eigen products; must be >= 1.
  explicit Context(int num_threads) { set_num_threads(num_threads); }

  int num_threads() const { return num_threads_; }

  /// Changes the thread count. Eigen's setting is process-wide, so it is applied here as well.
  void set_num_threads(int num_threads) {
    detail::require<config_error>(num_threads >= 1, "Context<cpu>: num_threads must be >= 1, got ",
                                  num_threads);
    num_threads_ = num_threads;
    Eigen::setNbThreads(num_threads);
  }

  /// Whether a prefill-sized product with bf16 weights may round its activations to bfloat16 and
  /// multiply bf16 pairs, on AMX-BF16 tiles or with AVX512_BF16's vdpbf16ps, where the CPU has
  /// them (packed_matmul, gemm_amx.hpp, gemm_bf16.hpp). Off by
  /// default: the bf16 path otherwise multiplies float32 activations exactly, and with this on a
  /// prompt's outputs differ from the token-by-token decode's by the rounding of x to 8 bits of
  /// mantissa. Context<cuda>::set_tf32 is the same kind of choice.
  bool bf16_activations() const { return bf16_activations_; }
  void set_bf16_activations(bool allowed) { bf16_activations_ = allowed; }

  static int default_num_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
  }

 private:
  int num_threads_ = 1;
  bool bf16_activations_ = false;
};

namespace detail {

/// Index of the calling thread inside a parallel_for (0 outside one).
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/// Runs body(i) for i in [0, count), split over the context's threads in contiguous chunks.
template <class Body>
void parallel_for(const Context<cpu>& ctx, long long count, Body&& body) {
#ifdef _OPENMP
  if (ctx.num_threads() > 1 && count > 1) {
#pragma omp parallel for schedule(static) num_threads(ctx.num_threads())
    for (long long i = 0; i < count; ++i) body(i);
    return;
  }
#else
  (void)ctx;
#endif
  for (long long i = 0; i < count; ++i) body(i);
}

}  // namespace detail
}  // namespace llamablocks
