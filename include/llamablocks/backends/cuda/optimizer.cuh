// The optimizer on the cuda backend: AdamW<T, cuda> and clip_grad_norm over device parameters, the
// twins of train/adamw.hpp and train/clip_grad_norm.hpp (same formulas, checks and messages).
//   AdamW, per element of a parameter p with gradient g, step t (one thread per element):
//     p ← p · (1 − lr·λ)      m ← β1·m + (1 − β1)·g      v ← β2·v + (1 − β2)·g²
//     p ← p − (lr / (1 − β1ᵗ)) · m / (√v · (1/√(1 − β2ᵗ)) + ε)
//   in float, each operation rounded as the cpu optimizer in float rounds it (the _rn intrinsics
//   keep nvcc from fusing a multiply and an add); m and v are float for every T, since a bf16 or
//   half v = g² would lose the small gradients. The scalar coefficients are computed in double on
//   the host and rounded to float, as on the cpu.
//   clip_grad_norm: norm = √(Σ g²) over every gradient, in two deterministic passes: each
//   parameter's elements summed in double by a fixed grid of blocks into per-block partials, then
//   one block adds all partials in a fixed order; the host reads the norm (one synchronization)
//   and, when max_norm / (norm + 1e-6) < 1, one kernel per parameter scales g in place. A
//   non-finite norm leaves the gradients alone and is returned.
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/core/error.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/train/adamw.hpp"
#include "llamablocks/train/parameter_ref.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace llamablocks {
namespace detail {

inline constexpr int optimizer_threads = 256;
/// Blocks of one parameter's sum-of-squares pass; a fixed number, so the sums' order is fixed.
inline constexpr int norm_blocks = 256;

/// The float coefficients of one AdamW step of one parameter (computed in double, rounded once).
struct AdamWCoefficients {
  float decay_factor;                   // 1 − lr·λ
  float beta1, beta2;
  float one_minus_beta1, one_minus_beta2;
  float inverse_bias_correction2_sqrt;  // 1 / √(1 − β2ᵗ), applied as a multiplication
  float eps;
  float negative_step_size;             // −lr / (1 − β1ᵗ)
};

template <class T>
__global__ void adamw_update(T* __restrict__ weights, const T* __restrict__ grad,
                             float* __restrict__ exp_avg, float* __restrict__ exp_avg_sq,
                             std::int64_t count, AdamWCoefficients c) {
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < count; i += step) {
    const float g = to_float(grad[i]);
    const float w = __fmul_rn(to_float(weights[i]), c.decay_factor);
    const float m = __fadd_rn(__fmul_rn(exp_avg[i], c.beta1), __fmul_rn(c.one_minus_beta1, g));
    const float v =
        __fadd_rn(__fmul_rn(exp_avg_sq[i], c.beta2), __fmul_rn(__fmul_rn(c.one_minus_beta2, g), g));
    const float denominator = __fadd_rn(__fmul_rn(__fsqrt_rn(v), c.inverse_bias_correction2_sqrt), c.eps);
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    weights[i] = from_float<T>(__fadd_rn(w, __fdiv_rn(__fmul_rn(c.negative_step_size, m), denominator)));
  }
}

/// Sum over the block of doubles (blockDim.x == optimizer_threads); thread 0 returns the total.
__device__ inline double block_sum_double(double value) {
  __shared__ double values[optimizer_threads];
  values[threadIdx.x] = value;
  __syncthreads();
  for (int half = optimizer_threads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) values[threadIdx.x] += values[threadIdx.x + half];
    __syncthreads();
  }
  return values[0];
}

/// grid norm_blocks × optimizer_threads: partial[blockIdx.x] = Σ g² over the elements the block's
/// threads stride over, in double.
template <class T>
__global__ void sum_of_squares_partials(const T* __restrict__ grad, std::int64_t count,
                                        double* __restrict__ partial) {
  double sum = 0;
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < count; i += step) {
    const double g = static_cast<double>(to_float(grad[i]));
    sum += g * g;
  }
  const double total = block_sum_double(sum);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

/// One block: *total = Σ partial[0 .. count), thread i adding i, i + blockDim.x, ... in order.
template <class Unused = void>
__global__ void sum_partials(const double* __restrict__ partial, int count, double* __restrict__ total) {
  double sum = 0;
  for (int i = static_cast<int>(threadIdx.x); i < count; i += static_cast<int>(blockDim.x))
    sum += partial[i];
  const double block_total = block_sum_double(sum);
  if (threadIdx.x == 0) *total = block_total;
}

/// g[i] = g[i] · scale for i < count (scale already rounded to float, as the cpu rounds it to T).
template <class T>
__global__ void scale_inplace(T* __restrict__ values, std::int64_t count, float scale) {
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < count; i += step)
    values[i] = from_float<T>(__fmul_rn(to_float(values[i]), scale));
}

