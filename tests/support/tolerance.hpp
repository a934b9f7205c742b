// The one tolerance policy of the test suite.
//
// Outputs are compared by normalized mean squared error, NMSE = Σ(a − b)² / Σb² (b the reference),
// as llama.cpp's test-backend-ops does, under a per-type threshold; NaN or Inf anywhere fails, and a
// reference whose norm is zero fails too (a test comparing zeros with zeros proves nothing).
// Element-wise checks use |a − b| <= abs + rel·|b|.
// With LLAMABLOCKS_TEST_REPORT=<file> in the environment, every require_close appends
// "label<TAB>nmse<TAB>max_abs_error<TAB>threshold" to that file, so the largest errors of a whole
// run can be summarized (scripts/summarize-test-errors.py).
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

namespace llamablocks::test {

/// NMSE thresholds: float32 kernels against a double reference.
template <class T>
struct tolerance;
template <>
struct tolerance<float> {
  static constexpr double nmse = 1e-10;         // ~1e-5 relative RMS error
  static constexpr double golden_nmse = 1e-10;  // against PyTorch float64 golden files
  static constexpr double rope_forms = 1e-6;    // max |difference| between RoPE formulations
};
template <>
struct tolerance<double> {
  static constexpr double nmse = 1e-24;
  static constexpr double golden_nmse = 1e-12;  // golden files are stored as float32
  static constexpr double rope_forms = 1e-12;
};

struct Comparison {
  double nmse = 0;
  double max_abs_error = 0;
  double reference_norm = 0;
  bool finite = true;
};

template <class A, class B>
Comparison compare(const A* actual, const B* reference, std::size_t count) {
  Comparison result;
  double error_sum = 0;
  double reference_sum = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const double a = static_cast<double>(actual[i]);
    const double b = static_cast<double>(reference[i]);
    if (!std::isfinite(a) || !std::isfinite(b)) result.finite = false;
    error_sum += (a - b) * (a - b);
    reference_sum += b * b;
    result.max_abs_error = std::fmax(result.max_abs_error, std::fabs(a - b));
  }
  result.reference_norm = std::sqrt(reference_sum);
  result.nmse = reference_sum > 0 ? error_sum / reference_sum : INFINITY;
  return result;
}

/// REQUIREs that `actual` matches `reference` within `threshold` NMSE, is finite and non-zero.
template <class A, class B>
void require_close(const char* what, const A* actual, const B* reference, std::size_t count,
                   double threshold) {
  const Comparison c = compare(actual, reference, count);
  std::ostringstream info;
  info << what << ": nmse " << c.nmse << " (threshold " << threshold << "), max |error| "
       << c.max_abs_error << ", |reference| " << c.reference_norm << ", " << count << " values";
  INFO(info.str());
  if (const char* report_path = std::getenv("LLAMABLOCKS_TEST_REPORT")) {
    if (std::FILE* report = std::fopen(report_path, "a")) {
      const char* type = sizeof(A) == sizeof(float) ? "float" : "double";
      std::fprintf(report, "%s <%s>\t%.3e\t%.3e\t%.1e\n", what, type, c.nmse, c.max_abs_error,
                   threshold);
      std::fclose(report);
    }
  }
  REQUIRE(c.finite);
  REQUIRE(c.reference_norm > 0);
  REQUIRE(c.nmse <= threshold);
}

}  // namespace llamablocks::test
