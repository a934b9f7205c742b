// gemm_amx: prefill projections on AMX tiles (Intel Sapphire Rapids and later). gemm_q8_0_amx, the
// Q8_0 one on AMX-INT8 tiles (below: gemm_bf16_amx, bf16 on AMX-BF16 tiles, when asked for):
//   xq: [m, k/32] quantized activation blocks (quantize_activation_q8)
//   W:  [n, k] q8_0 (PackedMatrixView)          y: [m, n] float32, rows ldy apart
//   y[i][j] = Σ_b d_w[j][b] · d_x[i][b] · Σ_{p<32} q_w[j][b][p] · q_x[i][b][p]
// m is the number of tokens, n the output features, k the input features, b runs over the k/32
// blocks.
//
// Arithmetic: each block's integer dot product is exact (tdpbssd, int8 × int8 summed in int32: at
// most 32 · 127 · 128 in magnitude, so its float32 conversion is exact too); it is then scaled by
// d_w · d_x in float32 and added to a float32 sum, blocks in order. That is the scalar reference's
// arithmetic (dot_scalar), so this path and the token-by-token decode differ only by float32
// rounding, as the float32 GEMM did; a block of x holding NaN or ±inf (scale NaN, q = 0) makes its
// row of y NaN here as well.
//
// Blocking:
//   - x is packed once per call, shared by the threads: for each tile of 16 tokens and each block,
//     the 16 × 32 int8 values side by side (the A operand of tdpbssd, 512 bytes) and the 16 scales.
//     Tiles come in pairs; tokens past m are zero, with scale 0.
//   - W is packed per thread two panels of 16 rows (32 columns of y) at a time over all of k: per
//     block, the B operand, 8 rows of 16 × 4 int8 (AMX's layout: the 4 consecutive depths of one
//     column side by side), made by one 16 × 16 transpose of 32-bit lanes per two blocks, and the
//     16 weight scales as float32. Rows past n are zero. The next pair's rows are prefetched into
//     L2 while the current pair is multiplied.
//   - The micro-kernel computes a 32 × 32 block of y over all blocks: per block, two tiles of x and
//     two of W give four tdpbssd into four 16 × 16 int32 tiles (each operand loaded serves two
//     products), stored to L1 and folded into 32 × 32 float32 sums in L1 (convert, scale, fma).
//     Two sets of product tiles alternate, so the tile products of the next block run while the
//     vector units fold the previous ones. (A 16 × 16 block, one product per pair of operands,
//     loads 1 KiB of operands per product, mostly from L2: see docs/performance.md for the two.)
//   - Threads: the pairs of panels of W are split into one contiguous range per thread; an
//     element's sum does not depend on the thread count or on m.
// gemm_bf16_amx, the bf16 prefill projection on AMX-BF16 tiles, where Context<cpu>::
// bf16_activations allows it:
//   x: [m, k] float32, rounded to bfloat16 (to nearest even) as it is packed
//   W: [n, k] bf16                          y: [m, n] float32     y[i][j] = Σ_p bf16(x[i][p]) · W[j][p]
// Every product of two bfloat16 values is exact in float32, and tdpbf16ps sums them in float32
// (denormal inputs and outputs flushed to zero); with no per-block scales, the sums stay in the
// tiles over all of k, and the 32 × 32 micro-kernel is four tdpbf16ps per 32 depths on two tiles of
// x and two of W. k need not be a multiple of 32: the packing pads with zeros.
//
// AMX state: the tile configuration is per thread; each thread loads it before its panels and
// releases the tiles after them. Linux hands AMX to a process only on request (arch_prctl), which
// cpu_supports(CpuIsa::avx512_amx) makes.
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/cpu_isa.hpp"
#include "llamablocks/backends/cpu/gemm.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/core/weight_type.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace llamablocks {
namespace detail {

/// The activation blocks of quantize_activation_q8: one scale and 32 int8 values.
struct ActivationBlockQ8 {
  float scale;        // d_x = max|x| / 127, rounded to binary16 (GGUF's block_q8_0)
  std::int8_t q[32];  // round(x · 127 / max|x|)
};

/// Tokens per tile (rows of the A and C tiles) and columns of y per panel of W.
inline constexpr index_t amx_tile_rows = 16;
inline constexpr index_t amx_tile_cols = 16;
/// Bytes of one packed block of a tile of x or of a panel of W: 16 × 32 int8, plus 16 float scales.
inline constexpr index_t amx_block_bytes = 16 * 32;
inline constexpr index_t amx_scale_bytes = 16 * 4;

/// Bytes of one thread's part of gemm_q8_0_amx's scratch: two packed panels of W of
/// `panel_bytes` each, two sets of four 16 × 16 int32 tile products, 32 × 32 float accumulators.
inline index_t gemm_amx_thread_bytes(index_t panel_bytes) { return 2 * panel_bytes + 2 * 4096 + 4096; }

/// Bytes of scratch gemm_q8_0_amx needs for m tokens of k columns on `threads` threads (64-byte
/// alignment included): x packed in pairs of tiles, and each thread's part.
inline index_t gemm_amx_scratch_bytes(index_t m, index_t k, index_t threads) {
  const index_t panel_bytes = k / 32 * (amx_block_bytes + amx_scale_bytes);
  const index_t x_pairs = (m + 2 * amx_tile_rows - 1) / (2 * amx_tile_rows);
  return 64 + 2 * x_pairs * panel_bytes + threads * gemm_amx_thread_bytes(panel_bytes);
}

/// Bytes of one thread's part of the scratch of gemm_bf16_amx (and of gemm_bf16_avx512, which
/// shares its layouts): two packed panels of W of `panel_bytes` each (1 KiB per 32 depths), and a
/// 32 × 32 block of float32 sums.
inline index_t gemm_bf16_thread_bytes(index_t panel_bytes) { return 2 * panel_bytes + 4096; }

/// Bytes of scratch gemm_bf16_amx (or gemm_bf16_avx512) needs for m tokens of k columns on
/// `threads` threads: x packed in pairs of 16-token tiles, and each thread's part.
inline index_t gemm_bf16_scratch_bytes(index_t m, index_t k, index_t threads) {
  const index_t panel_bytes = (k + 31) / 32 * 1024;
  const index_t x_pairs = (m + 2 * amx_tile_rows - 1) / (2 * amx_tile_rows);
  return 64 + 2 * x_pairs * panel_bytes + threads * gemm_bf16_thread_bytes(panel_bytes);
}

#if LLAMABLOCKS_X86_KERNELS

// The tile instructions, as inline assembly: the target attribute of a function cannot name AMX
// portably across GCC and Clang versions, and GCC's own tileloadd macro tells the compiler nothing
// about the memory it reads (so a store to the packed panel just before it could be moved past
// it). Each of these names the bytes it reads or writes as a memory operand of their exact size
// (a tile's rows are contiguous here), which orders it against the C++ code that touches them
// without a "memory" clobber: with such a clobber, GCC kept the register accumulators of a first
// 16 × 16 micro-kernel on the stack, stored and reloaded around every tile instruction.
// AT&T operand order: tdpbssd B, A, C computes C += A · B.
// (Clang takes a char array as such an operand, not a struct.)
template <int Tile, index_t Bytes>
inline void amx_tile_load(const void* base, long stride) {
  asm volatile("tileloadd (%0,%1,1), %%tmm%c2"
               :
               : "r"(base), "r"(stride), "i"(Tile), "m"(*static_cast<const char(*)[Bytes]>(base)));
}
template <int Tile, index_t Bytes>
inline void amx_tile_store(void* base, long stride) {
  asm volatile("tilestored %%tmm%c3, (%1,%2,1)"
               : "=m"(*static_cast<char(*)[Bytes]>(base))
               : "r"(base), "r"(stride), "i"(Tile));
}
template <int Tile>
inline void amx_tile_zero() {
  asm volatile("tilezero %%tmm%c0" : : "i"(Tile));
}
template <int C, int A, int B>
inline void amx_dot_s8s8() {
  asm volatile("tdpbssd %%tmm%c2, %%tmm%c1, %%tmm%c0" : : "i"(C), "i"(A), "i"(B));
}

template <int C, int A, int B>
inline void amx_dot_bf16() {
  asm volatile("tdpbf16ps %%tmm%c2, %%tmm%c1, %%tmm%c0" : : "i"(C), "i"(A), "i"(B));
}

/// ldtilecfg's 64-byte operand (palette 1).
struct alignas(64) AmxTileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {};
  std::uint8_t rows[16] = {};
};

