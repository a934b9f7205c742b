// Embedding on the cpu backend: a row copy per token, after every id has been range-checked.
// Training: the forward with Activations keeps the ids; backward scatter-adds each row of d_out into
// the gradient row of its id (embedding_backward):
//   d_table[tokens[b, t], :] += d_out[b, t, :]
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/saved_tensor.hpp"
#include "llamablocks/modules/embedding.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace llamablocks {

/// d_table[tokens[i], :] += d_out[i, :] for every row i (ids repeat, so rows are added in order).
/// tokens: [rows] with ids in [0, vocab_size) (range_error naming the first other id, before
/// anything is written); d_out: [rows, dim]; d_table: [vocab_size, dim].
template <class T>
void embedding_backward(const Context<cpu>& ctx, const TensorView<const std::int32_t, 1>& tokens,
                        const TensorView<const T, 2>& d_out, const TensorView<T, 2>& d_table) {
  detail::check_cpu_scalar<T>();
  const char* where = "embedding_backward";
  const index_t vocab_size = d_table.shape(0);
  const index_t dim = d_table.shape(1);
  detail::expect_shape(where, "tokens", tokens, tokens.shape());
  detail::expect_shape(where, "d_out", d_out, {tokens.shape(0), dim});
  detail::expect_shape(where, "d_table", d_table, d_table.shape());
  for (index_t i = 0; i < tokens.shape(0); ++i)
    detail::require<range_error>(tokens(i) >= 0 && tokens(i) < vocab_size, where, ": token id ",
                                 tokens(i), " at ", i, " is outside the vocabulary [0, ",
                                 vocab_size, ")");
  // Columns split over threads: every thread walks all ids, so repeated ids never race.
  constexpr index_t column_block = 64;
  detail::parallel_for(ctx, (dim + column_block - 1) / column_block, [&](index_t block) {
    const index_t first = block * column_block;
    const index_t width = std::min(column_block, dim - first);
    for (index_t i = 0; i < tokens.shape(0); ++i) {
      T* gradient_row = d_table.data() + tokens(i) * dim + first;
      const T* d_row = d_out.data() + i * dim + first;
      for (index_t j = 0; j < width; ++j) gradient_row[j] += d_row[j];
    }
  });
}

template <class T>
class Embedding<cpu, T> {
 public:
  /// \param vocab_size rows of the table (valid token ids are 0 .. vocab_size-1).
  /// \param dim        width of each embedding vector.
  Embedding(index_t vocab_size, index_t dim)
      : weight_("Embedding.weight",
                {detail::check_positive("Embedding", "vocab_size", vocab_size),
                 detail::check_positive("Embedding", "dim", dim)}) {
    detail::check_cpu_scalar<T>();
  }

  index_t vocab_size() const { return weight_.shape()[0]; }
  index_t dim() const { return weight_.shape()[1]; }
  Parameter<T, 2, cpu>& weight() { return weight_; }
  const Parameter<T, 2, cpu>& weight() const { return weight_; }

  /// tokens: [batch, tokens] -> out: [batch, tokens, dim]. An id outside [0, vocab_size) throws
  /// range_error naming its position and value, before anything is written.
  void forward(const Context<cpu>& ctx, const TensorView<const std::int32_t, 2>& tokens,
               const TensorView<T, 3>& out) const {
    check_forward("Embedding::forward", tokens, out);
    const T* table = weight_.view().data();
    const index_t width = dim();
    detail::parallel_for(ctx, tokens.size(), [&](index_t i) {
      std::memcpy(out.data() + i * width, table + tokens.data()[i] * width,
                  static_cast<std::size_t>(width) * sizeof(T));
    });
  }

  /// What the training forward keeps for backward, owned by the caller (one per call site).
  struct Activations {
    detail::SavedTensor<std::int32_t, 2, cpu> tokens;  // [batch, tokens]
  };

  /// Allocates weight().grad() (training only).
  void enable_grad() { weight_.enable_grad(); }
  void zero_grad() { weight_.zero_grad(); }

  /// Training forward: the same output as forward(), and the ids kept in `activations`.
  void forward(const Context<cpu>& ctx, const TensorView<const std::int32_t, 2>& tokens,
               const TensorView<T, 3>& out, Activations& activations) const {
    check_forward("Embedding::forward", tokens, out);
    const auto saved_tokens = activations.tokens.prepare(tokens.shape());
    std::copy_n(tokens.data(), tokens.size(), saved_tokens.data());
    forward(ctx, tokens, out);
  }

  /// d_out: [batch, tokens, dim]; weight().grad() += the scatter of d_out's rows onto the rows of
  /// their ids (accumulated). Token ids have no gradient. Needs enable_grad() and a training
  /// forward into `activations`; throws before writing anything otherwise.
  void backward(const Context<cpu>& ctx, const Activations& activations,
                const TensorView<const T, 3>& d_out) {
    const char* where = "Embedding::backward";
    detail::expect_saved(where, activations.tokens);
    const Shape<2> tokens_shape = activations.tokens.shape();
    detail::expect_shape(where, "d_out", d_out, {tokens_shape[0], tokens_shape[1], dim()});
    const TensorView<T, 2> d_table = weight_.grad();
    // embedding_backward checks the ids against this table: activations saved by an Embedding
    // with a larger vocabulary are refused there, before anything is written.
    const index_t rows = tokens_shape[0] * tokens_shape[1];
    embedding_backward<T>(ctx, reshape<1>(activations.tokens.view(), {rows}),
                          reshape<2>(d_out, {rows, dim()}), d_table);
  }

 private:
  void check_forward(const char* where, const TensorView<const std::int32_t, 2>& tokens,
                     const TensorView<T, 3>& out) const {
    detail::expect_shape(where, "tokens", tokens, tokens.shape());
    detail::expect_shape(where, "out", out, {tokens.shape(0), tokens.shape(1), dim()});
    check_ids(where, tokens);
  }

  void check_ids(const char* where, const TensorView<const std::int32_t, 2>& tokens) const {
    for (index_t b = 0; b < tokens.shape(0); ++b)
      for (index_t t = 0; t < tokens.shape(1); ++t) {
        const std::int32_t id = tokens(b, t);
        detail::require<range_error>(id >= 0 && id < vocab_size(), where, ": token id ", id,
                                     " at [", b, ", ", t, "] is outside the vocabulary [0, ",
                                     vocab_size(), ")");
      }
  }

  Parameter<T, 2, cpu> weight_;
};

}  // namespace llamablocks
