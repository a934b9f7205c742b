// SavedTensor<T, Rank, Backend>: one tensor a training-mode forward keeps for its backward pass
// (the input x of a projection, the gate and up of SwiGLU, ...), inside a module's caller-owned
// Activations object.
//
// Its storage only grows, so every step of a training loop after the first allocates nothing, and
// it remembers the shape it was saved with, so backward can check that the gradient it is given
// belongs to this forward and refuse to run when no training forward has filled it.
#pragma once

#include "llamablocks/core/tensor.hpp"
#include "llamablocks/core/workspace.hpp"

namespace llamablocks {
namespace detail {

template <class T, int Rank, class Backend = cpu>
class SavedTensor {
 public:
  /// Storage of `shape`, contents unspecified until the caller writes them; marks it saved.
  /// Call only after every argument of the forward has been checked.
  TensorView<T, Rank> prepare(const Shape<Rank>& shape) {
    view_ = storage_.template get<Rank>(shape);
    saved_ = true;
    return view_;
  }

  /// Whether a training forward has filled it.
  bool saved() const { return saved_; }
  const Shape<Rank>& shape() const { return view_.shape(); }
  TensorView<const T, Rank> view() const { return view_; }

 private:
  Workspace<T, Backend> storage_;
  TensorView<T, Rank> view_;
  bool saved_ = false;
};

/// Throws config_error unless a training forward has filled `saved` (backward needs it).
template <class T, int Rank, class Backend>
void expect_saved(const char* where, const SavedTensor<T, Rank, Backend>& saved) {
  require<config_error>(saved.saved(), where,
                        ": activations hold no training forward; call forward(ctx, ..., "
                        "activations) before backward");
}

}  // namespace detail
}  // namespace llamablocks
