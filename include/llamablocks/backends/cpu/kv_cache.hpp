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
class KVCache<cpu, T> {
 public:
  /// \param batch        sequences decoded together.
  /// \param n_kv_heads   key/value heads of the attention layer (not its query heads).
  /// \param head_dim     width of one head.
  /// \param max_seq_len  capacity in positions.
  KVCache(index_t batch, index_t n_kv_heads, index_t head_dim, index_t max_seq_len)
      : keys_(detail::kv_cache_shape(batch, n_kv_heads, head_dim, max_seq_len)),
        values_(keys_.shape()) {}

  KVCache(const ModelConfig& config, index_t batch)
      : KVCache(batch, config.n_kv_heads, config.head_dim, config.max_seq_len) {}

  index_t batch() const { return keys_.shape(0); }
  index_t n_kv_heads() const { return keys_.shape(1); }
  index_t max_seq_len() const { return keys_.shape(2); }
  index_t head_dim() const { return keys_.shape(3); }
  /// Filled positions, the same for every sequence of the batch.
  index_t length() const { return length_; }

  /// [batch, n_kv_heads, max_seq_len, head_dim]; positions >= length() are unspecified.
  TensorView<const T, 4> keys() const { return keys_.cview(); }
  TensorView<const T, 4> values() const { return values_.cview(); }

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

  /// Forgets positions >= new_length; 0 <= new_length <= length().
  void truncate(index_t new_length) {
    detail::check_kv_cache_truncate(*this, new_length);
    length_ = new_length;
  }

  void reset() { length_ = 0; }

 private:
  Tensor<T, 4, cpu> keys_;
  Tensor<T, 4, cpu> values_;
  index_t length_ = 0;
};

}  // namespace llamablocks
