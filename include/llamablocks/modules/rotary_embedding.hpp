// Rotary position embedding (RoPE, Su et al., 2021), applied to queries and keys:
// every pair (a, b) of a head vector at position m is rotated by the angle m·θ_j,
//   θ_j = rope_theta^(−2j / head_dim),    j = 0 .. head_dim/2 − 1
//   (x_a, x_b) -> (x_a cos mθ_j − x_b sin mθ_j,  x_a sin mθ_j + x_b cos mθ_j)
// so that ⟨R_m q, R_n k⟩ depends on m − n only and ‖R_m x‖ = ‖x‖.
//   x: [batch, tokens, heads, head_dim], rotated in place; token t has position start_pos + t.
//
// Pair layout (RopeLayout): interleaved pairs (2j, 2j+1) for Meta / llama2.c / GGUF weights,
// half_split pairs (j, j + head_dim/2) for Hugging Face weights.
// Frequency scaling (RopeScaling): none, linear, or LLaMA-3.1's per-wavelength ramp.
//
// The three formulations of the write-ups are selected by a tag argument of apply():
//   rope::elementwise       the rotation above with precomputed cos/sin tables (the default; fastest)
//   rope::rotation_matrix   x' = R_m x with the block-diagonal head_dim × head_dim matrix R_m
//   rope::complex_multiply  (x_a + i x_b) · e^{i m θ_j}
// They agree to rounding (tested within 1e-6).
//
// API (every backend):
//   RotaryEmbedding(index_t head_dim, index_t max_seq_len, double rope_theta,
//                   RopeLayout layout, RopeScaling scaling = {})     or   (const ModelConfig&)
//   void apply(Context<Backend>&, TensorView<T, 4> x, index_t start_pos, Formulation = {}) const
//   const std::vector<double>& inv_freq() const                         θ_j after scaling
// Training (cpu and cuda, docs/training.md):
//   void backward(Context<Backend>&, TensorView<T, 4> grad, index_t start_pos) const
//     d_x = R_mᵀ d_out in place: every pair rotated by −m·θ_j; nothing is saved by the forward.
#pragma once

#include "llamablocks/core/backend.hpp"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/math.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

namespace llamablocks {

/// Formulation tags for RotaryEmbedding::apply.
namespace rope {
struct elementwise {};
struct rotation_matrix {};
struct complex_multiply {};
}  // namespace rope

namespace detail {

/// θ_j for j = 0 .. head_dim/2 − 1 after frequency scaling. Shared by every backend.
/// llama3: with wavelength λ = 2π/θ, λ < L/high_freq_factor keeps θ, λ > L/low_freq_factor uses
/// θ/factor, and in between θ is blended by s = (L/λ − low_freq_factor) / (high − low):
/// (1 − s)·θ/factor + s·θ, where L = original_max_position_embeddings.
inline std::vector<double> rope_frequencies(std::int64_t head_dim, double rope_theta,
                                            const RopeScaling& scaling) {
  constexpr double two_pi = 6.283185307179586476925286766559;
  std::vector<double> inv_freq(static_cast<std::size_t>(head_dim / 2));
  for (std::int64_t j = 0; j < head_dim / 2; ++j) {
    double freq = rope_inv_freq(rope_theta, j, head_dim);
    if (scaling.type == RopeScaling::Type::linear) {
      freq /= scaling.factor;
    } else if (scaling.type == RopeScaling::Type::llama3) {
      const double context = static_cast<double>(scaling.original_max_position_embeddings);
      const double wavelength = two_pi / freq;
      if (wavelength > context / scaling.low_freq_factor) {
        freq /= scaling.factor;
      } else if (wavelength >= context / scaling.high_freq_factor) {
        const double smooth = (context / wavelength - scaling.low_freq_factor) /
                              (scaling.high_freq_factor - scaling.low_freq_factor);
        freq = (1 - smooth) * freq / scaling.factor + smooth * freq;
      }
    }
    inv_freq[static_cast<std::size_t>(j)] = freq;
  }
  return inv_freq;
}

/// Indices of the two elements of pair j in a head vector of width head_dim.
struct RopePair {
  std::int64_t first;
  std::int64_t second;
};
LLAMABLOCKS_HOST_DEVICE inline RopePair rope_pair(RopeLayout layout, std::int64_t j,
                                                  std::int64_t head_dim) {
  return layout == RopeLayout::interleaved ? RopePair{2 * j, 2 * j + 1}
                                           : RopePair{j, j + head_dim / 2};
}

}  // namespace detail

/// Rotary position embedding with precomputed tables up to max_seq_len.
/// \tparam Backend backend tag (cpu, cuda).
/// \tparam T       storage type of the rotated activations.
template <class Backend, class T = float>
class RotaryEmbedding {
  static_assert(detail::dependent_false<Backend, T>,
                "RotaryEmbedding: no specialization for this backend; include "
                "llamablocks/llamablocks.hpp for cpu or llamablocks/cuda.cuh for cuda");
};

}  // namespace llamablocks
