// Embedding on the cuda backend: out[b, t, :] = table[tokens[b, t], :], one thread block per token.
//   tokens: [batch, tokens] int32 in device memory   table: [vocab_size, dim]   out: [batch, tokens, dim]
// The ids live on the device (a prompt copied there once, or a token sampled there), so they are
// checked there: a first kernel records the smallest position holding an id outside
// [0, vocab_size), the gather kernel writes nothing when one was found, and forward() then reads
// that one word back (a stream synchronization) and throws range_error naming the id and its
// position. A call that throws leaves out untouched.
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/modules/embedding.hpp"

#include <cstdint>

namespace llamablocks {
namespace detail {

/// No id out of range (the bytes 0xFF that cudaMemsetAsync writes).
inline constexpr unsigned int no_bad_token = 0xFFFFFFFFu;

/// first_bad = min(first_bad, i) over positions i whose id is outside [0, vocab_size).
/// A template (on the id type) like every kernel in a header, so that two translation units
/// including it link together.
template <class Id>
__global__ void find_bad_token(const Id* __restrict__ tokens, int count, int vocab_size,
                               unsigned int* first_bad) {
  const int step = static_cast<int>(gridDim.x * blockDim.x);
  for (int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x); i < count; i += step) {
    const Id id = tokens[i];
    if (id < 0 || id >= vocab_size) atomicMin(first_bad, static_cast<unsigned int>(i));
  }
}

/// Block r copies row tokens[r] of the table to row r of out, Width elements per access; nothing
/// when *first_bad names a bad id.
template <class T, int Width>
__global__ void gather_rows(const std::int32_t* __restrict__ tokens, const T* __restrict__ table,
                            T* __restrict__ out, int dim, const unsigned int* first_bad) {
  if (*first_bad != no_bad_token) return;
  using access = vector_of<T, Width>;
  const int accesses = dim / Width;
  const auto id = static_cast<std::size_t>(tokens[blockIdx.x]);
  const auto* source = reinterpret_cast<const access*>(table + id * static_cast<std::size_t>(dim));
  auto* destination =
      reinterpret_cast<access*>(out + static_cast<std::size_t>(blockIdx.x) * static_cast<std::size_t>(dim));
  for (int i = static_cast<int>(threadIdx.x); i < accesses; i += static_cast<int>(blockDim.x))
    destination[i] = source[i];
}

}  // namespace detail

/// Token embedding table in device memory.
/// \tparam T float, __half or __nv_bfloat16.
template <class T>
class Embedding<cuda, T> {
 public:
  /// \param vocab_size rows of the table (valid token ids are 0 .. vocab_size-1).
  /// \param dim        width of each embedding vector.
  Embedding(index_t vocab_size, index_t dim)
      : weight_("Embedding.weight",
                {detail::check_positive("Embedding", "vocab_size", vocab_size),
                 detail::check_positive("Embedding", "dim", dim)}),
        first_bad_(Shape<1>{1}) {
    detail::check_cuda_scalar<T>();
    detail::checked_int("Embedding<cuda>", "vocab_size", vocab_size);
    detail::checked_int("Embedding<cuda>", "dim", dim);
  }

  index_t vocab_size() const { return weight_.shape()[0]; }
  index_t dim() const { return weight_.shape()[1]; }
  Parameter<T, 2, cuda>& weight() { return weight_; }
  const Parameter<T, 2, cuda>& weight() const { return weight_; }

  /// tokens: [batch, tokens] int32, out: [batch, tokens, dim], both in device memory. Synchronizes
  /// ctx's stream once to read the id check; range_error for an id outside [0, vocab_size), with
  /// out unchanged. Not safe to call concurrently on one Embedding (one shared check word).
  void forward(const Context<cuda>& ctx, const TensorView<const std::int32_t, 2>& tokens,
               const TensorView<T, 3>& out) const {
    const char* where = "Embedding<cuda>::forward";
    detail::expect_shape(where, "tokens", tokens, tokens.shape());
    detail::expect_shape(where, "out", out, {tokens.shape(0), tokens.shape(1), dim()});
    const int count = detail::checked_int(where, "batch·tokens", tokens.size());
    if (count == 0) return;
    const int vocab = static_cast<int>(vocab_size());
    const int width = static_cast<int>(dim());
    unsigned int* first_bad = first_bad_.data();
    LLAMABLOCKS_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xFF, sizeof(unsigned int), ctx.stream()));
    const int check_blocks = (count + 255) / 256 < 1024 ? (count + 255) / 256 : 1024;
    detail::find_bad_token<std::int32_t><<<check_blocks, 256, 0, ctx.stream()>>>(
        tokens.data(), count, vocab, first_bad);
    LLAMABLOCKS_CUDA_CHECK_LAUNCH();
    constexpr int vector = detail::vector_width<T>;
    const bool vectorizable = width % vector == 0 && detail::is_aligned(weight_.view().data(), 16) &&
                              detail::is_aligned(out.data(), 16);
    const int accesses = vectorizable ? width / vector : width;
    const int threads = accesses >= 256 ? 256 : (accesses + 31) / 32 * 32;
    if (vectorizable)
      detail::gather_rows<T, vector><<<count, threads, 0, ctx.stream()>>>(
          tokens.data(), weight_.view().data(), out.data(), width, first_bad);
    else
      detail::gather_rows<T, 1><<<count, threads, 0, ctx.stream()>>>(
          tokens.data(), weight_.view().data(), out.data(), width, first_bad);
    LLAMABLOCKS_CUDA_CHECK_LAUNCH();

    unsigned int bad = detail::no_bad_token;
    LLAMABLOCKS_CUDA_CHECK(cudaMemcpyAsync(&bad, first_bad, sizeof bad, cudaMemcpyDeviceToHost,
                                           ctx.stream()));
    ctx.synchronize();
    if (bad == detail::no_bad_token) return;
    std::int32_t id = 0;
    LLAMABLOCKS_CUDA_CHECK(cudaMemcpy(&id, tokens.data() + bad, sizeof id, cudaMemcpyDeviceToHost));
    const index_t position = static_cast<index_t>(bad);
    throw range_error(detail::concat(where, ": token id ", id, " at [",
                                     position / tokens.shape(1), ", ", position % tokens.shape(1),
                                     "] is outside the vocabulary [0, ", vocab_size(), ")"));
  }

 private:
  Parameter<T, 2, cuda> weight_;
  mutable Tensor<unsigned int, 1, cuda> first_bad_;
};

}  // namespace llamablocks
