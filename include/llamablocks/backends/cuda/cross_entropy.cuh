// Softmax cross-entropy over the vocabulary on the cuda backend, the twin of
// backends/cpu/cross_entropy.hpp:
//   loss           = (1/N) Σᵢ ( log Σⱼ exp(logits[i, j]) − logits[i, targets[i]] )
//   d_logits[i, j] = ( softmax(logits[i])ⱼ − [j == targets[i]] ) / N
//   logits, d_logits: [rows, vocab_size] in device memory   targets: [rows] int32 in device memory
//   N = rows
// One thread block per row, in one pass over the row for the loss and one for the gradient: the
// row maximum (block_max), Σ exp(logit − max) in float (block_sum), the row's loss into a float
// [rows] buffer, then d_logits. The host adds the rows' losses in row order in double, so the loss
// does not depend on the scheduling. As on the cpu there is no ignore index: a target outside
// [0, vocab_size) throws range_error naming its row and value, and nothing is written (the targets
// are checked on the device first, like Embedding's ids; the row kernel does nothing when one is
// bad). Both functions synchronize ctx's stream, since they return the loss to the host.
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/backends/cuda/embedding.cuh"
#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"

#include <cstdint>
#include <vector>

namespace llamablocks {
namespace detail {

inline constexpr int cross_entropy_threads = 256;

/// Block `row`: row_loss[row] = log Σⱼ exp(logits[row, j]) − logits[row, target], and, when d_logits
/// is not null, d_logits[row, j] = (exp(logits[row, j] − lse) − [j == target]) · gradient_scale.
/// d_logits may be logits itself: each element is read and then written by one thread, after the
/// last barrier; the target's logit is read before the first. Nothing when *first_bad names a bad
/// target.
template <class T>
__global__ void cross_entropy_rows(const T* logits,                  // [rows, vocab_size]
                                   const std::int32_t* __restrict__ targets,  // [rows]
                                   T* d_logits,                      // [rows, vocab_size] or null
                                   float* __restrict__ row_loss,     // [rows]
                                   int vocab_size, float gradient_scale,
                                   const unsigned int* first_bad) {
  if (*first_bad != no_bad_token) return;  // the same word for every thread: the block leaves whole
  const std::size_t offset = static_cast<std::size_t>(blockIdx.x) * static_cast<std::size_t>(vocab_size);
  const T* row = logits + offset;
  const int target = targets[blockIdx.x];
  const float target_logit = to_float(row[target]);
  const int first = static_cast<int>(threadIdx.x);
  const int stride = static_cast<int>(blockDim.x);

  float maximum = -INFINITY;
  for (int j = first; j < vocab_size; j += stride) maximum = fmaxf(maximum, to_float(row[j]));
  maximum = block_max(maximum);
  float sum = 0.0f;
  for (int j = first; j < vocab_size; j += stride) sum += expf(to_float(row[j]) - maximum);
  sum = block_sum(sum);  // its own shared slots, not block_max's: no barrier needed between them
  const float log_sum_exp = maximum + logf(sum);
  if (threadIdx.x == 0) row_loss[blockIdx.x] = log_sum_exp - target_logit;
  if (d_logits == nullptr) return;
  T* d_row = d_logits + offset;
  for (int j = first; j < vocab_size; j += stride) {
    const float probability = expf(to_float(row[j]) - log_sum_exp);
    d_row[j] = from_float<T>((probability - (j == target ? 1.0f : 0.0f)) * gradient_scale);
  }
}

template <class T>
void check_cross_entropy_cuda(const char* where, const TensorView<const T, 2>& logits,
                              const TensorView<const std::int32_t, 1>& targets) {
  expect_shape(where, "logits", logits, logits.shape());
  require<shape_error>(logits.shape(0) >= 1 && logits.shape(1) >= 1, where, ": logits has shape ",
                       format_shape(logits.shape()), ", needs at least one row and one column");
  expect_shape(where, "targets", targets, {logits.shape(0)});
  checked_int(where, "rows", logits.shape(0));
  checked_int(where, "vocab_size", logits.shape(1));
}

/// The mean loss; d_logits written when not null. Checks the targets on the device and throws
/// range_error (nothing written) for one outside the vocabulary.
template <class T>
double cross_entropy_launch(const Context<cuda>& ctx, const char* where,
                            const TensorView<const T, 2>& logits,
                            const TensorView<const std::int32_t, 1>& targets, T* d_logits) {
  const int rows = static_cast<int>(logits.shape(0));
  const int vocab_size = static_cast<int>(logits.shape(1));
  // [0]: the first bad target's row (as unsigned), then the rows' losses as float.
  Tensor<float, 1, cuda> scratch(Shape<1>{1 + static_cast<index_t>(rows)});
  auto* first_bad = reinterpret_cast<unsigned int*>(scratch.data());
  float* row_loss = scratch.data() + 1;
  launch_find_bad_token(ctx, targets.data(), rows, vocab_size, first_bad);
  cross_entropy_rows<T><<<rows, cross_entropy_threads, 0, ctx.stream()>>>(
      logits.data(), targets.data(), d_logits, row_loss, vocab_size,
      static_cast<float>(1.0 / static_cast<double>(rows)), first_bad);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
  std::int32_t target = 0;
  const unsigned int bad = read_first_bad_token(ctx, targets.data(), first_bad, &target);
  if (bad != no_bad_token)
    throw range_error(concat(where, ": target ", target, " at row ", bad,
                             " is outside the vocabulary [0, ", vocab_size, ")"));
  std::vector<float> losses(static_cast<std::size_t>(rows));
  allocator<cuda>::copy_to_host(losses.data(), row_loss, losses.size() * sizeof(float));
  double total = 0;
  for (const float loss : losses) total += static_cast<double>(loss);
  return total / static_cast<double>(rows);
}

}  // namespace detail

/// The mean cross-entropy loss (nats) of `logits` [rows, vocab_size] against `targets` [rows],
/// both in device memory. Synchronizes ctx's stream.
template <class T>
double cross_entropy(const Context<cuda>& ctx, const TensorView<const T, 2>& logits,
                     const TensorView<const std::int32_t, 1>& targets) {
  detail::check_cuda_scalar<T>();
  const char* where = "cross_entropy<cuda>";
  detail::check_cross_entropy_cuda(where, logits, targets);
  return detail::cross_entropy_launch<T>(ctx, where, logits, targets, nullptr);
}

/// Writes d_logits = (softmax(logits) − onehot(targets)) / rows, the gradient of the mean loss,
/// and returns that loss (the value cross_entropy gives). d_logits: [rows, vocab_size] in device
/// memory, either logits itself (in place) or disjoint from it. Synchronizes ctx's stream.
template <class T>
double cross_entropy_backward(const Context<cuda>& ctx, const TensorView<const T, 2>& logits,
                              const TensorView<const std::int32_t, 1>& targets,
                              const TensorView<T, 2>& d_logits) {
  detail::check_cuda_scalar<T>();
  const char* where = "cross_entropy_backward<cuda>";
  detail::check_cross_entropy_cuda(where, logits, targets);
  detail::expect_shape(where, "d_logits", d_logits, logits.shape());
  if (static_cast<const void*>(d_logits.data()) != static_cast<const void*>(logits.data()))
    detail::expect_disjoint(where, "logits", logits, "d_logits", d_logits);
  return detail::cross_entropy_launch<T>(ctx, where, logits, targets, d_logits.data());
}

}  // namespace llamablocks
