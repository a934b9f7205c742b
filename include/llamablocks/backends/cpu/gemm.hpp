// gemm: the prefill projection on AVX-512, float32 arithmetic, W read in its stored type:
//   x: [m, k] float32, rows ldx apart       W: [n, k] f32 | f16 | bf16 | q8_0 (PackedMatrixView)
//   y: [m, n] float32, rows ldy apart       y[i][j] = Σ_p x[i][p] · W[j][p]   (or y[i][j] += ...)
// m is the number of tokens, n the output features, k the input features (TinyLlama: k = 2048,
// n = 2048 or 5632, m = 128 to 512 in a prefill).
//
// Blocking, in the GotoBLAS / BLIS manner:
//   - x is packed once per call into micro-panels of gemm_mr = 14 rows, k-major ([k][mr]: the mr
//     values of one depth p side by side), shared by the threads (m · k floats: 1 MiB at m = 128,
//     k = 2048, so it streams from L2 or L3 once per panel of W).
//   - W is packed per thread one micro-panel at a time: gemm_nr = 32 rows of W (32 columns of y)
//     over all k depths, k-major ([k][32]). The packing reads the stored bytes and widens them
//     (f16, bf16 convert, q8_0 multiplies by its block scale) on the way, 16 × 16 values at a
//     time, transposed in registers: W is never widened into a separate tile. Each of the 32 rows
//     is read from start to end, so the hardware prefetcher follows it; packing depth blocks of
//     128 (GotoBLAS's k-outer order) read rows in 512-byte pieces and left the packing stalled on
//     DRAM (28% of the time against 15%, TinyLlama 128 × 2048 × 5632, f32). The next panel's bytes
//     are prefetched into L2 a little at a time while the micro-kernels run.
//   - The micro-kernels walk the panel gemm_kc = 128 depths at a time (a 16 KiB slice of it, which
//     stays in the 32 KiB L1 while every micro-panel of x passes over it); the m × 32 block of y
//     they add to stays in L1 / L2 across the depth blocks.
//   - The micro-kernel keeps a 14 × 32 block of y in 28 zmm accumulators (two vectors of 16
//     columns per row); each depth step loads two vectors of W and broadcasts 14 values of x:
//     28 FMAs for 16 loads, which keeps both FMA ports busy with the loads on the two load ports.
//     After its depth block it adds to (or stores over) y, with masked stores where fewer than 32
//     columns remain; the rows left over at the bottom of x run a kernel of that many rows (1 to
//     13). gemm_kc is a multiple of 32, so a depth block holds whole Q8_0 blocks; a k that is not
//     a multiple of 16 is read with masked loads.
//   - Threads: the micro-panels of W (the columns of y) are split into one contiguous range per
//     thread; no two threads write the same element of y, each reads its rows of W once, and an
//     element's sum does not depend on the thread count.
// Rounding: float32 products and sums, summed in depth order within a block, blocks added in
// order; products of widened weights are exact, so only the order of the sums differs from Eigen.
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/cpu_isa.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/core/weight_type.hpp"
#include "llamablocks/core/workspace.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

