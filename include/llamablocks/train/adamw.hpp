// AdamW (Loshchilov & Hutter), exactly as torch.optim.AdamW (foreach=False) computes it. For each
// parameter p with gradient g, at its step t = 1, 2, ...:
//   p ← p · (1 − lr·λ)                                  decoupled weight decay (λ = 0: none)
//   m ← β1·m + (1 − β1)·g          v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
// m and v have the parameter's shape, are zero before the first step and are allocated by it.
// Every element is computed in T, with the scalar coefficients computed in double and rounded to T
// (as torch does for float tensors), and √(1 − β2ᵗ) applied as a multiplication by its reciprocal
// (as torch's division of a tensor by a scalar is), so that a double run matches torch to rounding.
//
// Weight decay is chosen per parameter: WeightDecay::apply uses the config's weight_decay,
// WeightDecay::none uses 0. The usual rule (default_weight_decay): matrices decay, norm gains
// (rank 1) do not; embeddings decay unless the caller says otherwise.
//
// Errors: a bad hyper-parameter throws config_error naming it and its value (at construction, or in
// set_lr). step() checks every parameter first (a gradient is there, the weights are not packed, no
// two parameters share storage) and throws config_error naming the first bad one before any weight
// or state changes. Gradients are not checked for NaN/Inf: clip_grad_norm reports a non-finite norm,
// and the caller decides to skip the step.
#pragma once

#include "llamablocks/core/error.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/modules/llama_block.hpp"
#include "llamablocks/train/clip_grad_norm.hpp"
#include "llamablocks/train/parameter_ref.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <vector>

namespace llamablocks {

/// Hyper-parameters of AdamW; the defaults are torch.optim.AdamW's.
struct AdamWConfig {
  double lr = 1e-3;            ///< learning rate, ≥ 0 (a schedule sets it per step with set_lr)
  double beta1 = 0.9;          ///< decay of the first moment, in [0, 1)
  double beta2 = 0.999;        ///< decay of the second moment, in [0, 1)
  double eps = 1e-8;           ///< added to the bias-corrected √v, > 0
  double weight_decay = 1e-2;  ///< λ of the parameters added with WeightDecay::apply, ≥ 0

  /// Throws config_error naming the first invalid field and its value.
  void validate() const {
    expect_lr(lr);
    detail::require<config_error>(std::isfinite(beta1) && beta1 >= 0 && beta1 < 1,
                                  "AdamW: beta1 must be in [0, 1), got ", beta1);
    detail::require<config_error>(std::isfinite(beta2) && beta2 >= 0 && beta2 < 1,
                                  "AdamW: beta2 must be in [0, 1), got ", beta2);
    detail::require<config_error>(std::isfinite(eps) && eps > 0,
                                  "AdamW: eps must be > 0 and finite, got ", eps);
    detail::require<config_error>(std::isfinite(weight_decay) && weight_decay >= 0,
                                  "AdamW: weight_decay must be >= 0 and finite, got ", weight_decay);
  }

  static void expect_lr(double value) {
    detail::require<config_error>(std::isfinite(value) && value >= 0,
                                  "AdamW: lr must be >= 0 and finite, got ", value);
  }
};

/// Whether a parameter gets the decoupled weight decay.
enum class WeightDecay { apply, none };

/// The usual rule: matrices (projections, embeddings) decay, norm gains (rank 1) do not.
template <class T, int Rank, class Backend>
WeightDecay default_weight_decay(const Parameter<T, Rank, Backend>&) {
  return Rank >= 2 ? WeightDecay::apply : WeightDecay::none;
}

/// AdamW over a list of host parameters of any rank (see the header comment). This primary template
/// is the cpu optimizer; AdamW<T, cuda> (backends/cuda/optimizer.cuh) updates device parameters.
/// \tparam T       element type of the weights, gradients and moments.
/// \tparam Backend cpu here.
template <class T, class Backend = cpu>
class AdamW {
  static_assert(std::is_same_v<Backend, cpu>,
                "AdamW: no specialization for this backend; include llamablocks/cuda.cuh for cuda");

 public:
  /// \param config checked here; throws config_error naming an invalid field.
  explicit AdamW(const AdamWConfig& config) : config_(config) { config_.validate(); }

  /// Adds a parameter; its state is allocated by the first step(). Throws config_error if it was
  /// added already.
  void add(ParameterRef<T> parameter, WeightDecay decay) {
    for (const State& state : states_)
      detail::require<config_error>(!state.parameter.same_parameter(parameter), "AdamW: ",
                                    parameter.name(), " was added twice");
    states_.push_back(State{parameter, decay, 0, {}, {}});
  }

  /// Adds a parameter with default_weight_decay().
  template <int Rank>
  void add(Parameter<T, Rank, cpu>& parameter) {
    add(ParameterRef<T>(parameter), default_weight_decay(parameter));
  }

  const AdamWConfig& config() const { return config_; }
  double lr() const { return config_.lr; }
  /// Sets the learning rate of the following steps (a schedule's lr(step)); throws config_error
  /// for a negative or non-finite value, keeping the previous one.
  void set_lr(double lr) {
    AdamWConfig::expect_lr(lr);
    config_.lr = lr;
  }

