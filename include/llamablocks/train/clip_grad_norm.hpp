// Gradient-norm clipping, as torch.nn.utils.clip_grad_norm_ (L2):
//   norm = √(Σ over all parameters and elements of g²)        accumulated in double
//   c = max_norm / (norm + 1e-6);  if c < 1, every g ← g · c
// returns the norm before clipping. A non-finite norm (a NaN or Inf gradient) leaves the gradients
// as they are and is returned, so the caller can skip the step; torch would scale them by NaN.
#pragma once

#include "llamablocks/core/error.hpp"
#include "llamablocks/train/parameter_ref.hpp"

#include <cmath>
#include <vector>

namespace llamablocks {

/// Clips the global L2 norm of the gradients of `parameters` to max_norm (see the header comment).
/// \param parameters every one must have a gradient; checked before any gradient changes.
/// \param max_norm   > 0 and finite, else config_error.
/// \return the norm before clipping.
template <class T>
double clip_grad_norm(const std::vector<ParameterRef<T>>& parameters, double max_norm) {
  detail::require<config_error>(std::isfinite(max_norm) && max_norm > 0,
                                "clip_grad_norm: max_norm must be > 0 and finite, got ", max_norm);
  for (const ParameterRef<T>& parameter : parameters)
    detail::require<config_error>(parameter.has_grad(), "clip_grad_norm: ", parameter.name(),
                                  " has no gradient; call enable_grad() before training");
  double sum_of_squares = 0;
  for (const ParameterRef<T>& parameter : parameters) {
    const T* grad = parameter.grad();
    for (index_t i = 0; i < parameter.size(); ++i)
      sum_of_squares += static_cast<double>(grad[i]) * static_cast<double>(grad[i]);
  }
  const double norm = std::sqrt(sum_of_squares);
  if (!std::isfinite(norm)) return norm;
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient < 1) {
    const T scale = static_cast<T>(coefficient);
    for (const ParameterRef<T>& parameter : parameters) {
      T* grad = parameter.grad();
      for (index_t i = 0; i < parameter.size(); ++i) grad[i] *= scale;
    }
  }
  return norm;
}

}  // namespace llamablocks
