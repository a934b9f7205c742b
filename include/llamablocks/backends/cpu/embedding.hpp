// Embedding on the cpu backend: a row copy per token, after every id has been range-checked.
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/modules/embedding.hpp"

#include <cstdint>
#include <cstring>

namespace llamablocks {

template <class T>
class Embedding<cpu, T> {
 public:
  /// \param vocab_size rows of the table (valid token ids are 0 .. vocab_size-1).
  /// \param dim        width of each embedding vector.
  Embedding(index_t vocab_size, index_t dim)
      : weight_("Embedding.weight",
                {checked("vocab_size", vocab_size), checked("dim", dim)}) {
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
    const char* where = "Embedding::forward";
    detail::expect_shape(where, "tokens", tokens, tokens.shape());
    detail::expect_shape(where, "out", out, {tokens.shape(0), tokens.shape(1), dim()});
    for (index_t b = 0; b < tokens.shape(0); ++b)
      for (index_t t = 0; t < tokens.shape(1); ++t) {
        const std::int32_t id = tokens(b, t);
        detail::require<range_error>(id >= 0 && id < vocab_size(), where, ": token id ", id,
                                     " at [", b, ", ", t, "] is outside the vocabulary [0, ",
                                     vocab_size(), ")");
      }
    const T* table = weight_.view().data();
    const index_t width = dim();
    detail::parallel_for(ctx, tokens.size(), [&](index_t i) {
      std::memcpy(out.data() + i * width, table + tokens.data()[i] * width,
                  static_cast<std::size_t>(width) * sizeof(T));
    });
  }

 private:
  static index_t checked(const char* name, index_t value) {
    detail::require<config_error>(value > 0, "Embedding: ", name, " must be > 0, got ", value);
    return value;
  }

  Parameter<T, 2, cpu> weight_;
};

}  // namespace llamablocks
