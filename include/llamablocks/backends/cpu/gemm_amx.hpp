// gemm_amx: the Q8_0 prefill projection on AMX-INT8 tiles (Intel Sapphire Rapids and later):
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
//     Tokens past m are zero, with scale 0.
//   - W is packed per thread one panel of 16 rows (16 columns of y) at a time over all of k: per
//     block, the B operand, 8 rows of 16 × 4 int8 (AMX's layout: the 4 consecutive depths of one
//     column side by side), made by one 16 × 16 transpose of 32-bit lanes per two blocks, and the
//     16 weight scales as float32. Rows past n are zero.
//   - The micro-kernel computes a 16 × 16 block of y over all blocks: one tdpbssd per block into a
//     16 × 16 int32 tile, stored to L1 and folded into 16 zmm float32 accumulators (convert, scale,
//     fma). Two tiles alternate (even and odd blocks), so the tile product of the next block runs
//     while the vector units scale the previous one; the vector work, 3 instructions per row, is
//     what bounds the kernel (tdpbssd's 16 × 16 × 32 products take 16 cycles).
//   - Threads: the panels of W are split into one contiguous range per thread; an element's sum
//     does not depend on the thread count or on m.
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

/// Bytes of scratch gemm_q8_0_amx needs for m tokens of k columns on `threads` threads (64-byte
/// alignment included): x packed, and per thread one panel of W and two 16 × 16 int32 tiles.
inline index_t gemm_amx_scratch_bytes(index_t m, index_t k, index_t threads) {
  const index_t blocks = k / 32;
  const index_t x_tiles = (m + amx_tile_rows - 1) / amx_tile_rows;
  const index_t panel_bytes = blocks * (amx_block_bytes + amx_scale_bytes);
  return 64 + x_tiles * panel_bytes + threads * (panel_bytes + 2 * 16 * 64);
}

#if LLAMABLOCKS_X86_KERNELS

