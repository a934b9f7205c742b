// Parameter<T, Rank, Backend>: a named weight of fixed shape owned by a module.
//
// A module allocates its parameters zero-filled (norm gains: ones) at construction. They are filled
// either by copying host data (copy_from) or by adopting storage of the same shape without a copy
// (assign: a checkpoint tensor borrowed in place, or another parameter's storage for a tied head).
// The shape never changes, so a module's invariants hold whatever is loaded.
//
// Tied weights (a head that reuses the token embedding): tie(source) makes a parameter share
// both the storage and the gradient of `source`, so the backward passes of both users add into one
// gradient (the gradient of a weight used twice is the sum of the two). assign(source.share())
// shares the weights only, which is all inference needs.
//
// A matrix (Rank 2) may instead hold its weights packed in another WeightType (f16, bf16, Q8_0 as
// GGUF stores them, see core/weight_type.hpp): assign_packed() adopts such rows without widening
// them, and the projections of the backends that support it (cpu: packed_matmul) read them as
// they are. view() of a packed parameter throws, since there is no float32 copy to show.
#pragma once

#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/core/weight_type.hpp"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace llamablocks {

/// \tparam T       element type of the stored weight.
/// \tparam Rank    number of dimensions (1 for norm gains, 2 for projection matrices).
/// \tparam Backend whose memory holds the weight.
template <class T, int Rank, class Backend = cpu>
class Parameter {
 public:
  Parameter(std::string name, const Shape<Rank>& shape)
      : name_(std::move(name)), tensor_(shape), grad_(std::make_shared<Tensor<T, Rank, Backend>>()) {}

  const std::string& name() const { return name_; }
  const Shape<Rank>& shape() const { return tensor_.shape(); }
  index_t size() const { return tensor_.size(); }

  TensorView<T, Rank> view() {
    expect_unpacked();
    return tensor_.view();
  }
  TensorView<const T, Rank> view() const {
    expect_unpacked();
    return tensor_.cview();
  }

  /// Copies host data of the same shape into the parameter (which then holds T again).
  void copy_from(const TensorView<const T, Rank>& host_source) {
    detail::expect_shape(name_.c_str(), "source", host_source, shape());
    if (packed_) {
      tensor_ = Tensor<T, Rank, Backend>(shape());
      packed_.reset();
    }
    detail::allocator<Backend>::copy_from_host(tensor_.data(), host_source.data(),
                                               static_cast<std::size_t>(size()) * sizeof(T));
  }

  /// Replaces the storage by `tensor` (same shape), without copying its data. Ends a tie().
  void assign(Tensor<T, Rank, Backend>&& tensor) {
    detail::require<shape_error>(tensor.shape() == shape(), name_, ": cannot assign a tensor of shape ",
                                 detail::format_shape(tensor.shape()), ", expected ",
                                 detail::format_shape(shape()));
    tensor_ = std::move(tensor);
    packed_.reset();
    untie_grad();
  }

  /// Holds `weight` (rows × cols = this matrix's shape, any WeightType) in place of the T storage,
  /// without copying it; `owner` keeps its bytes alive. Throws shape_error for another shape or
  /// rows shorter than the type needs.
  void assign_packed(const PackedMatrixView& weight, std::shared_ptr<const void> owner) {
    static_assert(Rank == 2, "Parameter::assign_packed: only matrices hold packed weights");
    detail::require<shape_error>(weight.rows == shape()[0] && weight.cols == shape()[1], name_,
                                 ": cannot hold a packed matrix of shape [", weight.rows, ", ",
                                 weight.cols, "], expected ", detail::format_shape(shape()));
    detail::require<shape_error>(weight.data != nullptr &&
                                     weight.row_bytes >= weight_row_bytes(weight.type, weight.cols),
                                 name_, ": packed ", to_string(weight.type), " rows of ",
                                 weight.row_bytes, " bytes are too short for ", weight.cols,
                                 " columns");
    packed_ = Packed{weight, std::move(owner)};
    tensor_ = Tensor<T, Rank, Backend>(shape());  // releases a borrowed buffer; untouched pages
    untie_grad();
  }