/// Makes `config` this thread's tile configuration. The operand is the whole 64-byte struct:
/// GCC 12's _tile_loadconfig declares 8 bytes, so GCC may drop the stores that fill in the rest
/// (llama.cpp's AMX kernels, built so, fault on their first tilezero).
inline void amx_load_config(const AmxTileConfig& config) { asm volatile("ldtilecfg %0" : : "m"(config)); }

/// Tiles 0-3: int32 products (16 × 16); 4 and 5: two tiles of x's blocks (16 tokens × 32 int8); 6
/// and 7: two panels of W's blocks (8 rows of 16 × 4 int8).
inline void amx_configure_q8_0() {
  AmxTileConfig config;
  for (int tile : {0, 1, 2, 3}) config.bytes_per_row[tile] = 64, config.rows[tile] = 16;
  for (int tile : {4, 5}) config.bytes_per_row[tile] = 32, config.rows[tile] = 16;
  for (int tile : {6, 7}) config.bytes_per_row[tile] = 64, config.rows[tile] = 8;
  amx_load_config(config);
}

/// Every tile 16 rows of 64 bytes (gemm_bf16_amx's operands and sums, and full-tile loops).
inline void amx_configure_full_tiles() {
  AmxTileConfig config;
  for (int tile = 0; tile < 8; ++tile) config.bytes_per_row[tile] = 64, config.rows[tile] = 16;
  amx_load_config(config);
}