// The tile instructions, as inline assembly: the target attribute of a function cannot name AMX
// portably across GCC and Clang versions, and GCC's own tileloadd macro tells the compiler nothing
// about the memory it reads (so a store to the packed panel just before it could be moved past
// it). Each of these names the bytes it reads or writes as a memory operand of their exact size
// (a tile's rows are contiguous here), which orders it against the C++ code that touches them
// without a "memory" clobber: such a clobber made GCC keep the 16 float accumulators of the
// micro-kernel on the stack, storing and reloading them around every tile instruction (3x slower).
// AT&T operand order: tdpbssd B, A, C computes C += A · B.
template <index_t Bytes>
struct AmxTileBytes {
  char bytes[Bytes];
};
template <int Tile, index_t Bytes>
inline void amx_tile_load(const void* base, long stride) {
  asm volatile("tileloadd (%0,%1,1), %%tmm%c2"
               :
               : "r"(base), "r"(stride), "i"(Tile), "m"(*static_cast<const AmxTileBytes<Bytes>*>(base)));
}
template <int Tile, index_t Bytes>
inline void amx_tile_store(void* base, long stride) {
  asm volatile("tilestored %%tmm%c3, (%1,%2,1)"
               : "=m"(*static_cast<AmxTileBytes<Bytes>*>(base))
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

/// ldtilecfg's 64-byte operand (palette 1).
struct alignas(64) AmxTileConfig {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {};
  std::uint8_t rows[16] = {};
};

/// Tiles 0 and 1: the int32 products of even and odd blocks (16 × 16); 2 and 4: x's blocks (16
/// tokens × 32 int8); 3 and 5: W's blocks (8 rows of 16 × 4 int8).
inline void amx_configure_q8_0() {
  AmxTileConfig config;
  for (int tile : {0, 1}) config.bytes_per_row[tile] = 64, config.rows[tile] = 16;
  for (int tile : {2, 4}) config.bytes_per_row[tile] = 32, config.rows[tile] = 16;
  for (int tile : {3, 5}) config.bytes_per_row[tile] = 64, config.rows[tile] = 8;
  asm volatile("ldtilecfg %0" : : "m"(config));
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

/// acc[i] += float(products[i]) · (d_w · d_x[i]) for the 16 rows of a stored 16 × 16 int32 tile.
LLAMABLOCKS_TARGET_AVX512 inline void gemm_amx_fold(const std::int32_t* products, const float* x_scales,
                                                    const float* w_scales, __m512 (&acc)[16]) {
  const __m512 w_scale = _mm512_loadu_ps(w_scales);
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) {
    const __m512 sums = _mm512_cvtepi32_ps(_mm512_load_si512(products + 16 * i));
    acc[i] = _mm512_fmadd_ps(sums, _mm512_mul_ps(w_scale, _mm512_set1_ps(x_scales[i])), acc[i]);
  }
}

/// The 16 × 16 block of y (rows, columns of it written) for one packed tile of x and one packed
/// panel of W, over `blocks` blocks; `tiles` holds two 16 × 16 int32 tiles (64-byte aligned).
LLAMABLOCKS_TARGET_AVX512 inline void gemm_amx_micro_kernel(index_t blocks, const std::uint8_t* x_tile,
                                                            const std::uint8_t* w_panel, float* y,
                                                            index_t ldy, index_t rows, index_t cols,
                                                            std::int32_t* tiles) {
  constexpr index_t stride = amx_block_bytes + amx_scale_bytes;
  const auto scales = [](const std::uint8_t* packed) {
    return reinterpret_cast<const float*>(packed + amx_block_bytes);
  };
  __m512 acc[16];
#pragma GCC unroll 16
  for (auto& value : acc) value = _mm512_setzero_ps();
  std::int32_t* even = tiles;
  std::int32_t* odd = tiles + 256;
  // Block b's product goes to tile 0 (even b) or 1 (odd b) and is folded after block b + 1's
  // product has been started.
  amx_tile_zero<0>();
  amx_tile_load<2, amx_block_bytes>(x_tile, 32);
  amx_tile_load<3, amx_block_bytes>(w_panel, 64);
  amx_dot_s8s8<0, 2, 3>();
  amx_tile_store<0, 1024>(even, 64);
  for (index_t b = 0; b < blocks; b += 2) {
    const std::uint8_t* x0 = x_tile + b * stride;
    const std::uint8_t* w0 = w_panel + b * stride;
    if (b + 1 < blocks) {
      amx_tile_zero<1>();
      amx_tile_load<4, amx_block_bytes>(x0 + stride, 32);
      amx_tile_load<5, amx_block_bytes>(w0 + stride, 64);
      amx_dot_s8s8<1, 4, 5>();
      amx_tile_store<1, 1024>(odd, 64);
    }
    gemm_amx_fold(even, scales(x0), scales(w0), acc);
    if (b + 1 >= blocks) break;
    if (b + 2 < blocks) {
      amx_tile_zero<0>();
      amx_tile_load<2, amx_block_bytes>(x0 + 2 * stride, 32);
      amx_tile_load<3, amx_block_bytes>(w0 + 2 * stride, 64);
      amx_dot_s8s8<0, 2, 3>();
      amx_tile_store<0, 1024>(even, 64);
    }
    gemm_amx_fold(odd, scales(x0 + stride), scales(w0 + stride), acc);
  }
  const auto mask = static_cast<__mmask16>(cols >= 16 ? 0xffff : (1u << cols) - 1);
  // Unrolled with constant indices (as every use of acc), so the accumulators stay in registers.
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i)
    if (i < rows) _mm512_mask_storeu_ps(y + i * ldy, mask, acc[i]);
}

/// y = x · Wᵀ for Q8_0 W and the quantized activations `xq`
/// ([m, k/32] blocks), on the context's threads (see the top of this header). Pre-condition: the CPU
/// runs CpuIsa::avx512_amx; m, n >= 1; k = w.cols a multiple of 32; y disjoint from the inputs;
/// `scratch` holds gemm_amx_scratch_bytes(m, k, ctx.num_threads()) bytes.
inline void gemm_q8_0_amx(const Context<cpu>& ctx, const ActivationBlockQ8* xq, index_t m,
                          const PackedMatrixView& w, float* y, index_t ldy, std::uint8_t* scratch) {
  const index_t blocks = w.cols / 32, n = w.rows;
  const index_t panel_bytes = blocks * (amx_block_bytes + amx_scale_bytes);
  const auto misalignment = reinterpret_cast<std::uintptr_t>(scratch) % 64;
  std::uint8_t* x_packed = scratch + (misalignment ? 64 - misalignment : 0);
  const index_t x_tiles = (m + amx_tile_rows - 1) / amx_tile_rows;
  std::uint8_t* per_thread = x_packed + x_tiles * panel_bytes;
  parallel_for(ctx, x_tiles, [&](long long tile) {
    const index_t row0 = tile * amx_tile_rows;
    gemm_amx_pack_x(xq, blocks, row0, std::min(amx_tile_rows, m - row0), x_packed + tile * panel_bytes);
  });

  const index_t panels = (n + amx_tile_cols - 1) / amx_tile_cols;
  const index_t parts = std::min<index_t>(ctx.num_threads(), panels);
  parallel_for(ctx, parts, [&](long long part) {
    std::uint8_t* w_packed = per_thread + part * (panel_bytes + 2 * 16 * 64);
    auto* tiles = reinterpret_cast<std::int32_t*>(w_packed + panel_bytes);
    amx_configure_q8_0();
    const index_t first = panels * part / parts, last = panels * (part + 1) / parts;
    for (index_t panel = first; panel < last; ++panel) {
      const index_t col0 = panel * amx_tile_cols;
      const index_t cols = std::min(amx_tile_cols, n - col0);
      gemm_amx_pack_w(w, col0, cols, w_packed);
      for (index_t tile = 0; tile < x_tiles; ++tile) {
        const index_t row0 = tile * amx_tile_rows;
        gemm_amx_micro_kernel(blocks, x_packed + tile * panel_bytes, w_packed, y + row0 * ldy + col0,
                              ldy, std::min(amx_tile_rows, m - row0), cols, tiles);
      }
    }
    amx_release();
  });
}

#endif  // LLAMABLOCKS_X86_KERNELS

}  // namespace detail
}  // namespace llamablocks
