// KVCache: keys and values of past positions, so that decoding one token attends to the whole
// sequence without recomputing it.
//   keys, values: [batch, n_kv_heads, max_seq_len, head_dim]
// Preallocated for max_seq_len and sized by n_kv_heads (not n_heads: with GQA the cache is
// n_heads / n_kv_heads times smaller). Each head's positions are contiguous, so attention reads
// one [length, head_dim] block per kv head. All sequences of the batch share one length.
//
// API (every backend):
//   KVCache(index_t batch, index_t n_kv_heads, index_t head_dim, index_t max_seq_len)
//   KVCache(const ModelConfig&, index_t batch)
//   index_t length() const                          positions filled, the same for every sequence
//   void write(Context<Backend>&, index_t start_pos, k, v)
//                                                   k, v: [batch, tokens, n_kv_heads, head_dim];
//       stores positions start_pos .. start_pos+tokens-1 and sets length to start_pos+tokens.
//       start_pos may rewind (<= length); past max_seq_len it throws and changes nothing.
//       (cpu also keeps write(start_pos, k, v) without the context.)
//   void truncate(index_t new_length), void reset()
#pragma once

#include "llamablocks/core/backend.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/tensor.hpp"

namespace llamablocks {

namespace detail {

/// What KVCache holds on every backend: the two tensors, the filled length and everything that
/// does not move data. Each backend's specialization derives from it and adds write().
template <class Backend, class T>
class KVCacheStorage {
 public:
  /// \param batch        sequences decoded together.
  /// \param n_kv_heads   key/value heads of the attention layer (not its query heads).
  /// \param head_dim     width of one head.
  /// \param max_seq_len  capacity in positions.
  KVCacheStorage(index_t batch, index_t n_kv_heads, index_t head_dim, index_t max_seq_len)
      : keys_(kv_cache_shape(batch, n_kv_heads, head_dim, max_seq_len)), values_(keys_.shape()) {}

  index_t batch() const { return keys_.shape(0); }
  index_t n_kv_heads() const { return keys_.shape(1); }
  index_t max_seq_len() const { return keys_.shape(2); }
  index_t head_dim() const { return keys_.shape(3); }
  /// Filled positions, the same for every sequence of the batch.
  index_t length() const { return length_; }

  /// [batch, n_kv_heads, max_seq_len, head_dim] in the backend's memory; positions >= length()
  /// are unspecified.
  TensorView<const T, 4> keys() const { return keys_.cview(); }
  TensorView<const T, 4> values() const { return values_.cview(); }

  /// Forgets positions >= new_length; 0 <= new_length <= length().
  void truncate(index_t new_length) {
    check_kv_cache_truncate(*this, new_length);
    length_ = new_length;
  }

  void reset() { length_ = 0; }

 protected:
  Tensor<T, 4, Backend> keys_;
  Tensor<T, 4, Backend> values_;
  index_t length_ = 0;
};

}  // namespace detail

/// Preallocated key/value cache of one attention layer.
/// \tparam Backend backend tag (cpu, cuda).
/// \tparam T       storage type of keys and values.
template <class Backend, class T = float>
class KVCache {
  static_assert(detail::dependent_false<Backend, T>,
                "KVCache: no specialization for this backend; include llamablocks/llamablocks.hpp "
                "for cpu or llamablocks/cuda.cuh for cuda");
};

}  // namespace llamablocks
