// Workspace<T, Backend>: scratch memory that grows to the largest request and is then reused, so
// that repeated calls of the same size (every decode step) allocate nothing.
#pragma once

#include "llamablocks/core/tensor.hpp"

namespace llamablocks {

/// Grow-only scratch buffer. A view handed out is valid until the next call to get().
template <class T, class Backend = cpu>
class Workspace {
 public:
  /// A contiguous view of `shape`; the contents are unspecified.
  template <int Rank>
  TensorView<T, Rank> get(const Shape<Rank>& shape) {
    const index_t count = detail::checked_element_count(shape);
    if (count > buffer_.size()) buffer_ = Tensor<T, 1, Backend>(Shape<1>{count});
    return TensorView<T, Rank>(buffer_.data(), shape);
  }

  /// Elements currently allocated.
  index_t capacity() const { return buffer_.size(); }

 private:
  Tensor<T, 1, Backend> buffer_;
};

}  // namespace llamablocks