inline void amx_release() { asm volatile("tilerelease" ::: "memory"); }

/// Packs tokens row0 .. row0 + rows - 1 (rows <= 16) of the quantized x into out: per block, the
/// 16 × 32 int8 values, then the 16 scales; tokens past `rows` zero.
inline void gemm_amx_pack_x(const ActivationBlockQ8* xq, index_t blocks, index_t row0, index_t rows,
                            std::uint8_t* out) {
  for (index_t b = 0; b < blocks; ++b) {
    std::uint8_t* values = out + b * (amx_block_bytes + amx_scale_bytes);
    auto* scales = reinterpret_cast<float*>(values + amx_block_bytes);
    for (index_t i = 0; i < 16; ++i) {
      if (i < rows) {
        const ActivationBlockQ8& block = xq[(row0 + i) * blocks + b];
        std::memcpy(values + 32 * i, block.q, 32);
        scales[i] = block.scale;
      } else {
        std::memset(values + 32 * i, 0, 32);
        scales[i] = 0;
      }
    }
  }
}

/// Packs rows row0 .. row0 + rows - 1 (rows <= 16) of the Q8_0 matrix W into out: per block, the B
/// operand (out[8 · 64]: row p of it holds depths 4p .. 4p + 3 of the 16 weight rows, 4 bytes each)
/// and the 16 scales as float32; rows past `rows` zero. Two blocks of a weight row are one 64-byte
/// vector of 16 32-bit lanes (lanes 0-7 the first block's 32 bytes); transposing the 16 rows' vectors
/// puts lane c of every row into vector c: c < 8 is row c of the first block's B, c >= 8 row c - 8
/// of the second's, so both blocks' B operands are the 16 vectors in order.
LLAMABLOCKS_TARGET_AVX512 inline void gemm_amx_pack_w(const PackedMatrixView& w, index_t row0,
                                                      index_t rows, std::uint8_t* out) {
  const index_t blocks = w.cols / 32;
  constexpr index_t stride = amx_block_bytes + amx_scale_bytes;
  for (index_t b = 0; b < blocks; b += 2) {
    const bool pair = b + 1 < blocks;
    __m512 lanes[16];
    for (index_t i = 0; i < 16; ++i) {
      if (i >= rows) {
        lanes[i] = _mm512_setzero_ps();
        continue;
      }
      const std::uint8_t* block = w.row(row0 + i) + 34 * b;
      const __m256i first = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
      const __m256i second = pair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 36))
                                  : _mm256_setzero_si256();
      lanes[i] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(first), second, 1));
    }
    transpose16_avx512(lanes);
    for (index_t c = 0; c < (pair ? 16 : 8); ++c)
      _mm512_storeu_ps(out + (b + c / 8) * stride + 64 * (c % 8), lanes[c]);
    for (index_t d = b; d < b + (pair ? 2 : 1); ++d) {
      auto* scales = reinterpret_cast<float*>(out + d * stride + amx_block_bytes);
      for (index_t i = 0; i < 16; ++i)
        scales[i] = i < rows ? _cvtsh_ss(load_u16(w.row(row0 + i) + 34 * d)) : 0.0f;
    }
  }
}