namespace llamablocks {
namespace detail {

/// Rows of x per micro-kernel, columns of y (rows of W) per micro-panel, depths per block.
inline constexpr index_t gemm_mr = 14;
inline constexpr index_t gemm_nr = 32;
inline constexpr index_t gemm_kc = 128;

/// Floats of one packed panel of W over all k depths: [k][32].
inline index_t gemm_w_panel_floats(index_t k) { return k * gemm_nr; }

/// Bytes of scratch gemm_avx512 needs for x: [m, k] on `threads` threads (64-byte alignment
/// included).
inline index_t gemm_scratch_bytes(index_t m, index_t k, index_t threads) {
  const index_t a_floats = (m * k + 15) / 16 * 16;
  return 64 + static_cast<index_t>(sizeof(float)) * (a_floats + threads * gemm_w_panel_floats(k));
}

#if LLAMABLOCKS_X86_KERNELS

/// Transposes the 16 × 16 floats of `r` in place (r[i] lane c becomes r[c] lane i): pairs of rows
/// interleaved, then pairs of pairs, then the 4 × 4 grid of 128-bit lanes in two steps.
LLAMABLOCKS_TARGET_AVX512 inline void transpose16_avx512(__m512 (&r)[16]) {
  // The maskz forms with every lane selected: the plain intrinsics start from
  // _mm512_undefined_ps(), which GCC 12 reports as uninitialized under the sanitizers.
  constexpr __mmask16 all = 0xffff;
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_maskz_unpacklo_ps(all, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_ps(all, r[i], r[i + 1]);
  }
  // u[4g + c], lane l: column 4l + c of rows 4g .. 4g + 3.
  __m512 u[16];
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_maskz_shuffle_ps(all, t[4 * g], t[4 * g + 2], 0x44);
    u[4 * g + 1] = _mm512_maskz_shuffle_ps(all, t[4 * g], t[4 * g + 2], 0xee);
    u[4 * g + 2] = _mm512_maskz_shuffle_ps(all, t[4 * g + 1], t[4 * g + 3], 0x44);
    u[4 * g + 3] = _mm512_maskz_shuffle_ps(all, t[4 * g + 1], t[4 * g + 3], 0xee);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 w0 = _mm512_maskz_shuffle_f32x4(all, u[c], u[4 + c], 0x44);
    const __m512 w1 = _mm512_maskz_shuffle_f32x4(all, u[c], u[4 + c], 0xee);
    const __m512 w2 = _mm512_maskz_shuffle_f32x4(all, u[8 + c], u[12 + c], 0x44);
    const __m512 w3 = _mm512_maskz_shuffle_f32x4(all, u[8 + c], u[12 + c], 0xee);
    r[c] = _mm512_maskz_shuffle_f32x4(all, w0, w2, 0x88);
    r[4 + c] = _mm512_maskz_shuffle_f32x4(all, w0, w2, 0xdd);
    r[8 + c] = _mm512_maskz_shuffle_f32x4(all, w1, w3, 0x88);
    r[12 + c] = _mm512_maskz_shuffle_f32x4(all, w1, w3, 0xdd);
  }
}

/// Elements c .. c + 15 of a stored row as float32, those outside `mask` zero (q8_0: c is a
/// multiple of 16 and the mask full, as gemm_kc and k are multiples of 32).
template <WeightType type>
LLAMABLOCKS_TARGET_AVX512 inline __m512 gemm_load16_avx512(const std::uint8_t* row, index_t c,
                                                          __mmask16 mask) {
  if constexpr (type == WeightType::f32) {
    return _mm512_maskz_loadu_ps(mask, reinterpret_cast<const float*>(row) + c);
  } else if constexpr (type == WeightType::f16) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, row + 2 * c));
  } else if constexpr (type == WeightType::bf16) {
    const __m512i wide = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mask, row + 2 * c));
    return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
  } else {
    (void)mask;
    const std::uint8_t* block = row + 34 * (c / 32);
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 2 + c % 32));
    return _mm512_mul_ps(_mm512_set1_ps(_cvtsh_ss(load_u16(block))),
                         _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q)));
  }
}

/// Packs rows row0 .. row0 + rows - 1 (rows <= 32) of W, depths k0 .. k0 + depth - 1, into
/// out: [depth][32] (k-major, 64-byte aligned), the columns past `rows` zero.
template <WeightType type>
LLAMABLOCKS_TARGET_AVX512 void gemm_pack_w_avx512(const PackedMatrixView& w, index_t row0,
                                                  index_t rows, index_t k0, index_t depth,
                                                  float* out) {
  for (index_t half = 0; half < 2; ++half) {
    const index_t first = 16 * half;
    const index_t count = std::min<index_t>(16, rows - first);
    if (count <= 0) {
      for (index_t p = 0; p < depth; ++p) _mm512_store_ps(out + p * gemm_nr + first, _mm512_setzero_ps());
      continue;
    }
    for (index_t p = 0; p < depth; p += 16) {
      const index_t step = std::min<index_t>(16, depth - p);
      const auto mask = static_cast<__mmask16>(step == 16 ? 0xffff : (1u << step) - 1);
      __m512 r[16];
      for (index_t i = 0; i < 16; ++i)
        r[i] = i < count ? gemm_load16_avx512<type>(w.row(row0 + first + i), k0 + p, mask)
                         : _mm512_setzero_ps();
      transpose16_avx512(r);
      for (index_t d = 0; d < step; ++d) _mm512_store_ps(out + (p + d) * gemm_nr + first, r[d]);
    }
  }
}

