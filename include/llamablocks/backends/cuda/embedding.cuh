// Embedding on the cuda backend: out[b, t, :] = table[tokens[b, t], :], one thread block per token.
//   tokens: [batch, tokens] int32 in device memory   table: [vocab_size, dim]   out: [batch, tokens, dim]
// The ids live on the device (a prompt copied there once, or a token sampled there), so they are
// checked there: a first kernel records the smallest position holding an id outside
// [0, vocab_size), the gather kernel writes nothing when one was found, and forward() then reads
// that one word back (a stream synchronization) and throws range_error naming the id and its
// position. A call that throws leaves out untouched.
//
// Training: the forward with Activations keeps the ids (a device copy); backward scatter-adds
//   d_table[tokens[i], :] += d_out[i, :]        d_out: [batch·tokens, dim]   d_table: [vocab_size, dim]
// deterministically and without atomics: block (v, column block) scans every id in order (staged
// through shared memory) and sums, in float, the d_out rows whose id is v, then adds the sum to
// row v once (one rounding to T; rows no id names are not touched). That is vocab_size · rows id
// comparisons, cheap at training sizes (32000 × 2048 ≈ 6.6e7 per column block), and the result is
// the same on every run; a sort by id would scale better for very long batches. The ids are checked
// on the device first, as in forward: a bad id writes nothing and throws range_error.
#pragma once

#include "llamablocks/backends/cuda/context.cuh"
#include "llamablocks/backends/cuda/device_utils.cuh"
#include "llamablocks/core/module_checks.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/saved_tensor.hpp"
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

/// ids staged in shared memory per pass of embedding_scatter_rows.
inline constexpr int embedding_ids_per_pass = 256;
/// Columns per block of embedding_scatter_rows (one per thread).
inline constexpr int embedding_scatter_columns = 128;

/// grid (vocab_size, ceil(dim / embedding_scatter_columns)): block (v, c) adds, for its column
/// j = c·embedding_scatter_columns + threadIdx.x, Σ_{i: tokens[i] == v} d_out[i, j] (in row order,
/// in float) to d_table[v, j]; nothing when no id is v or *first_bad names a bad id.
template <class T>
__global__ void embedding_scatter_rows(const std::int32_t* __restrict__ tokens,  // [rows]
                                       const T* __restrict__ d_out,              // [rows, dim]
                                       T* __restrict__ d_table,                  // [vocab_size, dim]
                                       int rows, int dim, const unsigned int* first_bad) {
  __shared__ std::int32_t ids[embedding_ids_per_pass];
  if (*first_bad != no_bad_token) return;  // the same word for every thread: the block leaves whole
  const int v = static_cast<int>(blockIdx.x);
  const int column = static_cast<int>(blockIdx.y) * embedding_scatter_columns +
                     static_cast<int>(threadIdx.x);
  float sum = 0.0f;
  bool found = false;
  for (int base = 0; base < rows; base += embedding_ids_per_pass) {
    const int count = min(embedding_ids_per_pass, rows - base);
    __syncthreads();  // the previous pass is done with ids
    for (int i = static_cast<int>(threadIdx.x); i < count; i += static_cast<int>(blockDim.x))
      ids[i] = tokens[base + i];
    __syncthreads();
    for (int i = 0; i < count; ++i) {
      if (ids[i] != v) continue;
      found = true;
      if (column < dim)
        sum += to_float(d_out[static_cast<std::size_t>(base + i) * static_cast<std::size_t>(dim) +
                              static_cast<std::size_t>(column)]);
    }
  }
  if (!found || column >= dim) return;
  T* target = d_table + static_cast<std::size_t>(v) * static_cast<std::size_t>(dim) +
              static_cast<std::size_t>(column);
  *target = from_float<T>(to_float(*target) + sum);
}

/// Launches find_bad_token over `count` ids into *first_bad (reset first), on ctx's stream.
inline void launch_find_bad_token(const Context<cuda>& ctx, const std::int32_t* tokens, int count,
                                  int vocab_size, unsigned int* first_bad) {
  LLAMABLOCKS_CUDA_CHECK(cudaMemsetAsync(first_bad, 0xFF, sizeof(unsigned int), ctx.stream()));
  const int check_blocks = (count + 255) / 256 < 1024 ? (count + 255) / 256 : 1024;
  find_bad_token<std::int32_t><<<check_blocks, 256, 0, ctx.stream()>>>(tokens, count, vocab_size,
                                                                       first_bad);
  LLAMABLOCKS_CUDA_CHECK_LAUNCH();
}