/// Copies the first `rows` rows and `cols` columns of a 32 × 32 float block (rows 32 apart,
/// 64-byte aligned) to y, rows ldy apart.
LLAMABLOCKS_TARGET_AVX512 inline void gemm_amx_store_block(const float* block, float* y, index_t ldy,
                                                           index_t rows, index_t cols) {
  const auto mask_low = static_cast<__mmask16>(cols >= 16 ? 0xffff : (1u << cols) - 1);
  const auto mask_high =
      static_cast<__mmask16>(cols >= 32 ? 0xffff : cols > 16 ? (1u << (cols - 16)) - 1 : 0);
  for (index_t r = 0; r < rows; ++r) {
    _mm512_mask_storeu_ps(y + r * ldy, mask_low, _mm512_load_ps(block + 32 * r));
    _mm512_mask_storeu_ps(y + r * ldy + 16, mask_high, _mm512_load_ps(block + 32 * r + 16));
  }
}

/// The work of the AMX GEMMs (and of gemm_bf16_avx512) around their micro-kernels: x packed in
/// pairs of 16-token tiles (pack_x(row0, rows, out), rows 0 for the padding tile of an odd count),
/// shared by the threads; the pairs of 16-row panels of W split into one contiguous range per
/// thread, each pair packed (pack_w(row0, rows, out)) once and multiplied with every pair of x
/// tiles (kernel(x_pair, w_pair, y block, rows, cols, thread scratch)), the next pair's rows of W
/// prefetched into L2 meanwhile, a part per pair of x tiles. Each thread calls `configure` before
/// its pairs and `release` after them (the AMX tile configuration; nothing for vdpbf16ps).
/// Scratch: 64 bytes of alignment, the packed x, then `thread_bytes` per thread, the two packed
/// panels of W first.
template <class Configure, class Release, class PackX, class PackW, class Kernel>
void gemm_pairs_run(const Context<cpu>& ctx, index_t m, const PackedMatrixView& w, float* y, index_t ldy,
                    index_t panel_bytes, index_t thread_bytes, std::uint8_t* scratch,
                    Configure&& configure, Release&& release, PackX&& pack_x, PackW&& pack_w,
                    Kernel&& kernel) {
  const index_t n = w.rows;
  const auto misalignment = reinterpret_cast<std::uintptr_t>(scratch) % 64;
  std::uint8_t* x_packed = scratch + (misalignment ? 64 - misalignment : 0);
  const index_t x_pairs = (m + 2 * amx_tile_rows - 1) / (2 * amx_tile_rows);
  std::uint8_t* per_thread = x_packed + 2 * x_pairs * panel_bytes;
  parallel_for(ctx, 2 * x_pairs, [&](long long tile) {
    const index_t row0 = tile * amx_tile_rows;
    pack_x(row0, std::clamp<index_t>(m - row0, 0, amx_tile_rows), x_packed + tile * panel_bytes);
  });

  const index_t w_pairs = (n + 2 * amx_tile_cols - 1) / (2 * amx_tile_cols);
  const index_t parts = std::min<index_t>(ctx.num_threads(), w_pairs);
  parallel_for(ctx, parts, [&](long long part) {
    std::uint8_t* w_packed = per_thread + part * thread_bytes;
    configure();
    const index_t first = w_pairs * part / parts, last = w_pairs * (part + 1) / parts;
    for (index_t pair = first; pair < last; ++pair) {
      const index_t col0 = pair * 2 * amx_tile_cols;
      for (index_t j = 0; j < 2; ++j)
        pack_w(col0 + j * amx_tile_cols, std::clamp<index_t>(n - col0 - j * amx_tile_cols, 0, amx_tile_cols),
               w_packed + j * panel_bytes);
      const index_t next_col0 = col0 + 2 * amx_tile_cols;
      for (index_t x_pair = 0; x_pair < x_pairs; ++x_pair) {
        const index_t row0 = x_pair * 2 * amx_tile_rows;
        if (pair + 1 < last)
          gemm_prefetch_w(w, next_col0, std::min(2 * amx_tile_cols, n - next_col0), 0, w.cols, x_pair,
                          x_pairs);
        kernel(x_packed + 2 * x_pair * panel_bytes, w_packed, y + row0 * ldy + col0,
               std::min(2 * amx_tile_rows, m - row0), std::min(2 * amx_tile_cols, n - col0),
               w_packed + 2 * panel_bytes);
      }
    }
    release();
  });
}