/// Packs `rows` (<= gemm_mr) rows of x, ldx apart, all k depths, into out: [k][rows].
LLAMABLOCKS_TARGET_AVX512 inline void gemm_pack_x_avx512(const float* x, index_t ldx, index_t rows,
                                                        index_t k, float* out) {
  const auto row_mask = static_cast<__mmask16>((1u << rows) - 1);
  for (index_t p = 0; p < k; p += 16) {
    const index_t step = std::min<index_t>(16, k - p);
    const auto mask = static_cast<__mmask16>(step == 16 ? 0xffff : (1u << step) - 1);
    __m512 r[16];
    for (index_t i = 0; i < 16; ++i)
      r[i] = i < rows ? _mm512_maskz_loadu_ps(mask, x + i * ldx + p) : _mm512_setzero_ps();
    transpose16_avx512(r);
    for (index_t d = 0; d < step; ++d) _mm512_mask_storeu_ps(out + (p + d) * rows, row_mask, r[d]);
  }
}

/// y[0 .. MR)[0 .. 32) (=|+=) a · b over `depth` steps, a: [depth][MR], b: [depth][32]; the
/// columns outside mask_low (0-15) and mask_high (16-31) are neither read nor written.
template <int MR>
LLAMABLOCKS_TARGET_AVX512 void gemm_micro_kernel_avx512(index_t depth, const float* a, const float* b,
                                                        float* y, index_t ldy, __mmask16 mask_low,
                                                        __mmask16 mask_high, bool accumulate) {
  __m512 low[MR], high[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    low[i] = high[i] = _mm512_setzero_ps();
    // The block of y is read only after the depth loop: ask for it now, it may be in L3 or DRAM.
    if (accumulate) {
      _mm_prefetch(reinterpret_cast<const char*>(y + i * ldy), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(y + i * ldy + 16), _MM_HINT_T0);
    }
  }
  for (index_t p = 0; p < depth; ++p) {
    const __m512 b_low = _mm512_load_ps(b + p * gemm_nr);
    const __m512 b_high = _mm512_load_ps(b + p * gemm_nr + 16);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 value = _mm512_set1_ps(a[p * MR + i]);
      low[i] = _mm512_fmadd_ps(value, b_low, low[i]);
      high[i] = _mm512_fmadd_ps(value, b_high, high[i]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    float* row = y + i * ldy;
    if (accumulate) {
      low[i] = _mm512_add_ps(low[i], _mm512_maskz_loadu_ps(mask_low, row));
      high[i] = _mm512_add_ps(high[i], _mm512_maskz_loadu_ps(mask_high, row + 16));
    }
    _mm512_mask_storeu_ps(row, mask_low, low[i]);
    _mm512_mask_storeu_ps(row + 16, mask_high, high[i]);
  }
}

using GemmMicroKernel = void (*)(index_t, const float*, const float*, float*, index_t, __mmask16,
                                 __mmask16, bool);

template <std::size_t... Rows>
constexpr std::array<GemmMicroKernel, sizeof...(Rows)> gemm_micro_kernels(std::index_sequence<Rows...>) {
  return {gemm_micro_kernel_avx512<static_cast<int>(Rows) + 1>...};
}

/// The micro-kernel of `rows` rows (1 .. gemm_mr).
inline GemmMicroKernel gemm_micro_kernel(index_t rows) {
  static constexpr auto kernels =
      gemm_micro_kernels(std::make_index_sequence<static_cast<std::size_t>(gemm_mr)>());
  return kernels[static_cast<std::size_t>(rows - 1)];
}

using GemmPackW = void (*)(const PackedMatrixView&, index_t, index_t, index_t, index_t, float*);

inline GemmPackW gemm_pack_w(WeightType type) {
  switch (type) {
    case WeightType::f32: return gemm_pack_w_avx512<WeightType::f32>;
    case WeightType::f16: return gemm_pack_w_avx512<WeightType::f16>;
    case WeightType::bf16: return gemm_pack_w_avx512<WeightType::bf16>;
    case WeightType::q8_0: return gemm_pack_w_avx512<WeightType::q8_0>;
  }
  return nullptr;
}

/// Prefetches into L2 part `part` of `parts` of the cache lines holding rows row0 .. row0 + rows
/// - 1 of W at depths k0 .. k0 + depth - 1.
inline void gemm_prefetch_w(const PackedMatrixView& w, index_t row0, index_t rows, index_t k0,
                            index_t depth, index_t part, index_t parts) {
  const index_t elements = weight_block_elements(w.type);
  const auto block_bytes = static_cast<index_t>(weight_block_bytes(w.type));
  const index_t begin = k0 / elements * block_bytes;
  const index_t end = (k0 + depth + elements - 1) / elements * block_bytes;
  const index_t lines_per_row = (end - begin + 63) / 64 + 1;
  const index_t total = lines_per_row * rows;
  const index_t first = total * part / parts, last = total * (part + 1) / parts;
  for (index_t line = first; line < last; ++line) {
    const std::uint8_t* at = w.row(row0 + line / lines_per_row) + begin + 64 * (line % lines_per_row);
    if (at < w.row(row0 + line / lines_per_row) + end) _mm_prefetch(reinterpret_cast<const char*>(at), _MM_HINT_T1);
  }
}

/// y = x · Wᵀ, or y += x · Wᵀ with `accumulate` (see the top of this header), on the context's
/// threads. Pre-condition: the CPU runs CpuIsa::avx512; m, n, k >= 1; w.cols = k; for q8_0, k a
/// multiple of 32; y disjoint from x and W; `scratch` holds gemm_scratch_bytes(m, k,
/// ctx.num_threads()) bytes.
inline void gemm_avx512(const Context<cpu>& ctx, const float* x, index_t ldx, index_t m,
                        const PackedMatrixView& w, float* y, index_t ldy, bool accumulate,
                        std::uint8_t* scratch) {
  const index_t k = w.cols, n = w.rows;
  const auto misalignment = reinterpret_cast<std::uintptr_t>(scratch) % 64;
  float* x_packed = reinterpret_cast<float*>(scratch + (misalignment ? 64 - misalignment : 0));
  float* w_buffers = x_packed + (m * k + 15) / 16 * 16;
  const index_t tiles = (m + gemm_mr - 1) / gemm_mr;
  // Tile t holds rows t·mr ..: its [k][rows] panel starts at element t·mr·k.
  parallel_for(ctx, tiles, [&](long long tile) {
    const index_t row0 = tile * gemm_mr;
    gemm_pack_x_avx512(x + row0 * ldx, ldx, std::min(gemm_mr, m - row0), k, x_packed + row0 * k);
  });

  const index_t panels = (n + gemm_nr - 1) / gemm_nr;
  const index_t parts = std::min<index_t>(ctx.num_threads(), panels);
  const index_t blocks = (k + gemm_kc - 1) / gemm_kc;
  const GemmPackW pack_w = gemm_pack_w(w.type);
  parallel_for(ctx, parts, [&](long long part) {
    const index_t first = panels * part / parts, last = panels * (part + 1) / parts;
    float* w_packed = w_buffers + part * gemm_w_panel_floats(k);
    for (index_t panel = first; panel < last; ++panel) {
      const index_t col0 = panel * gemm_nr;
      const index_t cols = std::min(gemm_nr, n - col0);
      pack_w(w, col0, cols, 0, k, w_packed);
      const auto mask_low = static_cast<__mmask16>(cols >= 16 ? 0xffff : (1u << cols) - 1);
      const auto mask_high =
          static_cast<__mmask16>(cols >= 32 ? 0xffff : cols > 16 ? (1u << (cols - 16)) - 1 : 0);
      const index_t next_col0 = col0 + gemm_nr;
      for (index_t block = 0; block < blocks; ++block) {
        const index_t k0 = block * gemm_kc;
        const index_t depth = std::min(gemm_kc, k - k0);
        for (index_t tile = 0; tile < tiles; ++tile) {
          const index_t row0 = tile * gemm_mr;
          const index_t rows = std::min(gemm_mr, m - row0);
          // The next panel's bytes, a little at a time, so its packing finds them in cache.
          if (panel + 1 < last)
            gemm_prefetch_w(w, next_col0, std::min(gemm_nr, n - next_col0), 0, k,
                            block * tiles + tile, blocks * tiles);
          gemm_micro_kernel(rows)(depth, x_packed + row0 * k + k0 * rows, w_packed + k0 * gemm_nr,
                                  y + row0 * ldy + col0, ldy, mask_low, mask_high,
                                  accumulate || k0 > 0);
        }
      }
    }
  });
}

/// gemm_avx512 with its scratch taken from `scratch` (grown on the first call of a size only).
inline void gemm_avx512(const Context<cpu>& ctx, const float* x, index_t ldx, index_t m,
                        const PackedMatrixView& w, float* y, index_t ldy, bool accumulate,
                        Workspace<std::uint8_t, cpu>& scratch) {
  const auto bytes = scratch.get<1>({gemm_scratch_bytes(m, w.cols, ctx.num_threads())});
  gemm_avx512(ctx, x, ldx, m, w, y, ldy, accumulate, bytes.data());
}

#endif  // LLAMABLOCKS_X86_KERNELS

}  // namespace detail
}  // namespace llamablocks
