// ParameterRef<T, Backend>: a non-owning, rank-erased handle on a Parameter<T, Rank, Backend> (host
// parameters by default; cuda ones for the device optimizer in backends/cuda/optimizer.cuh), so
// that an optimizer can hold the norm gains (Rank 1) and the matrices (Rank 2) of a model in one
// list.
//
// Why type erasure and not a visitor: AdamW, clipping and initialization treat every parameter as
// a flat array of size() elements; the rank only matters for its name and its shape. A handle of
// one type lets the optimizer keep its per-parameter state (m, v, step) in a plain vector beside
// the handles, and lets callers build the list once from any mix of modules. A visitor would have
// to be re-run, with its own traversal of the model, for every step.
//
// The handle stores the Parameter's address and a table of functions instantiated for its rank;
// it does not cache the weight or gradient pointers, because assign() and copy_from() may replace
// a parameter's storage and enable_grad() may allocate its gradient after the handle was made.
// The Parameter must outlive every handle on it (as a module outlives its optimizer).
#pragma once

#include "llamablocks/core/backend.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/tensor.hpp"

#include <string>

namespace llamablocks {
namespace detail {

/// The operations ParameterRef needs, instantiated once per (T, Rank).
template <class T>
struct ParameterAccess {
  const std::string& (*name)(const void*);
  index_t (*size)(const void*);
  int rank;
  bool (*has_grad)(const void*);
  bool (*is_packed)(const void*);
  T* (*data)(void*);  // throws config_error when packed
  T* (*grad)(void*);  // throws config_error without a gradient
};

template <class T, int Rank, class Backend>
const ParameterAccess<T>& parameter_access() {
  using P = Parameter<T, Rank, Backend>;
  static const ParameterAccess<T> access{
      [](const void* p) -> const std::string& { return static_cast<const P*>(p)->name(); },
      [](const void* p) { return static_cast<const P*>(p)->size(); },
      Rank,
      [](const void* p) { return static_cast<const P*>(p)->has_grad(); },
      [](const void* p) -> bool {
        if constexpr (Rank == 2) {
          return static_cast<const P*>(p)->is_packed();
        } else {
          static_cast<void>(p);  // only matrices hold packed weights
          return false;
        }
      },
      [](void* p) { return static_cast<P*>(p)->view().data(); },
      [](void* p) { return static_cast<P*>(p)->grad().data(); },
  };
  return access;
}

}  // namespace detail

/// A rank-erased reference to a Parameter<T, Rank, Backend> (see the header comment).
/// \tparam T       element type of the weight and its gradient.
/// \tparam Backend whose memory holds them; data() and grad() point there.
template <class T, class Backend = cpu>
class ParameterRef {
 public:
  /// \param parameter a parameter of any rank; it must outlive the reference.
  template <int Rank>
  ParameterRef(Parameter<T, Rank, Backend>& parameter)  // NOLINT: implicit, to build lists with {}
      : object_(&parameter), access_(&detail::parameter_access<T, Rank, Backend>()) {}

  const std::string& name() const { return access_->name(object_); }
  index_t size() const { return access_->size(object_); }
  int rank() const { return access_->rank; }
  bool has_grad() const { return access_->has_grad(object_); }
  bool is_packed() const { return access_->is_packed(object_); }
  /// The weights, flat; throws config_error for a parameter holding packed weights.
  T* data() const { return access_->data(object_); }
  /// The gradient, flat; throws config_error unless enable_grad() ran.
  T* grad() const { return access_->grad(object_); }

  /// Whether both refer to the same Parameter object.
  bool same_parameter(const ParameterRef& other) const { return object_ == other.object_; }

 private:
  void* object_;
  const detail::ParameterAccess<T>* access_;
};

}  // namespace llamablocks