  /// The packed weights, when assign_packed() put them there.
  std::optional<PackedMatrixView> packed() const {
    if (!packed_) return std::nullopt;
    return packed_->view;
  }
  /// Whether assign_packed() put packed weights here.
  bool is_packed() const { return packed_.has_value(); }
  /// A shared handle on the packed bytes, to hold the same weights in another parameter.
  std::shared_ptr<const void> packed_owner() const { return packed_ ? packed_->owner : nullptr; }

  /// Allocates the gradient (zero-filled, the weight's shape) unless it is already there; for tied
  /// parameters, the one gradient they share.
  void enable_grad() {
    if (!grad_) grad_ = std::make_shared<Tensor<T, Rank, Backend>>();  // a moved-from parameter
    if (!has_grad()) *grad_ = Tensor<T, Rank, Backend>(shape());
  }
  /// Whether enable_grad() has allocated the gradient.
  bool has_grad() const { return grad_ && grad_->data() != nullptr; }
  /// dLoss/dweight accumulated by backward passes; throws config_error unless enable_grad() ran.
  TensorView<T, Rank> grad() {
    expect_grad();
    return grad_->view();
  }
  TensorView<const T, Rank> grad() const {
    expect_grad();
    return grad_->cview();
  }
  /// Sets the gradient to zero (the start of an accumulation); throws like grad().
  void zero_grad() {
    expect_grad();
    if constexpr (backend_traits<Backend>::host_accessible)
      std::fill_n(grad_->data(), static_cast<std::size_t>(grad_->size()), T(0));
    else
      *grad_ = Tensor<T, Rank, Backend>(shape());
  }

  /// Ties this parameter to `source` (the same shape, holding T): from now on both hold one
  /// storage and one gradient, whichever of them enable_grad() is called on, before or after.
  /// Give an optimizer only one of the two. Throws shape_error for another shape and config_error
  /// when `source` holds packed weights; this parameter is then unchanged.
  void tie(const Parameter& source) {
    detail::require<shape_error>(source.shape() == shape(), name_, ": cannot tie to ", source.name_,
                                 " of shape ", detail::format_shape(source.shape()), ", expected ",
                                 detail::format_shape(shape()));
    source.expect_unpacked();
    tensor_ = source.tensor_.share();
    packed_.reset();
    grad_ = source.grad_;
  }
  /// Whether this parameter and `other` share one gradient (tie()).
  bool shares_grad_with(const Parameter& other) const { return grad_ == other.grad_; }

  /// A tensor sharing this parameter's storage, to be assign()ed to another parameter (tying).
  Tensor<T, Rank, Backend> share() const {
    expect_unpacked();
    return tensor_.share();
  }

 private:
  struct Packed {
    PackedMatrixView view;
    std::shared_ptr<const void> owner;
  };

  void expect_unpacked() const {
    if (packed_)
      throw config_error(detail::concat(name_, " holds packed ", to_string(packed_->view.type),
                                        " weights; read them through packed(), not view()"));
  }

  // New storage ends a tie: the gradient becomes this parameter's own again (zero-filled when
  // there was one), so a backward pass through it no longer adds into the other's.
  void untie_grad() {
    if (!grad_ || grad_.use_count() == 1) return;
    const bool had_grad = has_grad();
    grad_ = std::make_shared<Tensor<T, Rank, Backend>>();
    if (had_grad) *grad_ = Tensor<T, Rank, Backend>(shape());
  }

  void expect_grad() const {
    if (!has_grad())
      throw config_error(detail::concat(name_, " has no gradient; call enable_grad() before training"));
  }

  std::string name_;
  Tensor<T, Rank, Backend> tensor_;
  std::optional<Packed> packed_;
  // The gradient, empty until enable_grad(); shared between tied parameters (tie()), so held by
  // pointer. Parameters move but do not copy, so no two parameters share it by accident.
  std::shared_ptr<Tensor<T, Rank, Backend>> grad_;
};

}  // namespace llamablocks
