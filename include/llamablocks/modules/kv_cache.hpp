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

namespace llamablocks {

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