/// Reads *first_bad after the kernels before it on ctx's stream (synchronizes) and returns it, with
/// the bad id in *id when there is one.
inline unsigned int read_first_bad_token(const Context<cuda>& ctx, const std::int32_t* tokens,
                                         const unsigned int* first_bad, std::int32_t* id) {
  unsigned int bad = no_bad_token;
  LLAMABLOCKS_CUDA_CHECK(cudaMemcpyAsync(&bad, first_bad, sizeof bad, cudaMemcpyDeviceToHost,
                                         ctx.stream()));
  ctx.synchronize();
  if (bad != no_bad_token)
    LLAMABLOCKS_CUDA_CHECK(cudaMemcpy(id, tokens + bad, sizeof *id, cudaMemcpyDeviceToHost));
  return bad;
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

  /// What the training forward keeps for backward, owned by the caller (one per call site).
  struct Activations {
    detail::SavedTensor<std::int32_t, 2, cuda> tokens;  // [batch, tokens]
  };

  /// Allocates weight().grad() in device memory (training only).
  void enable_grad() { weight_.enable_grad(); }
  void zero_grad() { weight_.zero_grad(); }

  /// Training forward: the same output as forward() (and the same id check, so a bad id throws
  /// range_error before the ids are kept), and the ids kept in `activations`.
  void forward(const Context<cuda>& ctx, const TensorView<const std::int32_t, 2>& tokens,
               const TensorView<T, 3>& out, Activations& activations) const {
    forward(ctx, tokens, out);
    const auto saved_tokens = activations.tokens.prepare(tokens.shape());
    detail::copy_on_stream(ctx, saved_tokens.data(), tokens.data(), tokens.size());
  }

  /// d_out: [batch, tokens, dim] in device memory; weight().grad() += the scatter of d_out's rows
  /// onto the rows of their ids (accumulated, deterministic). Token ids have no gradient. Needs
  /// enable_grad() and a training forward into `activations`; throws before writing anything
  /// otherwise. Synchronizes ctx's stream once (the id check, as forward does): an id outside this
  /// table (activations saved by an Embedding with a larger vocabulary) throws range_error with the
  /// gradient unchanged.
  void backward(const Context<cuda>& ctx, const Activations& activations,
                const TensorView<const T, 3>& d_out) {
    const char* where = "Embedding<cuda>::backward";
    detail::expect_saved(where, activations.tokens);
    const Shape<2> tokens_shape = activations.tokens.shape();
    detail::expect_shape(where, "d_out", d_out, {tokens_shape[0], tokens_shape[1], dim()});
    const TensorView<T, 2> d_table = weight_.grad();
    const int rows = detail::checked_int(where, "batch·tokens", tokens_shape[0] * tokens_shape[1]);
    if (rows == 0) return;
    const std::int32_t* tokens = activations.tokens.view().data();
    const int vocab = static_cast<int>(vocab_size());
    const int width = static_cast<int>(dim());
    unsigned int* first_bad = first_bad_.data();
    detail::launch_find_bad_token(ctx, tokens, rows, vocab, first_bad);
    const dim3 grid(static_cast<unsigned>(vocab),
                    static_cast<unsigned>((width + detail::embedding_scatter_columns - 1) /
                                          detail::embedding_scatter_columns));
    detail::embedding_scatter_rows<T><<<grid, detail::embedding_scatter_columns, 0, ctx.stream()>>>(
        tokens, d_out.data(), d_table.data(), rows, width, first_bad);
    LLAMABLOCKS_CUDA_CHECK_LAUNCH();
    std::int32_t id = 0;
    const unsigned int bad = detail::read_first_bad_token(ctx, tokens, first_bad, &id);
    if (bad == detail::no_bad_token) return;
    throw range_error(detail::concat("embedding_backward<cuda>: token id ", id, " at ", bad,
                                     " is outside the vocabulary [0, ", vocab_size(), ")"));
  }

 private:
  Parameter<T, 2, cuda> weight_;
  mutable Tensor<unsigned int, 1, cuda> first_bad_;
};

}  // namespace llamablocks
