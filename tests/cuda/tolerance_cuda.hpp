// The tolerance policy of the cuda tests, mirroring tests/support/tolerance.hpp without Catch2 (the
// cuda tests are plain executables so that they build wherever nvcc does).
//
// NMSE = Σ(a − b)² / Σb² (b the reference) under a per-type threshold; NaN or Inf anywhere fails,
// and a reference of norm zero fails too. The thresholds sit about two orders of magnitude above the
// storage type's own rounding error (float 2^-24, half 2^-11, bf16 2^-8 relative).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstddef>
#include <cstdio>

namespace llamablocks::test {

template <class T>
struct tolerance_cuda;
// nmse: one operation rounded to T once (RMSNorm, RoPE, a GEMM, the element-wise kernels).
// chain_nmse: modules that round intermediates to T on the way (attention: q, k after the GEMM
// and after RoPE, v, the context; SwiGLU: gate and up; LlamaBlock: all of them), compared with
// the cpu backend in float, which rounds none. An attention score of standard deviation σ moves by
// about σ·u·1.2 (u = 2^-11 half, 2^-8 bf16) through the rounding of q and k, which for σ ≈ 2 gives
// an output NMSE near 2e-6 (half) and 1e-4 (bf16): the thresholds leave a factor of about 10.
//
// Backward passes (test_cuda_backward): grad_nmse for the gradients of one operation computed in
// float and rounded to T once (RMSNorm, Linear, Embedding, cross-entropy: the same as nmse for the
// 2-byte types; 1e-9 for float, where cuBLAS and Eigen sum in different orders and RMSNorm's d_x
// subtracts two terms of similar size); grad_chain_nmse for modules whose backward rounds its
// intermediates to T (SwiGLU: gate, up, hidden, d_hidden, d_gate, d_up; attention: q, k, v, the
// context, d_context, d_q, d_k, d_v; LlamaBlock: all of them). dS = P ⊙ (dP − rowsum(dO ⊙ O))
// subtracts numbers of similar size, so the attention gradients are allowed about 7× the forward's
// chain threshold. These are estimates from the same rounding model as above: the backward test
// has not yet run on a GPU, and the first run should confirm or adjust them (never above 1e-2).
template <>
struct tolerance_cuda<float> {
  static constexpr double nmse = 1e-10;
  static constexpr double chain_nmse = 1e-10;
  static constexpr double grad_nmse = 1e-9;
  static constexpr double grad_chain_nmse = 1e-9;
  static constexpr const char* name = "float";
};
template <>
struct tolerance_cuda<__half> {
  static constexpr double nmse = 1e-5;
  static constexpr double chain_nmse = 3e-5;
  static constexpr double grad_nmse = 1e-5;
  static constexpr double grad_chain_nmse = 2e-4;
  static constexpr const char* name = "half";
};
template <>
struct tolerance_cuda<__nv_bfloat16> {
  static constexpr double nmse = 1e-4;
  static constexpr double chain_nmse = 1e-3;
  static constexpr double grad_nmse = 1e-4;
  static constexpr double grad_chain_nmse = 7e-3;
  static constexpr const char* name = "bf16";
};

struct Comparison {
  double nmse = 0;
  double max_abs_error = 0;
  double reference_norm = 0;
  bool finite = true;
};

/// actual and reference already widened to double.
inline Comparison compare(const double* actual, const double* reference, std::size_t count) {
  Comparison result;
  double error_sum = 0;
  double reference_sum = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const double a = actual[i];
    const double b = reference[i];
    if (!std::isfinite(a) || !std::isfinite(b)) result.finite = false;
    error_sum += (a - b) * (a - b);
    reference_sum += b * b;
    result.max_abs_error = std::fmax(result.max_abs_error, std::fabs(a - b));
  }
  result.reference_norm = std::sqrt(reference_sum);
  result.nmse = reference_sum > 0 ? error_sum / reference_sum : INFINITY;
  return result;
}

/// Prints one line and returns whether `actual` matches `reference` within `threshold`.
inline bool check_close(const char* what, const double* actual, const double* reference,
                        std::size_t count, double threshold) {
  const Comparison c = compare(actual, reference, count);
  // NaN compares false, so a NaN nmse fails here as well as through `finite`.
  const bool pass = c.finite && c.reference_norm > 0 && c.nmse <= threshold;
  std::printf("%s %s: nmse %.3g (threshold %.0e), max |error| %.3g, |reference| %.4g, %zu values%s\n",
              pass ? "ok  " : "FAIL", what, c.nmse, threshold, c.max_abs_error, c.reference_norm,
              count, c.finite ? "" : ", NOT FINITE");
  return pass;
}

}  // namespace llamablocks::test