/// The 32 × 32 block of y at `y` (its first `rows` rows and `cols` columns written) from two packed
/// tiles of x (`x_pair`, the second panel_bytes after the first) and two packed panels of W
/// (`w_pair`, likewise), over `blocks` blocks. `products` holds two sets of four 16 × 16 int32
/// tiles, `acc` 32 × 32 floats (both 64-byte aligned).
LLAMABLOCKS_TARGET_AVX512 inline void gemm_amx_micro_kernel(index_t blocks, index_t panel_bytes,
                                                            const std::uint8_t* x_pair,
                                                            const std::uint8_t* w_pair, float* y,
                                                            index_t ldy, index_t rows, index_t cols,
                                                            std::int32_t* products, float* acc) {
  constexpr index_t stride = amx_block_bytes + amx_scale_bytes;
  // Tile 2·i + j = x tile i times W panel j, stored to out[256 · (2·i + j)].
  const auto multiply = [&](index_t b, std::int32_t* out) {
    const std::uint8_t* x0 = x_pair + b * stride;
    const std::uint8_t* w0 = w_pair + b * stride;
    amx_tile_load<4, amx_block_bytes>(x0, 32);
    amx_tile_load<5, amx_block_bytes>(x0 + panel_bytes, 32);
    amx_tile_load<6, amx_block_bytes>(w0, 64);
    amx_tile_load<7, amx_block_bytes>(w0 + panel_bytes, 64);
    amx_tile_zero<0>();
    amx_tile_zero<1>();
    amx_tile_zero<2>();
    amx_tile_zero<3>();
    amx_dot_s8s8<0, 4, 6>();
    amx_dot_s8s8<1, 4, 7>();
    amx_dot_s8s8<2, 5, 6>();
    amx_dot_s8s8<3, 5, 7>();
    amx_tile_store<0, 1024>(out, 64);
    amx_tile_store<1, 1024>(out + 256, 64);
    amx_tile_store<2, 1024>(out + 512, 64);
    amx_tile_store<3, 1024>(out + 768, 64);
  };
  for (index_t i = 0; i < 32 * 32; i += 16) _mm512_store_ps(acc + i, _mm512_setzero_ps());
  // Block b + 1's tile products are started before block b's are folded, into the other set.
  multiply(0, products);
  for (index_t b = 0; b < blocks; ++b) {
    const std::int32_t* current = products + 1024 * (b & 1);
    if (b + 1 < blocks) multiply(b + 1, products + 1024 * ((b + 1) & 1));
    for (index_t tile = 0; tile < 4; ++tile) {
      const index_t i = tile / 2, j = tile % 2;
      const auto* x_scales =
          reinterpret_cast<const float*>(x_pair + i * panel_bytes + b * stride + amx_block_bytes);
      const __m512 w_scale = _mm512_load_ps(w_pair + j * panel_bytes + b * stride + amx_block_bytes);
      const std::int32_t* sums = current + 256 * tile;
      float* rows_of_acc = acc + 16 * 32 * i + 16 * j;
#pragma GCC unroll 16
      for (int r = 0; r < 16; ++r) {
        // acc[r] += float(Σ q_w q_x) · (d_w · d_x[r])
        float* at = rows_of_acc + 32 * r;
        const __m512 scale = _mm512_mul_ps(w_scale, _mm512_set1_ps(x_scales[r]));
        _mm512_store_ps(at, _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_load_si512(sums + 16 * r)), scale,
                                            _mm512_load_ps(at)));
      }
    }
  }
  gemm_amx_store_block(acc, y, ldy, rows, cols);
}

