// RotaryEmbedding on the cuda backend: every pair (a, b) of a head vector at position m turned by
// m·θ_j, (a cos − b sin, a sin + b cos), in float, one rounding to T per element.
//   x: [batch, tokens, heads, head_dim] in device memory, rotated in place; token t at start_pos + t
// cos/sin tables [max_seq_len, head_dim/2] are computed on the host in double from the scaled
// frequencies (detail::rope_frequencies, shared with the cpu backend), rounded to float and copied
// to the device once. One thread per pair; a block covers whole rows (one token's heads).
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/modules/rotary_embedding.hpp"

#include <cmath>
#include <vector>

namespace llamablocks {
namespace detail {

/// Turns the pair `pair` (0 .. rows·heads·head_dim/2) by +angle, or −angle when Inverse.
template <class T, bool Inverse>
__global__ void rope_turn(T* x, const float* __restrict__ cos_table,
                          const float* __restrict__ sin_table, long long pairs, int tokens,
                          int heads, int head_dim, int start_pos, RopeLayout layout) {
  const int half = head_dim / 2;
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long pair = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
       pair < pairs; pair += step) {
    const int j = static_cast<int>(pair % half);
    const long long head = pair / half;           // (row, h) flattened
    const long long row = head / heads;           // (b, t) flattened
    const int position = start_pos + static_cast<int>(row % tokens);
    T* vector = x + head * head_dim;
    const RopePair indices = rope_pair(layout, j, head_dim);
    const float cosine = cos_table[static_cast<long long>(position) * half + j];
    const float sine = Inverse ? -sin_table[static_cast<long long>(position) * half + j]
                               : sin_table[static_cast<long long>(position) * half + j];
    const float a = to_float(vector[indices.first]);
    const float b = to_float(vector[indices.second]);
    vector[indices.first] = from_float<T>(a * cosine - b * sine);
    vector[indices.second] = from_float<T>(a * sine + b * cosine);
  }
}

}  // namespace detail

/// Rotary position embedding with device tables up to max_seq_len.
/// \tparam T float, __half or __nv_bfloat16 (the rotation is computed in float).
template <class T>
class RotaryEmbedding<cuda, T> {
 public:
  /// \param head_dim    width of one head; must be even.
  /// \param max_seq_len positions covered by the tables.
  /// \param rope_theta  frequency base: 10000 (LLaMA-2), 500000 (LLaMA-3).
  /// \param layout      pair layout the q/k weights were trained with.
  /// \param scaling     frequency scaling (LLaMA-3.1: RopeScaling::llama3(8)).
  RotaryEmbedding(index_t head_dim, index_t max_seq_len, double rope_theta, RopeLayout layout,
                  RopeScaling scaling = {})
      : head_dim_(head_dim),
        layout_(layout),
        inv_freq_((detail::check_rope_arguments(head_dim, max_seq_len, rope_theta, scaling),
                   detail::rope_frequencies(head_dim, rope_theta, scaling))),
        cos_({max_seq_len, head_dim / 2}),
        sin_({max_seq_len, head_dim / 2}) {
    detail::check_cuda_scalar<T>();
    detail::checked_int("RotaryEmbedding<cuda>", "max_seq_len · head_dim",
                        max_seq_len * head_dim);
    const index_t half = head_dim / 2;
    std::vector<float> cos_host(static_cast<std::size_t>(max_seq_len * half));
    std::vector<float> sin_host(cos_host.size());
    for (index_t position = 0; position < max_seq_len; ++position)
      for (index_t j = 0; j < half; ++j) {
        const double angle = static_cast<double>(position) * inv_freq_[static_cast<std::size_t>(j)];
        cos_host[static_cast<std::size_t>(position * half + j)] = static_cast<float>(std::cos(angle));
        sin_host[static_cast<std::size_t>(position * half + j)] = static_cast<float>(std::sin(angle));
      }
    detail::allocator<cuda>::copy_from_host(cos_.data(), cos_host.data(), cos_host.size() * sizeof(float));
    detail::allocator<cuda>::copy_from_host(sin_.data(), sin_host.data(), sin_host.size() * sizeof(float));
  }

  explicit RotaryEmbedding(const ModelConfig& config)
      : RotaryEmbedding(config.head_dim, config.max_seq_len, config.rope_theta, config.rope_layout,
                        config.rope_scaling) {}

  index_t head_dim() const { return head_dim_; }
  index_t max_seq_len() const { return cos_.shape(0); }
  RopeLayout layout() const { return layout_; }
  /// θ_j after scaling, j = 0 .. head_dim/2 − 1.
  const std::vector<double>& inv_freq() const { return inv_freq_; }

  /// Rotates x: [batch, tokens, heads, head_dim] (device memory) in place, token t at position
  /// start_pos + t; asynchronous on ctx's stream. Only rope::elementwise runs on the GPU.
  void apply(const Context<cuda>& ctx, const TensorView<T, 4>& x, index_t start_pos,
             rope::elementwise = {}) const {
    launch<false>(ctx, "RotaryEmbedding<cuda>::apply", "x", x, start_pos);
  }

  /// Backward of apply(): every pair turned by −m·θ_j, in place (grad holds d_out, then d_x).
  void backward(const Context<cuda>& ctx, const TensorView<T, 4>& grad, index_t start_pos) const {
    launch<true>(ctx, "RotaryEmbedding<cuda>::backward", "grad", grad, start_pos);
  }

 private:
  template <bool Inverse>
  void launch(const Context<cuda>& ctx, const char* where, const char* name,
              const TensorView<T, 4>& x, index_t start_pos) const {
    detail::check_rope_rows(where, name, x, start_pos, head_dim_, max_seq_len());
    const long long pairs = static_cast<long long>(x.size() / 2);
    if (pairs == 0) return;
    const int tokens = detail::checked_int(where, "tokens", x.shape(1));
    const int heads = detail::checked_int(where, "heads", x.shape(2));
    constexpr int threads = 256;
    const long long wanted = (pairs + threads - 1) / threads;
    const long long limit = static_cast<long long>(ctx.multiprocessor_count()) * 32;
    const int blocks = static_cast<int>(wanted < limit ? wanted : limit);
    detail::rope_turn<T, Inverse><<<blocks, threads, 0, ctx.stream()>>>(
        x.data(), cos_.data(), sin_.data(), pairs, tokens, heads, static_cast<int>(head_dim_),
        static_cast<int>(start_pos), layout_);
    LLAMABLOCKS_CUDA_CHECK_LAUNCH();
  }

  index_t head_dim_;
  RopeLayout layout_;
  std::vector<double> inv_freq_;
  Tensor<float, 2, cuda> cos_;
  Tensor<float, 2, cuda> sin_;
};

}  // namespace llamablocks
