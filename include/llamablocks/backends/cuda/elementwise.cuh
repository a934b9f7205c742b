// Element-wise kernels of the cuda backend used by generic compositions (LlamaBlock):
//   add_inplace:        x += y                      x, y: any shape, contiguous, equal shapes
//   swiglu_activation:  gate = silu(gate) ⊙ up      gate, up: [rows, ffn_hidden_dim]
// Arithmetic in float, one rounding to T per element; 16-byte accesses when every pointer is
// 16-byte aligned and the element count is a whole number of vectors, grid-stride loops otherwise.
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/core/math.hpp"
#include "llamablocks/core/tensor.hpp"

#include <algorithm>

namespace llamablocks {
namespace detail {

struct add_op {
  __device__ float operator()(float x, float y) const { return x + y; }
};

struct swiglu_op {
  __device__ float operator()(float gate, float up) const { return silu(gate) * up; }
};

/// a[i] = op(a[i], b[i]) for i < count (count in accesses of Width elements). a may be b itself:
/// each element is read before the thread that read it writes it.
template <class T, int Width, class Op>
__global__ void binary_inplace(T* a, const T* b, std::int64_t count,
                               Op op) {
  using access = vector_of<T, Width>;
  auto* a_vec = reinterpret_cast<access*>(a);
  const auto* b_vec = reinterpret_cast<const access*>(b);
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < count; i += step) {
    access left = a_vec[i];
    const access right = b_vec[i];
#pragma unroll
    for (int j = 0; j < Width; ++j)
      left.value[j] = from_float<T>(op(to_float(left.value[j]), to_float(right.value[j])));
    a_vec[i] = left;
  }
}

template <class T, class Op>
void launch_binary_inplace(const Context<cuda>& ctx, T* a, const T* b, std::int64_t count, Op op) {
  if (count == 0) return;
  constexpr int threads = 256;
  constexpr int width = vector_width<T>;
  const bool vectorizable = count % width == 0 && is_aligned(a, 16) && is_aligned(b, 16);
  const std::int64_t accesses = vectorizable ? count / width : count;
  // A grid-stride loop over a few waves of blocks: enough blocks to fill every multiprocessor.
  const std::int64_t wanted = (accesses + threads - 1) / threads;
  const int blocks = static_cast<int>(
      std::min<std::int64_t>(wanted, static_cast<std::int64_t>(ctx.multiprocessor_count()) * 32));
  if (vectorizable)
    binary_inplace<T, width><<<blocks, threads, 0, ctx.stream()>>>(a, b, accesses, op);
  else
    binary_inplace<T, 1><<<blocks, threads, 0, ctx.stream()>>>(a, b, accesses, op);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
}

/// Refuses views that overlap without being the same memory.
template <class A, class B, int Rank>
void expect_same_or_disjoint(const char* where, const char* name_a, const TensorView<A, Rank>& a,
                             const char* name_b, const TensorView<B, Rank>& b) {
  if (static_cast<const void*>(a.data()) != static_cast<const void*>(b.data()))
    expect_disjoint(where, name_a, a, name_b, b);
}

}  // namespace detail

/// x += y (the residual connection), on ctx's stream. Contiguous, of equal shape; y may be x.
template <class T, int Rank>
void add_inplace(const Context<cuda>& ctx, const TensorView<T, Rank>& x,
                 const TensorView<const T, Rank>& y) {
  detail::check_cuda_scalar<T>();
  detail::expect_shape("add_inplace<cuda>", "y", y, x.shape());
  detail::expect_shape("add_inplace<cuda>", "x", x, x.shape());
  detail::expect_same_or_disjoint("add_inplace<cuda>", "x", x, "y", y);
  detail::launch_binary_inplace(ctx, x.data(), y.data(), x.size(), detail::add_op{});
}

/// gate[i] = silu(gate[i]) · up[i], in place over equal-shaped contiguous [rows, width] views, on
/// ctx's stream; up may be gate itself.
template <class T>
void swiglu_activation(const Context<cuda>& ctx, const TensorView<T, 2>& gate,
                       const TensorView<const T, 2>& up) {
  detail::check_cuda_scalar<T>();
  detail::expect_shape("swiglu_activation<cuda>", "up", up, gate.shape());
  detail::expect_shape("swiglu_activation<cuda>", "gate", gate, gate.shape());
  detail::expect_same_or_disjoint("swiglu_activation<cuda>", "gate", gate, "up", up);
  detail::launch_binary_inplace(ctx, gate.data(), up.data(), gate.size(), detail::swiglu_op{});
}

}  // namespace llamablocks