/// y = x · Wᵀ for Q8_0 W and the quantized activations `xq` ([m, k/32] blocks), on the context's
/// threads (see the top of this header). Pre-condition: the CPU runs CpuIsa::avx512_amx; m, n >= 1;
/// k = w.cols a multiple of 32; y disjoint from the inputs; `scratch` holds
/// gemm_amx_scratch_bytes(m, k, ctx.num_threads()) bytes.
inline void gemm_q8_0_amx(const Context<cpu>& ctx, const ActivationBlockQ8* xq, index_t m,
                          const PackedMatrixView& w, float* y, index_t ldy, std::uint8_t* scratch) {
  const index_t blocks = w.cols / 32;
  const index_t panel_bytes = blocks * (amx_block_bytes + amx_scale_bytes);
  gemm_pairs_run(
      ctx, m, w, y, ldy, panel_bytes, gemm_amx_thread_bytes(panel_bytes), scratch, amx_configure_q8_0,
      amx_release,
      [&](index_t row0, index_t rows, std::uint8_t* out) { gemm_amx_pack_x(xq, blocks, row0, rows, out); },
      [&](index_t row0, index_t rows, std::uint8_t* out) { gemm_amx_pack_w(w, row0, rows, out); },
      [&](const std::uint8_t* x_pair, const std::uint8_t* w_pair, float* y_block, index_t rows,
          index_t cols, std::uint8_t* thread_scratch) {
        // After the two panels: two sets of four int32 tiles, then the 32 × 32 float sums.
        auto* products = reinterpret_cast<std::int32_t*>(thread_scratch);
        gemm_amx_micro_kernel(blocks, panel_bytes, x_pair, w_pair, y_block, ldy, rows, cols, products,
                              reinterpret_cast<float*>(products + 2 * 1024));
      });
}

/// 16 floats rounded to bfloat16 bits, to nearest even (NaN stays a quiet NaN), as
/// float_to_bf16_bits does one at a time. (The maskz forms with every lane selected: the plain
/// shift and narrowing intrinsics start from "undefined" vectors, which GCC 12 reports as
/// uninitialized where they are inlined.)
LLAMABLOCKS_TARGET_AVX512 inline __m256i round_to_bf16_avx512(__m512 values) {
  constexpr __mmask16 all = 0xffff;
  const __m512i bits = _mm512_castps_si512(values);
  const __m512i high = _mm512_maskz_srli_epi32(all, bits, 16);
  const __m512i lsb = _mm512_and_si512(high, _mm512_set1_epi32(1));
  const __m512i bias = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff));
  const __m512i rounded = _mm512_maskz_srli_epi32(all, _mm512_add_epi32(bits, bias), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(values, values, _CMP_UNORD_Q);
  const __m512i quiet = _mm512_or_si512(high, _mm512_set1_epi32(0x40));
  return _mm512_maskz_cvtepi32_epi16(all, _mm512_mask_blend_epi32(nan, rounded, quiet));
}

