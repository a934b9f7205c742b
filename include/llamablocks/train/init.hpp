// Seeded initialization of a LLaMA's weights, reproducible from a seed on any platform:
//   every matrix                   ~ N(0, std²),            std = 0.02
//   residual projections (wo, w2)  ~ N(0, (std / √(2·n_layers))²)     (GPT-2's scaled init)
//   norm gains                     = 1
// The numbers come from NormalRng: std::mt19937_64 (whose output sequence the C++ standard fixes)
// turned into normals by our own Box–Muller transform, not std::normal_distribution, whose
// algorithm differs between standard libraries. What remains platform-dependent is the last bit of
// std::log / std::cos / std::sin.
#pragma once

#include "llamablocks/core/error.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/modules/llama_block.hpp"

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace llamablocks {

/// Standard normal numbers from a seed: std::mt19937_64 and the Box–Muller transform. Each pair of
/// 64-bit draws (a, b) gives u1 = ((a >> 11) + 1)·2⁻⁵³ in (0, 1], u2 = (b >> 11)·2⁻⁵³ in [0, 1) and
/// the two normals r·cos(2πu2), then r·sin(2πu2), with r = √(−2 ln u1).
class NormalRng {
 public:
  explicit NormalRng(std::uint64_t seed) : engine_(seed) {}

  /// The next standard normal number.
  double next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    constexpr double two_pi = 6.28318530717958647692;
    constexpr double unit = 1.0 / 9007199254740992.0;  // 2⁻⁵³
    const double u1 = static_cast<double>((engine_() >> 11) + 1) * unit;
    const double u2 = static_cast<double>(engine_() >> 11) * unit;
    const double r = std::sqrt(-2 * std::log(u1));
    spare_ = r * std::sin(two_pi * u2);
    has_spare_ = true;
    return r * std::cos(two_pi * u2);
  }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0;
  bool has_spare_ = false;
};

/// Fills `parameter` with N(0, stddev²) numbers from `rng`, row-major; works on any backend (the
/// values are made on the host and copied). Throws config_error for stddev ≤ 0 or non-finite,
/// before drawing.
template <class T, int Rank, class Backend>
void init_normal(Parameter<T, Rank, Backend>& parameter, double stddev, NormalRng& rng) {
  detail::require<config_error>(std::isfinite(stddev) && stddev > 0, "init_normal: ",
                                parameter.name(), ": stddev must be > 0 and finite, got ", stddev);
  std::vector<T> values(static_cast<std::size_t>(parameter.size()));
  for (T& value : values) value = static_cast<T>(stddev * rng.next());
  parameter.copy_from(TensorView<const T, Rank>(values.data(), parameter.shape()));
}

/// Sets every element of `parameter` to `value`.
template <class T, int Rank, class Backend>
void init_constant(Parameter<T, Rank, Backend>& parameter, T value) {
  const std::vector<T> values(static_cast<std::size_t>(parameter.size()), value);
  parameter.copy_from(TensorView<const T, Rank>(values.data(), parameter.shape()));
}

/// The standard deviation of the residual projections (wo, w2) of a model of n_layers blocks.
inline double residual_init_stddev(double stddev, index_t n_layers) {
  return stddev / std::sqrt(2.0 * static_cast<double>(n_layers));
}

/// Initializes one block of a model of n_layers blocks (see the header comment). The matrices draw
/// from `rng` in this order: attention.wq, wk, wv, wo, feed_forward.w1, w2, w3; so one rng passed
/// to the blocks of a model in order gives every block different weights and the same model for
/// the same seed. Throws config_error (n_layers < 1, stddev ≤ 0) before changing anything.
template <class Backend, class T>
void init_block(LlamaBlock<Backend, T>& block, index_t n_layers, NormalRng& rng,
                double stddev = 0.02) {
  detail::require<config_error>(n_layers >= 1, "init_block: n_layers must be >= 1, got ", n_layers);
  detail::require<config_error>(std::isfinite(stddev) && stddev > 0,
                                "init_block: stddev must be > 0 and finite, got ", stddev);
  const double residual = residual_init_stddev(stddev, n_layers);
  init_constant(block.attention_norm().weight(), T(1));
  init_normal(block.attention().wq(), stddev, rng);
  init_normal(block.attention().wk(), stddev, rng);
  init_normal(block.attention().wv(), stddev, rng);
  init_normal(block.attention().wo(), residual, rng);
  init_constant(block.ffn_norm().weight(), T(1));
  init_normal(block.feed_forward().w1(), stddev, rng);
  init_normal(block.feed_forward().w2(), residual, rng);
  init_normal(block.feed_forward().w3(), stddev, rng);
}

}  // namespace llamablocks
