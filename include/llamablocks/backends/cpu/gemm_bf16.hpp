// gemm_bf16_avx512: the bf16 prefill projection on AVX512_BF16's vdpbf16ps, for CPUs that have it
// without AMX (AMD Zen 4 / Zen 5, Intel Cooper Lake), where Context<cpu>::bf16_activations allows x
// to be rounded to bfloat16:
//   x: [m, k] float32, rounded to bfloat16 (to nearest even) as it is packed
//   W: [n, k] bf16                          y: [m, n] float32     y[i][j] = Σ_p bf16(x[i][p]) · W[j][p]
// m is the number of tokens, n the output features, k the input features.
//
// vdpbf16ps acc, a, b adds, in each of its 16 float32 lanes l, a[2l]·b[2l] + a[2l+1]·b[2l+1] to
// acc[l]: the two products of bfloat16 values are exact in float32 and are added one after the
// other, rounded to nearest even, denormal inputs and results flushed to zero. One instruction is
// 32 multiply-adds, twice an FMA's 16; how many issue per cycle depends on the core (on Emerald
// Rapids one per two cycles, against two FMAs per cycle: docs/packed_weights.md).
//
// Layouts: those of gemm_bf16_amx (gemm_amx.hpp), whose packing and driver this GEMM shares.
//   - A packed tile of x: per 32 depths, 16 rows of 32 bfloat16 values (64 bytes a row); 32-bit
//     word q of row r holds depths 2q and 2q + 1 of token r, the even one in the low half.
//   - A packed panel of W: per 32 depths, 16 rows of 64 bytes; row q holds depths 2q and 2q + 1 of
//     the panel's 16 weight rows, a 32-bit word each: one vdpbf16ps operand for 16 columns of y.
//   - The driver (gemm_pairs_run) packs x once in pairs of 16-token tiles, shared by the threads,
//     and gives each thread a contiguous range of pairs of 16-row panels of W (32 columns of y),
//     so an element's sum does not depend on the thread count.
// Micro-kernel: a 32 × 32 block of y in four groups of 8 rows. A group keeps 8 × 32 float32 sums in
// 16 zmm registers over all of k; per two depths it loads 16 columns of W from each panel and
// broadcasts the depth pair of each of its 8 tokens: 16 vdpbf16ps for 10 loads.
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/cpu_isa.hpp"
#include "llamablocks/backends/cpu/gemm_amx.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/core/weight_type.hpp"

#include <cstdint>
#include <cstring>

namespace llamablocks {
namespace detail {

#if LLAMABLOCKS_X86_KERNELS

/// Rows of the 32 × 32 block one pass of the micro-kernel computes.
inline constexpr index_t gemm_bf16_group_rows = 8;

/// sums[0 .. 8)[0 .. 32), rows 32 apart, = the 8 rows of packed x at `x` (rows 64 bytes apart,
/// 1 KiB per 32 depths) times the two packed panels of W at `w_low` (columns 0-15) and `w_high`
/// (16-31), over `steps` steps of 32 depths.
LLAMABLOCKS_TARGET_AVX512_BF16 inline void gemm_bf16_avx512_rows(index_t steps, const std::uint8_t* x,
                                                                const std::uint8_t* w_low,
                                                                const std::uint8_t* w_high, float* sums) {
  constexpr int rows = static_cast<int>(gemm_bf16_group_rows);
  __m512 low[rows], high[rows];
#pragma GCC unroll 8
  for (int r = 0; r < rows; ++r) low[r] = high[r] = _mm512_setzero_ps();
  for (index_t step = 0; step < steps; ++step) {
    const std::uint8_t* x_step = x + step * 1024;
    const std::uint8_t* low_step = w_low + step * 1024;
    const std::uint8_t* high_step = w_high + step * 1024;
#pragma GCC unroll 16
    for (int pair = 0; pair < 16; ++pair) {
      const auto b_low = (__m512bh)_mm512_load_si512(low_step + 64 * pair);
      const auto b_high = (__m512bh)_mm512_load_si512(high_step + 64 * pair);
#pragma GCC unroll 8
      for (int r = 0; r < rows; ++r) {
        std::int32_t depths;  // bf16 x[r][2·pair] (low half) and x[r][2·pair + 1]
        std::memcpy(&depths, x_step + 64 * r + 4 * pair, sizeof depths);
        const auto a = (__m512bh)_mm512_set1_epi32(depths);
        low[r] = _mm512_dpbf16_ps(low[r], a, b_low);
        high[r] = _mm512_dpbf16_ps(high[r], a, b_high);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < rows; ++r) {
    _mm512_store_ps(sums + 32 * r, low[r]);
    _mm512_store_ps(sums + 32 * r + 16, high[r]);
  }
}

/// The 32 × 32 block of y at `y` (its first `rows` rows and `cols` columns written) from two packed
/// tiles of x (`x_pair`) and two packed panels of W (`w_pair`), each second one panel_bytes after
/// the first, over `steps` steps of 32 depths; `sums` holds 32 × 32 floats (64-byte aligned).
LLAMABLOCKS_TARGET_AVX512_BF16 inline void gemm_bf16_avx512_micro_kernel(
    index_t steps, index_t panel_bytes, const std::uint8_t* x_pair, const std::uint8_t* w_pair, float* y,
    index_t ldy, index_t rows, index_t cols, float* sums) {
  // Group g: rows 8g .. 8g + 7 of the block, in x tile g / 2 from its row 8 · (g % 2).
  for (index_t group = 0; group * gemm_bf16_group_rows < rows; ++group)
    gemm_bf16_avx512_rows(steps, x_pair + group / 2 * panel_bytes + 64 * gemm_bf16_group_rows * (group % 2),
                          w_pair, w_pair + panel_bytes, sums + 32 * gemm_bf16_group_rows * group);
  gemm_amx_store_block(sums, y, ldy, rows, cols);
}

/// y = bf16(x) · Wᵀ for bf16 W on the context's threads (see the top of this header).
/// Pre-condition: the CPU runs CpuIsa::avx512_bf16; m, n, k >= 1; w.type is bf16; y disjoint from
/// the inputs; `scratch` holds gemm_bf16_scratch_bytes(m, k, ctx.num_threads()) bytes.
inline void gemm_bf16_avx512(const Context<cpu>& ctx, const float* x, index_t ldx, index_t m,
                             const PackedMatrixView& w, float* y, index_t ldy, std::uint8_t* scratch) {
  gemm_bf16_pairs(ctx, x, ldx, m, w, y, ldy, scratch, [] {}, [] {}, gemm_bf16_avx512_micro_kernel);
}

#endif  // LLAMABLOCKS_X86_KERNELS

}  // namespace detail
}  // namespace llamablocks
