// Learning-rate schedule: linear warmup, then cosine decay to a minimum. For the step s = 0, 1, ...
// (the number of optimizer steps taken before this one):
//   s < warmup_steps:          lr = max_lr · (s + 1) / warmup_steps     (reaches max_lr at s = warmup_steps − 1)
//   warmup_steps ≤ s < total:  p = (s − warmup_steps) / (total_steps − warmup_steps)
//                              lr = min_lr + ½ (max_lr − min_lr) (1 + cos(π p))
//   s ≥ total_steps:           lr = min_lr
// So lr(warmup_steps) = max_lr, the midpoint of the cosine gives (max_lr + min_lr) / 2, and
// lr(total_steps) = min_lr. Use: optimizer.set_lr(schedule.lr(step)); optimizer.step().
#pragma once

#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"

#include <cmath>

namespace llamablocks {

/// Linear warmup then cosine decay (see the header comment); a value type checked at construction.
class WarmupCosineSchedule {
 public:
  /// \param max_lr       peak learning rate, > 0 and finite.
  /// \param min_lr       final learning rate, in [0, max_lr].
  /// \param warmup_steps steps of linear warmup, ≥ 0 (0: start at max_lr).
  /// \param total_steps  step at which min_lr is reached, > warmup_steps.
  WarmupCosineSchedule(double max_lr, double min_lr, index_t warmup_steps, index_t total_steps)
      : max_lr_(max_lr), min_lr_(min_lr), warmup_steps_(warmup_steps), total_steps_(total_steps) {
    detail::require<config_error>(std::isfinite(max_lr) && max_lr > 0,
                                  "WarmupCosineSchedule: max_lr must be > 0 and finite, got ", max_lr);
    detail::require<config_error>(std::isfinite(min_lr) && min_lr >= 0 && min_lr <= max_lr,
                                  "WarmupCosineSchedule: min_lr must be in [0, max_lr = ", max_lr,
                                  "], got ", min_lr);
    detail::require<config_error>(warmup_steps >= 0,
                                  "WarmupCosineSchedule: warmup_steps must be >= 0, got ",
                                  warmup_steps);
    detail::require<config_error>(total_steps > warmup_steps,
                                  "WarmupCosineSchedule: total_steps must be > warmup_steps = ",
                                  warmup_steps, ", got ", total_steps);
  }

  /// The learning rate of step `step` (≥ 0, else range_error).
  double lr(index_t step) const {
    detail::require<range_error>(step >= 0, "WarmupCosineSchedule: step must be >= 0, got ", step);
    if (step < warmup_steps_)
      return max_lr_ * static_cast<double>(step + 1) / static_cast<double>(warmup_steps_);
    if (step >= total_steps_) return min_lr_;
    const double progress = static_cast<double>(step - warmup_steps_) /
                            static_cast<double>(total_steps_ - warmup_steps_);
    return min_lr_ + 0.5 * (max_lr_ - min_lr_) * (1 + std::cos(3.14159265358979323846 * progress));
  }

  double max_lr() const { return max_lr_; }
  double min_lr() const { return min_lr_; }
  index_t warmup_steps() const { return warmup_steps_; }
  index_t total_steps() const { return total_steps_; }

 private:
  double max_lr_;
  double min_lr_;
  index_t warmup_steps_;
  index_t total_steps_;
};

}  // namespace llamablocks