/// Packs rows row0 .. row0 + rows - 1 (rows <= 16) of x (float32, ldx apart, k columns) into out:
/// per 32 depths, the A tile (16 rows of 32 bfloat16); rows past `rows` and depths past k zero.
LLAMABLOCKS_TARGET_AVX512 inline void gemm_bf16_pack_x(const float* x, index_t ldx, index_t rows,
                                                       index_t k, std::uint8_t* out) {
  for (index_t p = 0; p < k; p += 32) {
    auto* tile = reinterpret_cast<std::uint16_t*>(out + p / 32 * 1024);
    const index_t depth = std::min<index_t>(32, k - p);
    const auto low = static_cast<__mmask16>(depth >= 16 ? 0xffff : (1u << depth) - 1);
    const auto high =
        static_cast<__mmask16>(depth >= 32 ? 0xffff : depth > 16 ? (1u << (depth - 16)) - 1 : 0);
    for (index_t i = 0; i < 16; ++i) {
      const float* row = x + i * ldx + p;
      const __m512 first = i < rows ? _mm512_maskz_loadu_ps(low, row) : _mm512_setzero_ps();
      const __m512 second = i < rows ? _mm512_maskz_loadu_ps(high, row + 16) : _mm512_setzero_ps();
      _mm256_store_si256(reinterpret_cast<__m256i*>(tile + 32 * i), round_to_bf16_avx512(first));
      _mm256_store_si256(reinterpret_cast<__m256i*>(tile + 32 * i + 16), round_to_bf16_avx512(second));
    }
  }
}

/// Packs rows row0 .. row0 + rows - 1 (rows <= 16) of the bf16 matrix W into out: per 32 depths,
/// the B tile (row p holds depths 2p and 2p + 1 of the 16 weight rows, 4 bytes each): the 16 rows'
/// 32 values are 16 32-bit lanes each, and their transpose is the tile. Rows past `rows` and
/// depths past k are zero.
LLAMABLOCKS_TARGET_AVX512 inline void gemm_bf16_pack_w(const PackedMatrixView& w, index_t row0,
                                                       index_t rows, std::uint8_t* out) {
  const index_t k = w.cols;
  for (index_t p = 0; p < k; p += 32) {
    const index_t depth = std::min<index_t>(32, k - p);
    const auto mask = static_cast<__mmask32>(depth >= 32 ? 0xffffffffu : (1u << depth) - 1);
    __m512 lanes[16];
    for (index_t i = 0; i < 16; ++i)
      lanes[i] = i < rows ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(mask, w.row(row0 + i) + 2 * p))
                          : _mm512_setzero_ps();
    transpose16_avx512(lanes);
    for (index_t c = 0; c < 16; ++c) _mm512_store_ps(out + p / 32 * 1024 + 64 * c, lanes[c]);
  }
}