  std::size_t size() const { return states_.size(); }
  const ParameterRef<T>& parameter(std::size_t i) const { return states_.at(i).parameter; }
  WeightDecay weight_decay(std::size_t i) const { return states_.at(i).decay; }
  /// Steps taken by parameter i (torch keeps the count per parameter too).
  index_t step_count(std::size_t i) const { return states_.at(i).step; }
  /// m and v of parameter i, flat; empty before its first step.
  const std::vector<T>& exp_avg(std::size_t i) const { return states_.at(i).exp_avg; }
  const std::vector<T>& exp_avg_sq(std::size_t i) const { return states_.at(i).exp_avg_sq; }

  /// Updates every parameter from its gradient. Checks all of them first (see the header comment).
  void step() {
    check_parameters();
    for (State& state : states_) {
      if (state.exp_avg.empty()) {  // allocated before any update, so bad_alloc changes nothing
        const auto size = static_cast<std::size_t>(state.parameter.size());
        state.exp_avg.assign(size, T(0));
        state.exp_avg_sq.assign(size, T(0));
      }
    }
    for (State& state : states_) update(state);
  }

  /// Sets every parameter's gradient to zero.
  void zero_grad() {
    check_gradients();
    for (const State& state : states_) {
      T* grad = state.parameter.grad();
      std::fill(grad, grad + state.parameter.size(), T(0));
    }
  }

  /// clip_grad_norm over this optimizer's parameters; returns the norm before clipping.
  double clip_grad_norm(double max_norm) {
    std::vector<ParameterRef<T>> parameters;
    parameters.reserve(states_.size());
    for (const State& state : states_) parameters.push_back(state.parameter);
    return llamablocks::clip_grad_norm(parameters, max_norm);
  }

 private:
  struct State {
    ParameterRef<T> parameter;
    WeightDecay decay;
    index_t step;
    std::vector<T> exp_avg;     // m
    std::vector<T> exp_avg_sq;  // v
  };

  void check_gradients() const {
    for (const State& state : states_)
      detail::require<config_error>(state.parameter.has_grad(), "AdamW: ", state.parameter.name(),
                                    " has no gradient; call enable_grad() before training");
  }

  void check_parameters() const {
    check_gradients();
    for (std::size_t i = 0; i < states_.size(); ++i) {
      const ParameterRef<T>& parameter = states_[i].parameter;
      detail::require<config_error>(!parameter.is_packed(), "AdamW: ", parameter.name(),
                                    " holds packed weights, which cannot be trained");
      // Tied weights (one storage, two parameters) would be updated twice with two states: a tied
      // pair (Parameter::tie) shares one gradient too, and is added once.
      for (std::size_t j = 0; j < i; ++j)
        detail::require<config_error>(states_[j].parameter.data() != parameter.data(), "AdamW: ",
                                      parameter.name(), " shares its storage with ",
                                      states_[j].parameter.name(),
                                      "; add tied parameters once (Parameter::tie shares their gradient)");
    }
  }

  void update(State& state) const {
    ++state.step;
    const double lr = config_.lr;
    const double decay = state.decay == WeightDecay::apply ? config_.weight_decay : 0.0;
    const double t = static_cast<double>(state.step);
    const double bias_correction1 = 1 - std::pow(config_.beta1, t);
    const double bias_correction2 = 1 - std::pow(config_.beta2, t);

    const T decay_factor = static_cast<T>(1 - lr * decay);
    const T beta1 = static_cast<T>(config_.beta1);
    const T beta2 = static_cast<T>(config_.beta2);
    const T one_minus_beta1 = static_cast<T>(1 - config_.beta1);
    const T one_minus_beta2 = static_cast<T>(1 - config_.beta2);
    const T inverse_bias_correction2_sqrt = T(1) / static_cast<T>(std::sqrt(bias_correction2));
    const T eps = static_cast<T>(config_.eps);
    const T negative_step_size = static_cast<T>(-(lr / bias_correction1));

    T* weights = state.parameter.data();
    const T* grad = state.parameter.grad();
    T* m = state.exp_avg.data();
    T* v = state.exp_avg_sq.data();
    const index_t size = state.parameter.size();
    for (index_t i = 0; i < size; ++i) {
      weights[i] *= decay_factor;
      m[i] = m[i] * beta1 + one_minus_beta1 * grad[i];
      v[i] = v[i] * beta2 + one_minus_beta2 * grad[i] * grad[i];
      const T denominator = std::sqrt(v[i]) * inverse_bias_correction2_sqrt + eps;
      weights[i] += negative_step_size * m[i] / denominator;
    }
  }

  AdamWConfig config_;
  std::vector<State> states_;
};

/// Adds every parameter of `block` with default_weight_decay: the seven matrices decay, the two
/// norm gains do not. Needs the backend's modules (llamablocks.hpp or cuda.cuh).
template <class T, class Backend>
void add_parameters(AdamW<T, Backend>& optimizer, LlamaBlock<Backend, T>& block) {
  optimizer.add(block.attention_norm().weight());
  optimizer.add(block.attention().wq());
  optimizer.add(block.attention().wk());
  optimizer.add(block.attention().wv());
  optimizer.add(block.attention().wo());
  optimizer.add(block.ffn_norm().weight());
  optimizer.add(block.feed_forward().w1());
  optimizer.add(block.feed_forward().w2());
  optimizer.add(block.feed_forward().w3());
}

}  // namespace llamablocks
