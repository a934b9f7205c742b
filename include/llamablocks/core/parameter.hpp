// Parameter<T, Rank, Backend>: a named weight of fixed shape owned by a module.
//
// A module allocates its parameters zero-filled (norm gains: ones) at construction. They are filled
// either by copying host data (copy_from) or by adopting storage of the same shape without a copy
// (assign: a checkpoint tensor borrowed in place, or another parameter's storage for a tied head).
// The shape never changes, so a module's invariants hold whatever is loaded.
#pragma once

#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"

#include <string>
#include <utility>

namespace llamablocks {

/// \tparam T       element type of the stored weight.
/// \tparam Rank    number of dimensions (1 for norm gains, 2 for projection matrices).
/// \tparam Backend whose memory holds the weight.
template <class T, int Rank, class Backend = cpu>
class Parameter {
 public:
  Parameter(std::string name, const Shape<Rank>& shape) : name_(std::move(name)), tensor_(shape) {}

  const std::string& name() const { return name_; }
  const Shape<Rank>& shape() const { return tensor_.shape(); }
  index_t size() const { return tensor_.size(); }

  TensorView<T, Rank> view() { return tensor_.view(); }
  TensorView<const T, Rank> view() const { return tensor_.cview(); }

  /// Copies host data of the same shape into the parameter.
  void copy_from(const TensorView<const T, Rank>& host_source) {
    detail::expect_shape(name_.c_str(), "source", host_source, shape());
    detail::allocator<Backend>::copy_from_host(tensor_.data(), host_source.data(),
                                               static_cast<std::size_t>(size()) * sizeof(T));
  }

  /// Replaces the storage by `tensor` (same shape), without copying its data.
  void assign(Tensor<T, Rank, Backend>&& tensor) {
    detail::require<shape_error>(tensor.shape() == shape(), name_, ": cannot assign a tensor of shape ",
                                 detail::format_shape(tensor.shape()), ", expected ",
                                 detail::format_shape(shape()));
    tensor_ = std::move(tensor);
  }

  /// A tensor sharing this parameter's storage, to be assign()ed to another parameter (tying).
  Tensor<T, Rank, Backend> share() const { return tensor_.share(); }

 private:
  std::string name_;
  Tensor<T, Rank, Backend> tensor_;
};

}  // namespace llamablocks