/// The 32 × 32 block of y at `y` (its first `rows` rows and `cols` columns written) from two packed
/// tiles of x (`x_pair`) and two packed panels of W (`w_pair`), each second one panel_bytes after
/// the first, over `steps` steps of 32 depths; `sums` holds four 16 × 16 float tiles.
LLAMABLOCKS_TARGET_AVX512 inline void gemm_bf16_amx_micro_kernel(index_t steps, index_t panel_bytes,
                                                                 const std::uint8_t* x_pair,
                                                                 const std::uint8_t* w_pair, float* y,
                                                                 index_t ldy, index_t rows, index_t cols,
                                                                 float* sums) {
  amx_tile_zero<0>();
  amx_tile_zero<1>();
  amx_tile_zero<2>();
  amx_tile_zero<3>();
  for (index_t step = 0; step < steps; ++step) {
    const std::uint8_t* x0 = x_pair + step * 1024;
    const std::uint8_t* w0 = w_pair + step * 1024;
    amx_tile_load<4, 1024>(x0, 64);
    amx_tile_load<5, 1024>(x0 + panel_bytes, 64);
    amx_tile_load<6, 1024>(w0, 64);
    amx_tile_load<7, 1024>(w0 + panel_bytes, 64);
    amx_dot_bf16<0, 4, 6>();
    amx_dot_bf16<1, 4, 7>();
    amx_dot_bf16<2, 5, 6>();
    amx_dot_bf16<3, 5, 7>();
  }
  // Tile 2·i + j (x tile i, W panel j) to sums[16 · 32 · i + 16 · j]: a 32 × 32 block, rows 32 apart.
  amx_tile_store<0, 2048 - 64>(sums, 128);
  amx_tile_store<1, 2048 - 64>(sums + 16, 128);
  amx_tile_store<2, 2048 - 64>(sums + 512, 128);
  amx_tile_store<3, 2048 - 64>(sums + 528, 128);
  gemm_amx_store_block(sums, y, ldy, rows, cols);
}

/// y = bf16(x) · Wᵀ for bf16 W through gemm_pairs_run with the bf16 packing and `micro_kernel`
/// (steps, panel_bytes, x_pair, w_pair, y block, ldy, rows, cols, 32 × 32 float sums): the
/// AMX-BF16 one here, or gemm_bf16.hpp's vdpbf16ps one; configure / release as gemm_pairs_run's.
template <class Configure, class Release, class MicroKernel>
void gemm_bf16_pairs(const Context<cpu>& ctx, const float* x, index_t ldx, index_t m,
                     const PackedMatrixView& w, float* y, index_t ldy, std::uint8_t* scratch,
                     Configure&& configure, Release&& release, MicroKernel&& micro_kernel) {
  const index_t k = w.cols;
  const index_t steps = (k + 31) / 32;
  const index_t panel_bytes = steps * 1024;
  gemm_pairs_run(
      ctx, m, w, y, ldy, panel_bytes, gemm_bf16_thread_bytes(panel_bytes), scratch, configure, release,
      [&](index_t row0, index_t rows, std::uint8_t* out) {
        gemm_bf16_pack_x(x + std::min(row0, m - 1) * ldx, ldx, rows, k, out);
      },
      [&](index_t row0, index_t rows, std::uint8_t* out) { gemm_bf16_pack_w(w, row0, rows, out); },
      [&](const std::uint8_t* x_pair, const std::uint8_t* w_pair, float* y_block, index_t rows,
          index_t cols, std::uint8_t* thread_scratch) {
        micro_kernel(steps, panel_bytes, x_pair, w_pair, y_block, ldy, rows, cols,
                     reinterpret_cast<float*>(thread_scratch));
      });
}

/// y = bf16(x) · Wᵀ for bf16 W on the context's threads (see the top of this header).
/// Pre-condition: the CPU runs CpuIsa::avx512_amx; m, n, k >= 1; w.type is bf16; y disjoint from
/// the inputs; `scratch` holds gemm_bf16_scratch_bytes(m, k, ctx.num_threads()) bytes.
inline void gemm_bf16_amx(const Context<cpu>& ctx, const float* x, index_t ldx, index_t m,
                          const PackedMatrixView& w, float* y, index_t ldy, std::uint8_t* scratch) {
  gemm_bf16_pairs(ctx, x, ldx, m, w, y, ldy, scratch, amx_configure_full_tiles, amx_release,
                  gemm_bf16_amx_micro_kernel);
}

#endif  // LLAMABLOCKS_X86_KERNELS

}  // namespace detail
}  // namespace llamablocks
