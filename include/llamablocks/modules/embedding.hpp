// Embedding: token ids to vectors by row lookup.
//   out[b, t, :] = table[tokens[b, t], :]
//   tokens: [batch, tokens] (int32)   table (weight): [vocab_size, dim]   out: [batch, tokens, dim]
// Every id is checked against vocab_size before anything is written. On cuda the ids are device
// memory, checked on the device; forward then synchronizes the stream once to report a bad one.
//
// API (every backend):
//   Embedding(index_t vocab_size, index_t dim)
//   Parameter<T, 2, Backend>& weight()
//   void forward(Context<Backend>&, TensorView<const std::int32_t, 2> tokens, TensorView<T, 3> out) const
// Training (cpu and cuda, docs/training.md):
//   void enable_grad(), zero_grad()                      weight().grad(), accumulated by backward
//   void forward(ctx, tokens, out, Activations&) const   as forward, keeping the ids
//   void backward(ctx, const Activations&, TensorView<const T, 3> d_out)   scatter-add into grad()
#pragma once

#include "llamablocks/core/backend.hpp"

namespace llamablocks {

/// Token embedding table.
/// \tparam Backend backend tag (cpu, cuda).
/// \tparam T       storage type of the table and the output.
template <class Backend, class T = float>
class Embedding {
  static_assert(detail::dependent_false<Backend, T>,
                "Embedding: no specialization for this backend; include llamablocks/llamablocks.hpp "
                "for cpu or llamablocks/cuda.cuh for cuda");
};

}  // namespace llamablocks
