// Softmax cross-entropy over the vocabulary, the training loss of a language model (cpu kernels):
//   loss           = (1/N) Σᵢ ( log Σⱼ exp(logits[i, j]) − logits[i, targets[i]] )
//   d_logits[i, j] = ( softmax(logits[i])ⱼ − [j == targets[i]] ) / N
//   logits, d_logits: [rows, vocab_size]   targets: [rows] (int32)   N = rows
// The log-sum-exp subtracts each row's maximum and is accumulated in double, so large logits
// neither overflow nor lose the small terms. There is no ignore index: every target must lie in
// [0, vocab_size), and one outside throws range_error naming its row and value before anything is
// written (a caller with padding passes only the rows it wants counted).
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

namespace llamablocks {
namespace detail {

template <class T>
void check_cross_entropy(const char* where, const TensorView<const T, 2>& logits,
                         const TensorView<const std::int32_t, 1>& targets) {
  expect_shape(where, "logits", logits, logits.shape());
  require<shape_error>(logits.shape(0) >= 1 && logits.shape(1) >= 1, where, ": logits has shape ",
                       format_shape(logits.shape()), ", needs at least one row and one column");
  expect_shape(where, "targets", targets, {logits.shape(0)});
  const index_t vocab_size = logits.shape(1);
  for (index_t i = 0; i < targets.shape(0); ++i)
    require<range_error>(targets(i) >= 0 && targets(i) < vocab_size, where, ": target ",
                         targets(i), " at row ", i, " is outside the vocabulary [0, ", vocab_size,
                         ")");
}

/// The loss of each row, log Σⱼ exp(logits[row, j]) − logits[row, target], and, when d_logits is
/// not null, its gradient row (softmax − onehot) · gradient_scale. d_logits may be logits itself.
template <class T>
double cross_entropy_row(const T* logits, index_t vocab_size, std::int32_t target,
                         T* d_logits, double gradient_scale) {
  double row_max = static_cast<double>(logits[0]);
  for (index_t j = 1; j < vocab_size; ++j) row_max = std::fmax(row_max, static_cast<double>(logits[j]));
  double sum = 0;
  for (index_t j = 0; j < vocab_size; ++j) sum += std::exp(static_cast<double>(logits[j]) - row_max);
  const double log_sum_exp = row_max + std::log(sum);
  const double loss = log_sum_exp - static_cast<double>(logits[target]);
  if (d_logits != nullptr)
    for (index_t j = 0; j < vocab_size; ++j) {
      const double probability = std::exp(static_cast<double>(logits[j]) - log_sum_exp);
      d_logits[j] = static_cast<T>((probability - (j == target ? 1.0 : 0.0)) * gradient_scale);
    }
  return loss;
}

/// Runs cross_entropy_row over every row in parallel and sums the losses in row order, so the
/// result does not depend on the thread count.
template <class T>
double cross_entropy_rows(const Context<cpu>& ctx, const TensorView<const T, 2>& logits,
                          const TensorView<const std::int32_t, 1>& targets, T* d_logits) {
  const index_t rows = logits.shape(0);
  const index_t vocab_size = logits.shape(1);
  const double gradient_scale = 1.0 / static_cast<double>(rows);
  std::vector<double> row_losses(static_cast<std::size_t>(rows));
  parallel_for(ctx, rows, [&](index_t row) {
    row_losses[static_cast<std::size_t>(row)] =
        cross_entropy_row(logits.data() + row * vocab_size, vocab_size, targets(row),
                          d_logits == nullptr ? nullptr : d_logits + row * vocab_size,
                          gradient_scale);
  });
  double total = 0;
  for (const double loss : row_losses) total += loss;
  return total / static_cast<double>(rows);
}

}  // namespace detail

/// The mean cross-entropy loss (nats) of `logits` [rows, vocab_size] against `targets` [rows].
template <class T>
double cross_entropy(const Context<cpu>& ctx, const TensorView<const T, 2>& logits,
                     const TensorView<const std::int32_t, 1>& targets) {
  detail::check_cpu_scalar<T>();
  detail::check_cross_entropy("cross_entropy", logits, targets);
  return detail::cross_entropy_rows<T>(ctx, logits, targets, nullptr);
}

/// Writes d_logits = (softmax(logits) − onehot(targets)) / rows, the gradient of the mean loss,
/// and returns that loss (the value cross_entropy gives). d_logits: [rows, vocab_size], either
/// logits itself (in place) or disjoint from it.
template <class T>
double cross_entropy_backward(const Context<cpu>& ctx, const TensorView<const T, 2>& logits,
                              const TensorView<const std::int32_t, 1>& targets,
                              const TensorView<T, 2>& d_logits) {
  detail::check_cpu_scalar<T>();
  const char* where = "cross_entropy_backward";
  detail::check_cross_entropy(where, logits, targets);
  detail::expect_shape(where, "d_logits", d_logits, logits.shape());
  if (static_cast<const void*>(d_logits.data()) != static_cast<const void*>(logits.data()))
    detail::expect_disjoint(where, "logits", logits, "d_logits", d_logits);
  return detail::cross_entropy_rows<T>(ctx, logits, targets, d_logits.data());
}

}  // namespace llamablocks
