// Element-wise kernels of the cuda backend used by generic compositions (LlamaBlock):
//   add_inplace:        x += y                      x, y: any shape, contiguous, equal shapes
//   swiglu_activation:  gate = silu(gate) ⊙ up      gate, up: [rows, ffn_hidden_dim]
//   swiglu_activation_backward, with σ = 1 / (1 + e^{−gate}), all [rows, ffn_hidden_dim]:
//     d_up = d_hidden ⊙ gate ⊙ σ        d_gate = d_hidden ⊙ up ⊙ σ ⊙ (1 + gate ⊙ (1 − σ))
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

/// d_up[i] = d_hidden[i]·silu(gate[i]), d_gate[i] = d_hidden[i]·up[i]·silu′(gate[i]) for
/// i < count, in float with one rounding to T each; grid-stride, element by element.
template <class T>
__global__ void swiglu_backward_elements(const T* __restrict__ gate, const T* __restrict__ up,
                                         const T* __restrict__ d_hidden, T* __restrict__ d_gate,
                                         T* __restrict__ d_up, std::int64_t count) {
  const std::int64_t step = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < count; i += step) {
    const float g = to_float(gate[i]);
    const float dh = to_float(d_hidden[i]);
    const float sigmoid = 1.0f / (1.0f + expf(-g));
    d_up[i] = from_float<T>(dh * g * sigmoid);
    d_gate[i] = from_float<T>(dh * to_float(up[i]) * sigmoid * (1.0f + g * (1.0f - sigmoid)));
  }
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

/// Backward of hidden = silu(gate) ⊙ up, σ = 1 / (1 + e^{−gate}), on ctx's stream:
///   d_up   = d_hidden ⊙ silu(gate)
///   d_gate = d_hidden ⊙ up ⊙ silu′(gate),    silu′(g) = σ(g) · (1 + g · (1 − σ(g)))
/// gate, up, d_hidden, d_gate, d_up: contiguous [rows, width] device memory; d_gate and d_up are
/// written and overlap neither the inputs nor each other.
template <class T>
void swiglu_activation_backward(const Context<cuda>& ctx, const TensorView<const T, 2>& gate,
                                const TensorView<const T, 2>& up,
                                const TensorView<const T, 2>& d_hidden,
                                const TensorView<T, 2>& d_gate, const TensorView<T, 2>& d_up) {
  detail::check_cuda_scalar<T>();
  const char* where = "swiglu_activation_backward<cuda>";
  detail::expect_shape(where, "gate", gate, gate.shape());
  detail::expect_shape(where, "up", up, gate.shape());
  detail::expect_shape(where, "d_hidden", d_hidden, gate.shape());
  detail::expect_shape(where, "d_gate", d_gate, gate.shape());
  detail::expect_shape(where, "d_up", d_up, gate.shape());
  detail::expect_disjoint(where, "d_gate", d_gate, "d_up", d_up);
  for (const auto* written : {&d_gate, &d_up}) {
    detail::expect_disjoint(where, "gate", gate, "an output", *written);
    detail::expect_disjoint(where, "up", up, "an output", *written);
    detail::expect_disjoint(where, "d_hidden", d_hidden, "an output", *written);
  }
  const std::int64_t count = gate.size();
  if (count == 0) return;
  constexpr int threads = 256;
  const std::int64_t wanted = (count + threads - 1) / threads;
  const int blocks = static_cast<int>(
      std::min<std::int64_t>(wanted, static_cast<std::int64_t>(ctx.multiprocessor_count()) * 32));
  detail::swiglu_backward_elements<T><<<blocks, threads, 0, ctx.stream()>>>(
      gate.data(), up.data(), d_hidden.data(), d_gate.data(), d_up.data(), count);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
}

}  // namespace llamablocks
