// KVCache on the cpu backend: two host tensors [batch, n_kv_heads, max_seq_len, head_dim].
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/core/config.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/modules/kv_cache.hpp"

#include <cstring>

namespace llamablocks {

template <class T>
class KVCache<cpu, T> : public detail::KVCacheStorage<cpu, T> {
  using Storage = detail::KVCacheStorage<cpu, T>;
  using Storage::keys_, Storage::values_, Storage::length_;

 public:
  using Storage::batch, Storage::n_kv_heads, Storage::max_seq_len, Storage::head_dim;

  /// \param sequences    sequences decoded together (batch()).
  /// \param kv_heads     key/value heads of the attention layer, not its query heads (n_kv_heads()).
  /// \param head_width   width of one head (head_dim()).
  /// \param capacity     positions it can hold (max_seq_len()).
  KVCache(index_t sequences, index_t kv_heads, index_t head_width, index_t capacity)
      : Storage(sequences, kv_heads, head_width, capacity) {}

  KVCache(const ModelConfig& config, index_t sequences)
      : KVCache(sequences, config.n_kv_heads, config.head_dim, config.max_seq_len) {}

  /// Stores k, v: [batch, tokens, n_kv_heads, head_dim] at positions start_pos .. and sets
  /// length() = start_pos + tokens. start_pos <= length() (a smaller one rewinds). On any error
  /// nothing is written.
  void write(index_t start_pos, const TensorView<const T, 4>& k, const TensorView<const T, 4>& v) {
    detail::check_kv_cache_write(*this, start_pos, k, v);
    const index_t tokens = k.shape(1);
    const std::size_t head_bytes = static_cast<std::size_t>(head_dim()) * sizeof(T);
    for (index_t b = 0; b < batch(); ++b)
      for (index_t t = 0; t < tokens; ++t)
        for (index_t h = 0; h < n_kv_heads(); ++h) {
          std::memcpy(&keys_.view()(b, h, start_pos + t, 0), &k(b, t, h, 0), head_bytes);
          std::memcpy(&values_.view()(b, h, start_pos + t, 0), &v(b, t, h, 0), head_bytes);
        }
    length_ = start_pos + tokens;
  }

  /// The same, in the form every backend offers (the cuda one needs the context's stream).
  void write(const Context<cpu>&, index_t start_pos, const TensorView<const T, 4>& k,
             const TensorView<const T, 4>& v) {
    write(start_pos, k, v);
  }
};

}  // namespace llamablocks