inline int elementwise_blocks(const Context<cuda>& ctx, std::int64_t count) {
  const std::int64_t wanted = (count + optimizer_threads - 1) / optimizer_threads;
  return static_cast<int>(std::max<std::int64_t>(
      1, std::min<std::int64_t>(wanted, static_cast<std::int64_t>(ctx.multiprocessor_count()) * 32)));
}

}  // namespace detail

/// Clips the global L2 norm of the gradients of device `parameters` to max_norm, as the cpu
/// clip_grad_norm does (see the header comment). Checks max_norm and every gradient before any
/// changes; synchronizes ctx's stream to read the norm. \return the norm before clipping.
template <class T>
double clip_grad_norm(const Context<cuda>& ctx, const std::vector<ParameterRef<T, cuda>>& parameters,
                      double max_norm) {
  detail::check_cuda_scalar<T>();
  detail::require<config_error>(std::isfinite(max_norm) && max_norm > 0,
                                "clip_grad_norm: max_norm must be > 0 and finite, got ", max_norm);
  for (const ParameterRef<T, cuda>& parameter : parameters)
    detail::require<config_error>(parameter.has_grad(), "clip_grad_norm: ", parameter.name(),
                                  " has no gradient; call enable_grad() before training");
  if (parameters.empty()) return 0.0;
  const auto partial_count = static_cast<index_t>(parameters.size()) * detail::norm_blocks;
  Tensor<double, 1, cuda> partial(Shape<1>{partial_count + 1});  // the partials, then the total
  for (std::size_t p = 0; p < parameters.size(); ++p) {
    detail::sum_of_squares_partials<T><<<detail::norm_blocks, detail::optimizer_threads, 0,
                                         ctx.stream()>>>(
        parameters[p].grad(), parameters[p].size(),
        partial.data() + static_cast<index_t>(p) * detail::norm_blocks);
    LLAMABLOCKS_CUDA_CHECK_LAUNCH();
  }
  detail::sum_partials<void><<<1, detail::optimizer_threads, 0, ctx.stream()>>>(
      partial.data(), static_cast<int>(partial_count), partial.data() + partial_count);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
  double sum_of_squares = 0;
  LLAMABLOCKS_CUDA_CHECK(cudaMemcpyAsync(&sum_of_squares, partial.data() + partial_count,
                                         sizeof(double), cudaMemcpyDeviceToHost, ctx.stream()));
  ctx.synchronize();
  const double norm = std::sqrt(sum_of_squares);
  if (!std::isfinite(norm)) return norm;
  const double coefficient = max_norm / (norm + 1e-6);
  if (coefficient < 1) {
    const auto scale = static_cast<float>(coefficient);
    for (const ParameterRef<T, cuda>& parameter : parameters) {
      const std::int64_t count = parameter.size();
      if (count == 0) continue;
      detail::scale_inplace<T><<<detail::elementwise_blocks(ctx, count), detail::optimizer_threads,
                                 0, ctx.stream()>>>(parameter.grad(), count, scale);
      LLAMABLOCKS_CUDA_CHECK_LAUNCH();
    }
  }
  return norm;
}

/// AdamW over device parameters of any rank; torch.optim.AdamW's arithmetic (see the header
/// comment and train/adamw.hpp), with m and v in float device memory.
/// \tparam T float, __half or __nv_bfloat16: the weights' and gradients' type.
template <class T>
class AdamW<T, cuda> {
 public:
  /// \param config checked here; throws config_error naming an invalid field.
  explicit AdamW(const AdamWConfig& config) : config_(config) {
    detail::check_cuda_scalar<T>();
    config_.validate();
  }

  /// Adds a parameter; its state is allocated by the first step(). Throws config_error if it was
  /// added already.
  void add(ParameterRef<T, cuda> parameter, WeightDecay decay) {
    for (const State& state : states_)
      detail::require<config_error>(!state.parameter.same_parameter(parameter), "AdamW: ",
                                    parameter.name(), " was added twice");
    states_.push_back(State{parameter, decay, 0, {}, {}});
  }

  /// Adds a parameter with default_weight_decay().
  template <int Rank>
  void add(Parameter<T, Rank, cuda>& parameter) {
    add(ParameterRef<T, cuda>(parameter), default_weight_decay(parameter));
  }

  const AdamWConfig& config() const { return config_; }
  double lr() const { return config_.lr; }
  /// Sets the learning rate of the following steps; throws config_error for a negative or
  /// non-finite value, keeping the previous one.
  void set_lr(double lr) {
    AdamWConfig::expect_lr(lr);
    config_.lr = lr;
  }

