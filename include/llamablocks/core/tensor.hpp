// TensorView<T, Rank>: a non-owning, row-major view (pointer, shape, strides in elements).
// Tensor<T, Rank, Backend>: an owning, 64-byte aligned, zero-initialized buffer of a backend's
// memory, or a borrowed one kept alive by a shared owner (weights read from a checkpoint).
//
// Shapes are written outermost first, like PyTorch: an activation is [batch, tokens, dim] and
// element (b, t, i) sits at data[b * stride(0) + t * stride(1) + i * stride(2)]. Kernels require
// contiguous views (stride(Rank-1) == 1 and each stride the product of the inner extents) and say
// so by name when given anything else.
#pragma once

#include "llamablocks/core/backend.hpp"
#include "llamablocks/core/error.hpp"

#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define LLAMABLOCKS_HAS_MMAP 1
#else
#define LLAMABLOCKS_HAS_MMAP 0
#endif

namespace llamablocks {

using index_t = std::int64_t;

template <int Rank>
using Shape = std::array<index_t, Rank>;

namespace detail {

/// A shape printed as "[2, 7, 64]" when streamed. It formats nothing until then, so argument
/// checks on hot paths cost a copy of a few integers unless they fail.
template <std::size_t Rank>
struct ShapeText {
  std::array<index_t, Rank> shape;
  friend std::ostream& operator<<(std::ostream& out, const ShapeText& text) {
    out << '[';
    for (std::size_t i = 0; i < Rank; ++i) out << (i ? ", " : "") << text.shape[i];
    return out << ']';
  }
};

template <std::size_t Rank>
ShapeText<Rank> format_shape(const std::array<index_t, Rank>& shape) {
  return {shape};
}

/// "[d0, d1, ...]" of a shape whose rank is known only at run time (a file's tensor header).
inline std::string format_extents(const std::vector<index_t>& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

/// Row-major strides of a contiguous tensor of the given shape.
template <std::size_t Rank>
std::array<index_t, Rank> contiguous_strides(const std::array<index_t, Rank>& shape) {
  std::array<index_t, Rank> strides{};
  index_t stride = 1;
  for (std::size_t i = Rank; i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  return strides;
}

/// Product of the extents; throws if a dimension is negative or the product overflows index_t.
template <std::size_t Rank>
index_t checked_element_count(const std::array<index_t, Rank>& shape) {
  index_t count = 1;
  for (std::size_t i = 0; i < Rank; ++i) {
    require<shape_error>(shape[i] >= 0, "tensor shape ", format_shape(shape), ": dimension ", i,
                         " is negative");
    if (shape[i] != 0 && count > INT64_MAX / shape[i])
      throw shape_error(concat("tensor shape ", format_shape(shape), ": element count overflows"));
    count *= shape[i];
  }
  return count;
}

}  // namespace detail

/// Non-owning view of `Rank`-dimensional row-major data.
/// \tparam T    element type; `const T` for a read-only view.
/// \tparam Rank number of dimensions (>= 1).
template <class T, int Rank>
class TensorView {
  static_assert(Rank >= 1, "TensorView: Rank must be at least 1");

 public:
  using element_type = T;
  static constexpr int rank = Rank;

  TensorView() : data_(nullptr), shape_{}, strides_{} {}

  /// Contiguous row-major view of `shape`.
  TensorView(T* data, const Shape<Rank>& shape)
      : data_(data), shape_(shape), strides_(detail::contiguous_strides(shape)) {
    detail::checked_element_count(shape);
    detail::require<shape_error>(data != nullptr || size() == 0, "TensorView: null data for shape ",
                                 detail::format_shape(shape));
  }

  /// Strided view; strides are in elements and must be non-negative.
  TensorView(T* data, const Shape<Rank>& shape, const Shape<Rank>& strides)
      : data_(data), shape_(shape), strides_(strides) {
    detail::checked_element_count(shape);
    for (int i = 0; i < Rank; ++i)
      detail::require<shape_error>(strides[i] >= 0, "TensorView: stride ", i, " is negative (",
                                   strides[i], ")");
    detail::require<shape_error>(data != nullptr || size() == 0, "TensorView: null data for shape ",
                                 detail::format_shape(shape));
  }

  /// A mutable view converts to a read-only one.
  template <class U, class = std::enable_if_t<std::is_same_v<const U, T> && !std::is_same_v<U, T>>>
  TensorView(const TensorView<U, Rank>& other)  // NOLINT(google-explicit-constructor)
      : data_(other.data()), shape_(other.shape()), strides_(other.strides()) {}

  T* data() const { return data_; }
  const Shape<Rank>& shape() const { return shape_; }
  const Shape<Rank>& strides() const { return strides_; }
  index_t shape(int dim) const { return shape_[static_cast<std::size_t>(dim)]; }
  index_t stride(int dim) const { return strides_[static_cast<std::size_t>(dim)]; }

  index_t size() const {
    index_t count = 1;
    for (index_t extent : shape_) count *= extent;
    return count;
  }
  bool empty() const { return size() == 0; }

  bool is_contiguous() const { return strides_ == detail::contiguous_strides(shape_); }

  /// Element access (host memory only); no bounds check.
  template <class... Indices>
  T& operator()(Indices... indices) const {
    static_assert(sizeof...(Indices) == Rank, "TensorView: wrong number of indices");
    const index_t index_array[] = {static_cast<index_t>(indices)...};
    index_t offset = 0;
    for (int i = 0; i < Rank; ++i) offset += index_array[i] * strides_[static_cast<std::size_t>(i)];
    return data_[offset];
  }

  /// The sub-view at index `i` of the outermost dimension, with one dimension fewer.
  auto operator[](index_t i) const {
    static_assert(Rank >= 2, "TensorView: operator[] needs Rank >= 2; use operator() for Rank 1");
    Shape<Rank - 1> inner_shape{};
    Shape<Rank - 1> inner_strides{};
    for (int d = 1; d < Rank; ++d) {
      inner_shape[static_cast<std::size_t>(d - 1)] = shape_[static_cast<std::size_t>(d)];
      inner_strides[static_cast<std::size_t>(d - 1)] = strides_[static_cast<std::size_t>(d)];
    }
    return TensorView<T, Rank - 1>(data_ + i * strides_[0], inner_shape, inner_strides);
  }

 private:
  T* data_;
  Shape<Rank> shape_;
  Shape<Rank> strides_;
};

/// Views the same contiguous data with another shape of the same element count.
template <int NewRank, class T, int Rank>
TensorView<T, NewRank> reshape(const TensorView<T, Rank>& view, const Shape<NewRank>& new_shape) {
  detail::require<shape_error>(view.is_contiguous(), "reshape: the view of shape ",
                               detail::format_shape(view.shape()), " is not contiguous");
  detail::require<shape_error>(detail::checked_element_count(new_shape) == view.size(),
                               "reshape: cannot view shape ", detail::format_shape(view.shape()),
                               " as ", detail::format_shape(new_shape));
  return TensorView<T, NewRank>(view.data(), new_shape);
}

namespace detail {

/// Throws shape_error unless `view` is contiguous and has exactly `expected` shape.
/// `where` names the function, `name` the argument.
template <class T>
struct non_deduced {
  using type = T;
};

template <class T, int Rank>
void expect_shape(const char* where, const char* name, const TensorView<T, Rank>& view,
                  const typename non_deduced<Shape<Rank>>::type& expected) {
  require<shape_error>(view.shape() == expected, where, ": ", name, " has shape ",
                       format_shape(view.shape()), ", expected ", format_shape(expected));
  require<shape_error>(view.is_contiguous(), where, ": ", name, " of shape ",
                       format_shape(view.shape()), " must be contiguous, has strides ",
                       format_shape(view.strides()));
}

/// Throws shape_error when two views overlap in memory (an output may not alias an input unless the
/// function documents in-place use).
template <class A, int RankA, class B, int RankB>
void expect_disjoint(const char* where, const char* name_a, const TensorView<A, RankA>& a,
                     const char* name_b, const TensorView<B, RankB>& b) {
  if (a.empty() || b.empty()) return;
  const auto* a_begin = reinterpret_cast<const unsigned char*>(a.data());
  const auto* b_begin = reinterpret_cast<const unsigned char*>(b.data());
  const auto* a_end = a_begin + a.size() * static_cast<index_t>(sizeof(A));
  const auto* b_end = b_begin + b.size() * static_cast<index_t>(sizeof(B));
  require<shape_error>(a_end <= b_begin || b_end <= a_begin, where, ": ", name_a, " and ", name_b,
                       " overlap in memory");
}

/// Throws range_error unless positions start_pos .. start_pos+tokens-1 lie in [0, max_seq_len);
/// written so that no sum can overflow.
inline void expect_positions(const char* where, index_t start_pos, index_t tokens,
                             index_t max_seq_len) {
  require<range_error>(start_pos >= 0 && tokens >= 0 && start_pos <= max_seq_len &&
                           tokens <= max_seq_len - start_pos,
                       where, ": start_pos ", start_pos, " + tokens ", tokens,
                       " exceeds max_seq_len ", max_seq_len);
}

/// Raw storage of a backend. Specialized per backend; host memory is below.
template <class Backend>
struct allocator {
  static_assert(dependent_false<Backend>, "llamablocks: no allocator for this backend");
};

template <>
struct allocator<cpu> {
  static constexpr std::size_t alignment = 64;
  static constexpr std::size_t large_block = std::size_t{1} << 20;

  static void* allocate(std::size_t bytes) {
    return ::operator new(bytes == 0 ? alignment : bytes, std::align_val_t(alignment));
  }
  static void deallocate(void* pointer) noexcept {
    ::operator delete(pointer, std::align_val_t(alignment));
  }
  /// Zero-filled memory for a Tensor. From 1 MiB up it comes straight from the kernel as
  /// untouched zero pages (anonymous mmap), so a tensor that is never written, such as a module's
  /// parameter about to be replaced by a borrowed checkpoint tensor, costs no resident memory.
  static void* allocate_zeroed(std::size_t bytes) {
#if LLAMABLOCKS_HAS_MMAP
    if (bytes >= large_block) {
      void* pointer = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (pointer == MAP_FAILED)
        throw allocation_error(concat("cannot allocate ", bytes, " bytes of zeroed memory: ",
                                      std::strerror(errno)));
      return pointer;
    }
#endif
    void* pointer = allocate(bytes);
    std::memset(pointer, 0, bytes);
    return pointer;
  }
  static void deallocate_zeroed(void* pointer, std::size_t bytes) noexcept {
#if LLAMABLOCKS_HAS_MMAP
    if (bytes >= large_block) {
      ::munmap(pointer, bytes);
      return;
    }
#endif
    deallocate(pointer);
  }
  static void copy_from_host(void* destination, const void* host_source, std::size_t bytes) {
    if (bytes != 0) std::memcpy(destination, host_source, bytes);
  }
  static void copy_to_host(void* host_destination, const void* source, std::size_t bytes) {
    if (bytes != 0) std::memcpy(host_destination, source, bytes);
  }
};

}  // namespace detail

/// Owning tensor in the memory of `Backend`; move-only (copying weights is always explicit).
/// \tparam T       trivially copyable element type.
/// \tparam Rank    number of dimensions.
/// \tparam Backend whose memory holds the data (cpu: host memory, 64-byte aligned).
template <class T, int Rank, class Backend = cpu>
class Tensor {
  static_assert(std::is_trivially_copyable_v<T>, "Tensor: element type must be trivially copyable");

 public:
  Tensor() = default;

  /// Allocates a zero-filled tensor of `shape`.
  explicit Tensor(const Shape<Rank>& shape) {
    const index_t count = detail::checked_element_count(shape);
    detail::require<shape_error>(
        static_cast<std::uint64_t>(count) <= SIZE_MAX / sizeof(T), "Tensor: shape ",
        detail::format_shape(shape), " needs more bytes than size_t holds");
    const std::size_t bytes = static_cast<std::size_t>(count) * sizeof(T);
    void* raw = detail::allocator<Backend>::allocate_zeroed(bytes);
    owner_ = std::shared_ptr<void>(
        raw, [bytes](void* p) { detail::allocator<Backend>::deallocate_zeroed(p, bytes); });
    view_ = TensorView<T, Rank>(static_cast<T*>(raw), shape);
  }

  /// Wraps memory owned elsewhere (e.g. a loaded checkpoint) without copying it; `owner` is kept
  /// alive for as long as this tensor is.
  static Tensor borrow(const TensorView<T, Rank>& view, std::shared_ptr<const void> owner) {
    detail::require<shape_error>(view.is_contiguous(), "Tensor::borrow: view of shape ",
                                 detail::format_shape(view.shape()), " must be contiguous");
    Tensor tensor;
    tensor.owner_ = std::const_pointer_cast<void>(std::move(owner));
    tensor.view_ = view;
    return tensor;
  }

  /// Another tensor over the same storage (shared ownership), e.g. a tied output head.
  Tensor share() const {
    Tensor tensor;
    tensor.owner_ = owner_;
    tensor.view_ = view_;
    return tensor;
  }

  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  TensorView<T, Rank> view() { return view_; }
  TensorView<const T, Rank> view() const { return view_; }
  TensorView<const T, Rank> cview() const { return view_; }

  T* data() { return view_.data(); }
  const T* data() const { return view_.data(); }
  const Shape<Rank>& shape() const { return view_.shape(); }
  index_t shape(int dim) const { return view_.shape(dim); }
  index_t size() const { return view_.size(); }
  bool empty() const { return view_.empty(); }

 private:
  std::shared_ptr<void> owner_;
  TensorView<T, Rank> view_;
};

}  // namespace llamablocks
