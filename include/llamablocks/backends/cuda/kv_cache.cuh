// KVCache on the cuda backend: keys and values [batch, n_kv_heads, max_seq_len, head_dim] in device
// memory, the cpu backend's layout: the positions of one (sequence, kv head) are contiguous, so the
// attention kernels read a block of positions of one kv head as one coalesced stretch.
// write() scatters k, v: [batch, tokens, n_kv_heads, head_dim] to their positions with one kernel
// (16-byte accesses when head_dim allows); length() is kept on the host.
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/modules/kv_cache.hpp"

namespace llamablocks {
namespace detail {

/// cache[b, h, start_pos + t, :] = source[b, t, h, :] for keys and values, in accesses of Width.
/// `vectors` counts accesses of one head (head_dim / Width).
template <class T, int Width>
__global__ void kv_cache_scatter(const T* __restrict__ k, const T* __restrict__ v,
                                 T* __restrict__ keys, T* __restrict__ values, long long accesses,
                                 int tokens, int n_kv_heads, int vectors, int max_seq_len,
                                 int start_pos) {
  using access = vector_of<T, Width>;
  const auto* k_vec = reinterpret_cast<const access*>(k);
  const auto* v_vec = reinterpret_cast<const access*>(v);
  auto* keys_vec = reinterpret_cast<access*>(keys);
  auto* values_vec = reinterpret_cast<access*>(values);
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < accesses;
       i += step) {
    // i indexes the source [batch, tokens, n_kv_heads, vectors].
    const int e = static_cast<int>(i % vectors);
    const long long head_row = i / vectors;
    const int h = static_cast<int>(head_row % n_kv_heads);
    const long long token_row = head_row / n_kv_heads;
    const int t = static_cast<int>(token_row % tokens);
    const long long b = token_row / tokens;
    const long long target =
        ((b * n_kv_heads + h) * max_seq_len + start_pos + t) * static_cast<long long>(vectors) + e;
    keys_vec[target] = k_vec[i];
    values_vec[target] = v_vec[i];
  }
}

}  // namespace detail

/// Preallocated key/value cache of one attention layer in device memory.
/// \tparam T float, __half or __nv_bfloat16.
template <class T>
class KVCache<cuda, T> : public detail::KVCacheStorage<cuda, T> {
  using Storage = detail::KVCacheStorage<cuda, T>;
  using Storage::keys_, Storage::values_, Storage::length_;

 public:
  using Storage::batch, Storage::n_kv_heads, Storage::max_seq_len, Storage::head_dim;

  /// \param sequences    sequences decoded together (batch()).
  /// \param kv_heads     key/value heads of the attention layer, not its query heads (n_kv_heads()).
  /// \param head_width   width of one head (head_dim()).
  /// \param capacity     positions it can hold (max_seq_len()).
  KVCache(index_t sequences, index_t kv_heads, index_t head_width, index_t capacity)
      : Storage(sequences, kv_heads, head_width, capacity) {
    detail::check_cuda_scalar<T>();
    detail::checked_int("KVCache<cuda>", "max_seq_len · head_dim", capacity * head_width);
  }

  KVCache(const ModelConfig& config, index_t sequences)
      : KVCache(sequences, config.n_kv_heads, config.head_dim, config.max_seq_len) {}

  /// Stores k, v: [batch, tokens, n_kv_heads, head_dim] (device memory) at positions start_pos ..
  /// and sets length() = start_pos + tokens; asynchronous on ctx's stream. start_pos <= length()
  /// (a smaller one rewinds). On any error nothing is written.
  void write(const Context<cuda>& ctx, index_t start_pos, const TensorView<const T, 4>& k,
             const TensorView<const T, 4>& v) {
    detail::check_kv_cache_write(*this, start_pos, k, v);
    const index_t tokens = k.shape(1);
    if (tokens > 0) {
      const int head = static_cast<int>(head_dim());
      constexpr int width = detail::vector_width<T>;
      const bool vectorizable = head % width == 0 && detail::is_aligned(k.data(), 16) &&
                                detail::is_aligned(v.data(), 16);
      if (vectorizable)
        launch<width>(ctx, k, v, start_pos);
      else
        launch<1>(ctx, k, v, start_pos);
    }
    length_ = start_pos + tokens;
  }

 private:
  template <int Width>
  void launch(const Context<cuda>& ctx, const TensorView<const T, 4>& k,
              const TensorView<const T, 4>& v, index_t start_pos) {
    const int vectors = static_cast<int>(head_dim()) / Width;
    const long long accesses = static_cast<long long>(k.size() / Width);
    constexpr int threads = 256;
    const long long wanted = (accesses + threads - 1) / threads;
    const long long limit = static_cast<long long>(ctx.multiprocessor_count()) * 32;
    const int blocks = static_cast<int>(wanted < limit ? wanted : limit);
    detail::kv_cache_scatter<T, Width><<<blocks, threads, 0, ctx.stream()>>>(
        k.data(), v.data(), keys_.data(), values_.data(), accesses,
        static_cast<int>(k.shape(1)), static_cast<int>(n_kv_heads()), vectors,
        static_cast<int>(max_seq_len()), static_cast<int>(start_pos));
    LLAMABLOCKS_CUDA_CHECK_LAUNCH();
  }
};

}  // namespace llamablocks