  std::size_t size() const { return states_.size(); }
  const ParameterRef<T, cuda>& parameter(std::size_t i) const { return states_.at(i).parameter; }
  WeightDecay weight_decay(std::size_t i) const { return states_.at(i).decay; }
  index_t step_count(std::size_t i) const { return states_.at(i).step; }
  /// m and v of parameter i in device memory (float), flat; empty before its first step.
  TensorView<const float, 1> exp_avg(std::size_t i) const { return states_.at(i).exp_avg.cview(); }
  TensorView<const float, 1> exp_avg_sq(std::size_t i) const {
    return states_.at(i).exp_avg_sq.cview();
  }

  /// Updates every parameter from its gradient, on ctx's stream. Checks all of them first (a
  /// gradient is there, no packed weights, no two share storage) and allocates every missing m
  /// and v before the first weight is written.
  void step(const Context<cuda>& ctx) {
    check_parameters();
    for (State& state : states_) {
      if (state.exp_avg.empty() && state.parameter.size() > 0) {
        state.exp_avg = Tensor<float, 1, cuda>(Shape<1>{state.parameter.size()});
        state.exp_avg_sq = Tensor<float, 1, cuda>(Shape<1>{state.parameter.size()});
      }
    }
    for (State& state : states_) update(ctx, state);
  }

  /// Sets every parameter's gradient to zero, on ctx's stream.
  void zero_grad(const Context<cuda>& ctx) {
    check_gradients();
    for (const State& state : states_)
      LLAMABLOCKS_CUDA_CHECK(cudaMemsetAsync(state.parameter.grad(), 0,
                                             static_cast<std::size_t>(state.parameter.size()) * sizeof(T),
                                             ctx.stream()));
  }

  /// clip_grad_norm over this optimizer's parameters; returns the norm before clipping.
  double clip_grad_norm(const Context<cuda>& ctx, double max_norm) {
    std::vector<ParameterRef<T, cuda>> parameters;
    parameters.reserve(states_.size());
    for (const State& state : states_) parameters.push_back(state.parameter);
    return llamablocks::clip_grad_norm<T>(ctx, parameters, max_norm);
  }

 private:
  struct State {
    ParameterRef<T, cuda> parameter;
    WeightDecay decay;
    index_t step;
    Tensor<float, 1, cuda> exp_avg;     // m
    Tensor<float, 1, cuda> exp_avg_sq;  // v
  };

  void check_gradients() const {
    for (const State& state : states_)
      detail::require<config_error>(state.parameter.has_grad(), "AdamW: ", state.parameter.name(),
                                    " has no gradient; call enable_grad() before training");
  }

  void check_parameters() const {
    check_gradients();
    for (std::size_t i = 0; i < states_.size(); ++i) {
      const ParameterRef<T, cuda>& parameter = states_[i].parameter;
      detail::require<config_error>(!parameter.is_packed(), "AdamW: ", parameter.name(),
                                    " holds packed weights, which cannot be trained");
      for (std::size_t j = 0; j < i; ++j)
        detail::require<config_error>(states_[j].parameter.data() != parameter.data(), "AdamW: ",
                                      parameter.name(), " shares its storage with ",
                                      states_[j].parameter.name(),
                                      "; add tied parameters once (Parameter::tie shares their gradient)");
    }
  }

  void update(const Context<cuda>& ctx, State& state) const {
    ++state.step;
    const std::int64_t count = state.parameter.size();
    if (count == 0) return;
    const double lr = config_.lr;
    const double decay = state.decay == WeightDecay::apply ? config_.weight_decay : 0.0;
    const double t = static_cast<double>(state.step);
    const double bias_correction1 = 1 - std::pow(config_.beta1, t);
    const double bias_correction2 = 1 - std::pow(config_.beta2, t);
    detail::AdamWCoefficients c{};
    c.decay_factor = static_cast<float>(1 - lr * decay);
    c.beta1 = static_cast<float>(config_.beta1);
    c.beta2 = static_cast<float>(config_.beta2);
    c.one_minus_beta1 = static_cast<float>(1 - config_.beta1);
    c.one_minus_beta2 = static_cast<float>(1 - config_.beta2);
    // As the cpu computes it in T = float: 1 / (√(1 − β2ᵗ) rounded to float), in float.
    c.inverse_bias_correction2_sqrt = 1.0f / static_cast<float>(std::sqrt(bias_correction2));
    c.eps = static_cast<float>(config_.eps);
    c.negative_step_size = static_cast<float>(-(lr / bias_correction1));
    detail::adamw_update<T><<<detail::elementwise_blocks(ctx, count), detail::optimizer_threads, 0,
                              ctx.stream()>>>(state.parameter.data(), state.parameter.grad(),
                                              state.exp_avg.data(), state.exp_avg_sq.data(), count, c);
    LLAMABLOCKS_CUDA_CHECK_LAUNCH();
  }

  AdamWConfig config_;
  std::vector<State> states_;
};

}  // namespace llamablocks
