// packed_matmul: y = x · Wᵀ with W a PackedMatrixView (f32, f16, bf16 or Q8_0 rows, see
// core/weight_type.hpp) and x, y float32:
//   x: [tokens, cols]   W: [rows, cols]   y: [tokens, rows]     y[t][r] = Σ_c W[r][c] · x[t][c]
//
// The kernel family is picked at run time from what the CPU has (cpu_isa()), so a portable build
// runs the AVX-512 kernels on a CPU that has them and never executes an instruction a CPU lacks:
//   avx512_amx   as avx512_bf16, with a Q8_0 prefill on AMX-INT8 tiles (gemm_amx.hpp), and the
//                bf16 one (where allowed) on AMX-BF16 tiles
//   avx512_bf16  as avx512_vnni, with a bf16 prefill on vdpbf16ps (gemm_bf16.hpp) where
//                Context<cpu>::bf16_activations allows x to be rounded to bfloat16
//   avx512_vnni  as avx512, with each Q8_0 integer dot product in one vpdpbusd (the same sums)
//   avx512       AVX-512 F/BW/VL + FMA + F16C: 16 floats per instruction, Q8_0 two blocks at a time
//   avx2         AVX2 + FMA + F16C: 8 floats per instruction
//   scalar       plain C++, any CPU; also the reference the others are tested against
// f16 and bf16 weights are widened to float32 in registers and multiplied by float32 activations
// with FMA, so every product is exact and only the float32 accumulation order differs between
// families. Q8_0 follows ggml's own arithmetic: each 32-element block of a row of x is quantized
// to int8, q = round(x · 127/max|x|), with the scale d_x = max|x|/127 rounded to binary16 as in
// GGUF's block_q8_0; a block's dot product is d_w · d_x · Σ q_w q_x with the sum in int32.
//
// Threads: in a decode-sized product the rows of W are split over the context's threads in tiles
// of packed_matmul_tile_rows and every weight is read exactly once; a prefill-sized product runs
// gemm_q8_0_amx (gemm_amx.hpp) for Q8_0 where the CPU has AMX, the bf16 GEMMs of gemm_amx.hpp and
// gemm_bf16.hpp where they are allowed, else gemm_avx512 (gemm.hpp), which
// widens W as it packs it, or without AVX-512 widens tiles of W to float32 and runs Eigen's GEMM
// on them (see packed_matmul).
#pragma once

#include "llamablocks/backends/cpu/context.hpp"
#include "llamablocks/backends/cpu/cpu_isa.hpp"
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/backends/cpu/gemm.hpp"
#include "llamablocks/backends/cpu/gemm_amx.hpp"
#include "llamablocks/backends/cpu/gemm_bf16.hpp"
#include "llamablocks/core/parameter.hpp"
#include "llamablocks/core/tensor.hpp"
#include "llamablocks/core/weight_type.hpp"
#include "llamablocks/core/workspace.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

namespace llamablocks {
namespace detail {

/// Quantizes `cols` floats (a multiple of 32) into cols/32 blocks.
/// A block holding a NaN or an infinity has no int8 form (converting NaN to an integer is undefined
/// behaviour): it gets scale NaN and q = 0, so every product with it, and the row of y it feeds,
/// is NaN, as a NaN or an infinity times weights of both signs is in the float32 product.
inline void quantize_activation_q8(const float* x, index_t cols, ActivationBlockQ8* blocks) {
  for (index_t b = 0; b < cols / 32; ++b) {
    const float* values = x + 32 * b;
    float amax = 0;
    bool finite = true;
    for (int i = 0; i < 32; ++i) {
      finite = finite && std::isfinite(values[i]);
      amax = std::max(amax, std::fabs(values[i]));
    }
    if (!finite) {
      blocks[b].scale = std::numeric_limits<float>::quiet_NaN();
      std::fill_n(blocks[b].q, 32, std::int8_t{0});
      continue;
    }
    // As ggml's quantize_row_q8_0: q from the exact 127 / max|x|, the scale kept as binary16.
    const float inverse = amax != 0 ? 127.0f / amax : 0.0f;
    blocks[b].scale = half_bits_to_float(float_to_half_bits(amax / 127.0f));
    for (int i = 0; i < 32; ++i)
      blocks[b].q[i] = static_cast<std::int8_t>(std::nearbyint(values[i] * inverse));
  }
}

// ---- scalar: any CPU, and the reference of the others -------------------------------------------

inline float dot_scalar(WeightType type, const std::uint8_t* w, const float* x,
                        const ActivationBlockQ8* xq, index_t cols) {
  float sum = 0;
  switch (type) {
    case WeightType::f32:
      for (index_t c = 0; c < cols; ++c) {
        float value;
        std::memcpy(&value, w + 4 * c, 4);
        sum += value * x[c];
      }
      break;
    case WeightType::f16:
      for (index_t c = 0; c < cols; ++c) sum += half_bits_to_float(load_u16(w + 2 * c)) * x[c];
      break;
    case WeightType::bf16:
      for (index_t c = 0; c < cols; ++c) sum += bf16_bits_to_float(load_u16(w + 2 * c)) * x[c];
      break;
    case WeightType::q8_0:
      for (index_t b = 0; b < cols / 32; ++b) {
        const std::uint8_t* block = w + 34 * b;
        std::int32_t integer = 0;
        for (int i = 0; i < 32; ++i)
          integer += static_cast<std::int8_t>(block[2 + i]) * xq[b].q[i];
        sum += half_bits_to_float(load_u16(block)) * xq[b].scale * static_cast<float>(integer);
      }
      break;
  }
  return sum;
}

#if LLAMABLOCKS_X86_KERNELS

// ---- AVX2 + FMA + F16C ---------------------------------------------------------------------------

LLAMABLOCKS_TARGET_AVX2 inline float horizontal_sum_avx2(__m256 v) {
  const __m128 pair = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 quad = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
  return _mm_cvtss_f32(_mm_add_ss(quad, _mm_movehdup_ps(quad)));
}

/// 8 weights of `type` at element `c` of row `w`, widened to float.
LLAMABLOCKS_TARGET_AVX2 inline __m256 load8_avx2(WeightType type, const std::uint8_t* w, index_t c) {
  switch (type) {
    case WeightType::f32: return _mm256_loadu_ps(reinterpret_cast<const float*>(w) + c);
    case WeightType::f16:
      return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * c)));
    default: {
      const __m256i wide =
          _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 2 * c)));
      return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
    }
  }
}

/// Σ of 32 int8 products q_w · q_x as 8 int32 lanes (|q_x| <= 127, so the int16 pair sums of
/// maddubs cannot saturate).
LLAMABLOCKS_TARGET_AVX2 inline __m256i block_dot_i32_avx2(__m256i qw, __m256i qx) {
  const __m256i abs_x = _mm256_sign_epi8(qx, qx);
  const __m256i signed_w = _mm256_sign_epi8(qw, qx);
  const __m256i pairs = _mm256_maddubs_epi16(abs_x, signed_w);
  return _mm256_madd_epi16(pairs, _mm256_set1_epi16(1));
}

LLAMABLOCKS_TARGET_AVX2 inline float dot_avx2(WeightType type, const std::uint8_t* w, const float* x,
                                              const ActivationBlockQ8* xq, index_t cols) {
  if (type == WeightType::q8_0) {
    // The block scale d_w is converted by F16C; two accumulators keep two blocks in flight.
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (index_t b = 0; b < cols / 32; ++b) {
      const std::uint8_t* block = w + 34 * b;
      const __m256i qw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
      const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[b].q));
      const float scale = _cvtsh_ss(load_u16(block)) * xq[b].scale;
      acc[b & 1] = _mm256_fmadd_ps(_mm256_set1_ps(scale),
                                   _mm256_cvtepi32_ps(block_dot_i32_avx2(qw, qx)), acc[b & 1]);
    }
    return horizontal_sum_avx2(_mm256_add_ps(acc[0], acc[1]));
  }
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  index_t c = 0;
  for (; c + 32 <= cols; c += 32) {
    acc0 = _mm256_fmadd_ps(load8_avx2(type, w, c), _mm256_loadu_ps(x + c), acc0);
    acc1 = _mm256_fmadd_ps(load8_avx2(type, w, c + 8), _mm256_loadu_ps(x + c + 8), acc1);
    acc2 = _mm256_fmadd_ps(load8_avx2(type, w, c + 16), _mm256_loadu_ps(x + c + 16), acc2);
    acc3 = _mm256_fmadd_ps(load8_avx2(type, w, c + 24), _mm256_loadu_ps(x + c + 24), acc3);
  }
  for (; c + 8 <= cols; c += 8)
    acc0 = _mm256_fmadd_ps(load8_avx2(type, w, c), _mm256_loadu_ps(x + c), acc0);
  float sum = horizontal_sum_avx2(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  const std::size_t element = weight_block_bytes(type);
  return sum + dot_scalar(type, w + element * static_cast<std::size_t>(c), x + c, nullptr, cols - c);
}

// ---- AVX-512 F/BW/VL + FMA + F16C ----------------------------------------------------------------

/// Σ of the 16 lanes. Not _mm512_reduce_add_ps: GCC 12 builds it (and the 512 → 256 casts) from
/// "undefined" vectors that trip -Wuninitialized here, and the pragma above cannot help once
/// another header (Eigen's) has included immintrin.h; the zero-masked extracts have none.
LLAMABLOCKS_TARGET_AVX512 inline float horizontal_sum_avx512(__m512 v) {
  const __mmask8 all = 0xff;
  return horizontal_sum_avx2(
      _mm256_add_ps(_mm512_maskz_extractf32x8_ps(all, v, 0), _mm512_maskz_extractf32x8_ps(all, v, 1)));
}

/// 16 weights of `type` at element `c` of row `w`, widened to float.
LLAMABLOCKS_TARGET_AVX512 inline __m512 load16_avx512(WeightType type, const std::uint8_t* w, index_t c) {
  switch (type) {
    case WeightType::f32: return _mm512_loadu_ps(reinterpret_cast<const float*>(w) + c);
    case WeightType::f16:
      return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * c)));
    default: {
      const __m512i wide =
          _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * c)));
      return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
    }
  }
}

/// Σ over each 4 bytes of u8 `magnitudes` × s8 `signed_values`, as 16 int32 lanes. Without VNNI:
/// maddubs (int16 pair sums, which cannot saturate: the u8 side is |q_x| <= 127, so a pair is at
/// most 2 · 127 · 128 < 32767) and madd with ones; with VNNI: one vpdpbusd, the same exact sums.
/// vpdpbusd is written as inline assembly because these kernels are compiled for plain AVX-512
/// (a target attribute cannot depend on a template argument); the Vnni instantiations run only
/// where cpu_supports(CpuIsa::avx512_vnni).
template <bool Vnni>
LLAMABLOCKS_TARGET_AVX512 inline __m512i dot_u8_s8_avx512(__m512i magnitudes, __m512i signed_values) {
  if constexpr (Vnni) {
    __m512i sums = _mm512_setzero_si512();
    // AT&T operand order: Intel's vpdpbusd sums, magnitudes, signed_values.
    asm("vpdpbusd %2, %1, %0" : "+v"(sums) : "v"(magnitudes), "v"(signed_values));
    return sums;
  } else {
    return _mm512_madd_epi16(_mm512_maddubs_epi16(magnitudes, signed_values), _mm512_set1_epi16(1));
  }
}

/// W[r] · x for one Q8_0 row: two blocks per step, 64 int8 products in one register, the lanes 0-7
/// of the int32 sums belong to the first block and 8-15 to the second.
template <bool Vnni>
LLAMABLOCKS_TARGET_AVX512 inline float dot_q8_0_avx512(const std::uint8_t* w, const ActivationBlockQ8* xq,
                                                       index_t cols) {
  __m512 acc = _mm512_setzero_ps();
  const index_t blocks = cols / 32;
  index_t b = 0;
  for (; b + 2 <= blocks; b += 2) {
    const std::uint8_t* first = w + 34 * b;
    const std::uint8_t* second = first + 34;
    const __m512i qw = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(first + 2))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(second + 2)), 1);
    const __m512i qx = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[b].q))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[b + 1].q)), 1);
    // |q_x| · (q_w with the sign of q_x): the unsigned × signed form maddubs and vpdpbusd need.
    const __mmask64 negative = _mm512_movepi8_mask(qx);
    const __m512i abs_x = _mm512_abs_epi8(qx);
    const __m512i signed_w = _mm512_mask_sub_epi8(qw, negative, _mm512_setzero_si512(), qw);
    const __m512i sums = dot_u8_s8_avx512<Vnni>(abs_x, signed_w);
    const __m256 low_scale = _mm256_set1_ps(_cvtsh_ss(load_u16(first)) * xq[b].scale);
    const __m256 high_scale = _mm256_set1_ps(_cvtsh_ss(load_u16(second)) * xq[b + 1].scale);
    const __m512 scale = _mm512_insertf32x8(_mm512_castps256_ps512(low_scale), high_scale, 1);
    acc = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(sums), acc);
  }
  float sum = horizontal_sum_avx512(acc);
  if (b < blocks) {
    const std::uint8_t* block = w + 34 * b;
    const __m256i qw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(block + 2));
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[b].q));
    sum += _cvtsh_ss(load_u16(block)) * xq[b].scale *
           horizontal_sum_avx2(_mm256_cvtepi32_ps(block_dot_i32_avx2(qw, qx)));
  }
  return sum;
}

/// W[r] · x for one f32, f16 or bf16 row.
LLAMABLOCKS_TARGET_AVX512 inline float dot_avx512(WeightType type, const std::uint8_t* w,
                                                  const float* x, index_t cols) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  index_t c = 0;
  for (; c + 64 <= cols; c += 64) {
    acc0 = _mm512_fmadd_ps(load16_avx512(type, w, c), _mm512_loadu_ps(x + c), acc0);
    acc1 = _mm512_fmadd_ps(load16_avx512(type, w, c + 16), _mm512_loadu_ps(x + c + 16), acc1);
    acc2 = _mm512_fmadd_ps(load16_avx512(type, w, c + 32), _mm512_loadu_ps(x + c + 32), acc2);
    acc3 = _mm512_fmadd_ps(load16_avx512(type, w, c + 48), _mm512_loadu_ps(x + c + 48), acc3);
  }
  for (; c + 16 <= cols; c += 16)
    acc0 = _mm512_fmadd_ps(load16_avx512(type, w, c), _mm512_loadu_ps(x + c), acc0);
  const float sum =
      horizontal_sum_avx512(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
  const std::size_t element = weight_block_bytes(type);
  return sum + dot_scalar(type, w + element * static_cast<std::size_t>(c), x + c, nullptr, cols - c);
}

// ---- AVX-512, several rows at once (decode) -------------------------------------------------------
//
// A decode step multiplies one activation row by every row of W. Taking packed_dot_rows rows of W
// together loads each chunk of x (or of its Q8_0 blocks) once for all of them, and gives the
// memory system that many independent streams, so more cache misses are in flight than a row at a
// time allows (a 4 KiB page holds one bf16 row of 2048: the hardware prefetcher starts over at
// every page). Each row keeps its own accumulators, so a row's sum does not depend on its
// neighbours, only on the summation order inside the row, which differs from dot_avx512's.

/// Software prefetch of the next group of rows: the bytes `group_bytes` past `at`, one cache line
/// per 64 of the `step_bytes` the caller consumes from `at` in this step. Measured in a whole model,
/// the hardware prefetcher alone left the packed decode waiting on DRAM for about as long as it
/// computed (the weight rows are short streams that start on new pages); fetching one group ahead
/// overlaps the two. Prefetches never fault, so running past the matrix's end is harmless.
LLAMABLOCKS_TARGET_AVX512 inline void prefetch_next_group(const std::uint8_t* at, std::size_t group_bytes,
                                                          std::size_t step_bytes) {
  for (std::size_t offset = 0; offset < step_bytes; offset += 64)
    _mm_prefetch(reinterpret_cast<const char*>(at + group_bytes + offset), _MM_HINT_T0);
}

/// out[r] = W[r] · x for the R rows starting at `w`, `row_bytes` apart (f32, f16, bf16).
template <WeightType Type, int R>
LLAMABLOCKS_TARGET_AVX512 inline void dot_rows_avx512(const std::uint8_t* w, std::size_t row_bytes,
                                                      const float* x, index_t cols, float* out) {
  __m512 acc[R][2];
  for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const std::size_t element = weight_block_bytes(Type);
  index_t c = 0;
  for (; c + 32 <= cols; c += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + c), x1 = _mm512_loadu_ps(x + c + 16);
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* row = w + row_bytes * static_cast<std::size_t>(r);
      prefetch_next_group(row + element * static_cast<std::size_t>(c), row_bytes * R, element * 32);
      acc[r][0] = _mm512_fmadd_ps(load16_avx512(Type, row, c), x0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(load16_avx512(Type, row, c + 16), x1, acc[r][1]);
    }
  }
  for (; c + 16 <= cols; c += 16) {
    const __m512 x0 = _mm512_loadu_ps(x + c);
    for (int r = 0; r < R; ++r)
      acc[r][0] = _mm512_fmadd_ps(load16_avx512(Type, w + row_bytes * static_cast<std::size_t>(r), c),
                                  x0, acc[r][0]);
  }
  for (int r = 0; r < R; ++r) {
    const std::uint8_t* row = w + row_bytes * static_cast<std::size_t>(r);
    out[r] = horizontal_sum_avx512(_mm512_add_ps(acc[r][0], acc[r][1])) +
             dot_scalar(Type, row + element * static_cast<std::size_t>(c), x + c, nullptr, cols - c);
  }
}

/// out[r] = Σ_b d_w[r,b] · d_x[b] · Σ_i q_w[r,b,i] q_x[b,i] for the R Q8_0 rows starting at `w`.
/// Two blocks per step as in dot_avx512: lanes 0-7 hold the first block's int32 partial sums,
/// lanes 8-15 the second's. The sign and magnitude of q_x are taken once for all R rows.
/// Vnni: the integer sums by vpdpbusd (see dot_u8_s8_avx512), bit for bit the same result.
template <int R, bool Vnni>
LLAMABLOCKS_TARGET_AVX512 inline void dot_rows_q8_0_avx512(const std::uint8_t* w, std::size_t row_bytes,
                                                           const ActivationBlockQ8* xq, index_t cols,
                                                           float* out) {
  __m512 acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
  // Broadcasts lane 0 of a 128-bit vector to lanes 0-7 and lane 1 to lanes 8-15.
  const __m512i pair_lanes = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const index_t blocks = cols / 32;
  index_t b = 0;
  for (; b + 2 <= blocks; b += 2) {
    const __m512i qx = _mm512_inserti64x4(
        _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[b].q))),
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[b + 1].q)), 1);
    // |q_x| · (q_w with the sign of q_x): the unsigned × signed form maddubs needs.
    const __mmask64 negative = _mm512_movepi8_mask(qx);
    const __m512i abs_x = _mm512_abs_epi8(qx);
    const __m512 x_scale = _mm512_permutexvar_ps(
        pair_lanes, _mm512_castps128_ps512(_mm_setr_ps(xq[b].scale, xq[b + 1].scale, 0.0f, 0.0f)));
    for (int r = 0; r < R; ++r) {
      const std::uint8_t* first = w + row_bytes * static_cast<std::size_t>(r) + 34 * b;
      const std::uint8_t* second = first + 34;
      prefetch_next_group(first, row_bytes * R, 68);
      const __m512i qw = _mm512_inserti64x4(
          _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(first + 2))),
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(second + 2)), 1);
      const __m512i signed_w = _mm512_mask_sub_epi8(qw, negative, _mm512_setzero_si512(), qw);
      const __m512i sums = dot_u8_s8_avx512<Vnni>(abs_x, signed_w);
      // Both binary16 block scales converted by one vcvtph2ps, then spread over their 8 lanes.
      const __m128i halves = _mm_cvtsi32_si128(
          static_cast<int>(load_u16(first) | (static_cast<std::uint32_t>(load_u16(second)) << 16)));
      const __m512 w_scale =
          _mm512_permutexvar_ps(pair_lanes, _mm512_castps128_ps512(_mm_cvtph_ps(halves)));
      acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(w_scale, x_scale), _mm512_cvtepi32_ps(sums), acc[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    out[r] = horizontal_sum_avx512(acc[r]);
    if (b < blocks) {
      const std::uint8_t* block = w + row_bytes * static_cast<std::size_t>(r) + 34 * b;
      out[r] += dot_scalar(WeightType::q8_0, block, nullptr, xq + b, 32);
    }
  }
}

#endif  // LLAMABLOCKS_X86_KERNELS

/// One dot product W[r] · x with the family `isa` (which the caller checked the CPU supports).
inline float packed_dot(CpuIsa isa, WeightType type, const std::uint8_t* w, const float* x,
                        const ActivationBlockQ8* xq, index_t cols) {
#if LLAMABLOCKS_X86_KERNELS
  if (has_vnni(isa) && type == WeightType::q8_0) return dot_q8_0_avx512<true>(w, xq, cols);
  if (is_avx512(isa))
    return type == WeightType::q8_0 ? dot_q8_0_avx512<false>(w, xq, cols) : dot_avx512(type, w, x, cols);
  if (isa == CpuIsa::avx2) return dot_avx2(type, w, x, xq, cols);
#endif
  (void)isa;
  return dot_scalar(type, w, x, xq, cols);
}

/// Rows of W that the decode kernels of packed_dot_rows take together.
inline constexpr index_t packed_dot_row_group = 4;

/// out[r] = W[r] · x for `count` rows starting at `w`, `row_bytes` apart: groups of
/// packed_dot_row_group rows through the multi-row AVX-512 kernels, the rest row by row.
inline void packed_dot_rows(CpuIsa isa, WeightType type, const std::uint8_t* w, std::size_t row_bytes,
                            const float* x, const ActivationBlockQ8* xq, index_t cols, index_t count,
                            float* out) {
  index_t r = 0;
#if LLAMABLOCKS_X86_KERNELS
  constexpr int group = static_cast<int>(packed_dot_row_group);
  if (is_avx512(isa)) {
    for (; r + group <= count; r += group) {
      const std::uint8_t* rows = w + row_bytes * static_cast<std::size_t>(r);
      switch (type) {
        case WeightType::f32: dot_rows_avx512<WeightType::f32, group>(rows, row_bytes, x, cols, out + r); break;
        case WeightType::f16: dot_rows_avx512<WeightType::f16, group>(rows, row_bytes, x, cols, out + r); break;
        case WeightType::bf16: dot_rows_avx512<WeightType::bf16, group>(rows, row_bytes, x, cols, out + r); break;
        case WeightType::q8_0:
          if (has_vnni(isa))
            dot_rows_q8_0_avx512<group, true>(rows, row_bytes, xq, cols, out + r);
          else
            dot_rows_q8_0_avx512<group, false>(rows, row_bytes, xq, cols, out + r);
          break;
      }
    }
  }
#endif
  for (; r < count; ++r)
    out[r] = packed_dot(isa, type, w + row_bytes * static_cast<std::size_t>(r), x, xq, cols);
}

}  // namespace detail

/// Rows of W per unit of work handed to a thread in a decode-sized product.
inline constexpr index_t packed_matmul_tile_rows = 16;
/// Rows of W widened to float32 at a time in a prefill-sized product.
inline constexpr index_t packed_gemm_tile_rows = 64;

namespace detail {

/// Row `r` of `weight` as float32 values (the Q8_0 block scale times each q): the tiles of the
/// Eigen prefill path, which runs on CPUs without AVX-512 (with it, gemm.hpp widens as it packs).
inline void widen_row(const PackedMatrixView& weight, index_t r, float* out) {
  const std::uint8_t* row = weight.row(r);
  switch (weight.type) {
    case WeightType::f32: std::memcpy(out, row, sizeof(float) * static_cast<std::size_t>(weight.cols)); break;
    case WeightType::f16:
      for (index_t c = 0; c < weight.cols; ++c) out[c] = half_bits_to_float(load_u16(row + 2 * c));
      break;
    case WeightType::bf16:
      for (index_t c = 0; c < weight.cols; ++c) out[c] = bf16_bits_to_float(load_u16(row + 2 * c));
      break;
    case WeightType::q8_0:
      for (index_t b = 0; b < weight.cols / 32; ++b) {
        const float d = half_bits_to_float(load_u16(row + 34 * b));
        for (index_t i = 0; i < 32; ++i)
          out[32 * b + i] = d * static_cast<float>(static_cast<std::int8_t>(row[34 * b + 2 + i]));
      }
      break;
  }
}

}  // namespace detail

/// y = x · Wᵀ (see the top of this header).
///
/// Decode-sized products (fewer than gemv_row_limit tokens) run the packed dot kernels of `isa`.
/// Larger ones are arithmetic-bound: Q8_0 with avx512_amx runs gemm_q8_0_amx (int8 tile products
/// of the quantized activations), and bf16 runs gemm_bf16_amx with avx512_amx, gemm_bf16_avx512
/// (vdpbf16ps) with avx512_bf16, where ctx.bf16_activations() allows x to be rounded to bfloat16;
/// otherwise the avx512 families run
/// gemm_avx512, which packs W straight from its stored bytes; otherwise each thread widens a tile
/// of packed_gemm_tile_rows rows to float32 and multiplies it with Eigen's GEMM. Either way a
/// prefill runs at GEMM speed for every type.
/// For Q8_0 every GEMM path multiplies the same quantized activations as the decode kernels (AMX
/// as int8, the others widened back to float32), so a prompt gives the same numbers, to float32
/// rounding, whether it is run in one batch or token by token.
/// \param scratch holds the quantized activations and the widened tiles or the GEMMs' packed
///                panels; it grows to the largest call and is reused, so calls of a size that
///                has been seen (every decode step, a repeated prefill) allocate nothing.
/// \param isa     the kernel family; it must be one cpu_supports() (cpu_isa() by default).
/// \throws shape_error when the shapes disagree; range_error for an isa the CPU lacks.
inline void packed_matmul(const Context<cpu>& ctx, const PackedMatrixView& weight,
                          const TensorView<const float, 2>& x, const TensorView<float, 2>& y,
                          Workspace<std::uint8_t, cpu>& scratch, CpuIsa isa = cpu_isa()) {
  const index_t tokens = x.shape(0);
  detail::require<shape_error>(x.shape(1) == weight.cols, "packed_matmul: x has ", x.shape(1),
                               " columns, the weight ", weight.cols);
  detail::expect_shape("packed_matmul", "y", y, {tokens, weight.rows});
  detail::require<shape_error>(x.is_contiguous() && y.is_contiguous(),
                               "packed_matmul: x and y must be contiguous");
  detail::require<shape_error>(weight.row_bytes >= weight_row_bytes(weight.type, weight.cols),
                               "packed_matmul: row_bytes ", weight.row_bytes, " is shorter than a ",
                               to_string(weight.type), " row of ", weight.cols, " columns");
  detail::require<range_error>(cpu_supports(isa), "packed_matmul: this CPU cannot run the ",
                               to_string(isa), " kernels");
  const index_t cols = weight.cols;
  const bool gemm = tokens >= detail::gemv_row_limit;
  const index_t blocks = weight.type == WeightType::q8_0 ? tokens * (cols / 32) : 0;
  const index_t quantized_bytes = blocks * static_cast<index_t>(sizeof(detail::ActivationBlockQ8));
  const index_t threads = ctx.num_threads();
  // Q8_0 on AMX tiles straight from the quantized blocks; else our float32 GEMM where the CPU has
  // AVX-512 (Q8_0 activations widened back to float32 first), else Eigen's on float32 tiles of W.
  // bf16 with bf16 products (AMX-BF16 tiles or vdpbf16ps) only where the context allows rounding x
  // to bfloat16.
  const bool amx_gemm = gemm && isa == CpuIsa::avx512_amx && blocks > 0 && LLAMABLOCKS_X86_KERNELS;
  const bool bf16_gemm = gemm && (isa == CpuIsa::avx512_amx || isa == CpuIsa::avx512_bf16) &&
                         weight.type == WeightType::bf16 && ctx.bf16_activations() &&
                         LLAMABLOCKS_X86_KERNELS;
  const bool own_gemm = gemm && !amx_gemm && !bf16_gemm && is_avx512(isa) && LLAMABLOCKS_X86_KERNELS;
  const index_t widened_x_floats = gemm && !amx_gemm && blocks > 0 ? tokens * cols : 0;
  const index_t tile_floats =
      gemm && !own_gemm && !amx_gemm && !bf16_gemm ? packed_gemm_tile_rows * cols : 0;
  const index_t gemm_bytes = own_gemm    ? detail::gemm_scratch_bytes(tokens, cols, threads)
                             : amx_gemm  ? detail::gemm_amx_scratch_bytes(tokens, cols, threads)
                             : bf16_gemm ? detail::gemm_bf16_scratch_bytes(tokens, cols, threads)
                                         : 0;
  // Layout: quantized activation blocks | widened activations | one widened tile per thread, or
  // the scratch of gemm_avx512, gemm_q8_0_amx, gemm_bf16_amx or gemm_bf16_avx512.
  const index_t float_offset = (quantized_bytes + 63) / 64 * 64;
  const auto bytes = scratch.get<1>(
      {float_offset + static_cast<index_t>(sizeof(float)) * (widened_x_floats + threads * tile_floats) +
       gemm_bytes});
  auto* quantized = reinterpret_cast<detail::ActivationBlockQ8*>(bytes.data());
  float* widened_x = reinterpret_cast<float*>(bytes.data() + float_offset);
  float* tiles = widened_x + widened_x_floats;
  if (blocks > 0)
    detail::parallel_for(ctx, tokens, [&](long long t) {
      detail::quantize_activation_q8(x.data() + t * cols, cols, quantized + t * (cols / 32));
      if (widened_x_floats == 0) return;
      for (index_t b = 0; b < cols / 32; ++b)
        for (index_t i = 0; i < 32; ++i)
          widened_x[t * cols + 32 * b + i] =
              quantized[t * (cols / 32) + b].scale * static_cast<float>(quantized[t * (cols / 32) + b].q[i]);
    });

  if (gemm) {
    const float* x_values = blocks > 0 ? widened_x : x.data();
#if LLAMABLOCKS_X86_KERNELS
    if (amx_gemm) {
      detail::gemm_q8_0_amx(ctx, quantized, tokens, weight, y.data(), weight.rows,
                            reinterpret_cast<std::uint8_t*>(tiles));
      return;
    }
    if (bf16_gemm) {
      const auto bf16_product = isa == CpuIsa::avx512_amx ? detail::gemm_bf16_amx : detail::gemm_bf16_avx512;
      bf16_product(ctx, x.data(), cols, tokens, weight, y.data(), weight.rows,
                   reinterpret_cast<std::uint8_t*>(tiles));
      return;
    }
    if (own_gemm) {
      detail::gemm_avx512(ctx, x_values, cols, tokens, weight, y.data(), weight.rows, false,
                          reinterpret_cast<std::uint8_t*>(tiles));
      return;
    }
#endif
    const auto x_matrix = detail::strided_matrix(x_values, tokens, cols, cols);
    const index_t tile_count = (weight.rows + packed_gemm_tile_rows - 1) / packed_gemm_tile_rows;
    detail::parallel_for(ctx, tile_count, [&](long long tile) {
      const index_t first = tile * packed_gemm_tile_rows;
      const index_t count = std::min(weight.rows, first + packed_gemm_tile_rows) - first;
      float* widened = tiles + detail::thread_index() * tile_floats;
      for (index_t r = 0; r < count; ++r) detail::widen_row(weight, first + r, widened + r * cols);
      const auto w_tile = detail::strided_matrix(static_cast<const float*>(widened), count, cols, cols);
      auto y_block = detail::strided_matrix(y.data() + first, tokens, count, weight.rows);
      // Inside the parallel region Eigen runs this product on the calling thread alone.
      y_block.noalias() = x_matrix * w_tile.transpose();
    });
    return;
  }

  const index_t tile_count = (weight.rows + packed_matmul_tile_rows - 1) / packed_matmul_tile_rows;
  const detail::ActivationBlockQ8* xq_all = blocks > 0 ? quantized : nullptr;
  detail::parallel_for(ctx, tile_count, [&](long long tile) {
    const index_t first = tile * packed_matmul_tile_rows;
    const index_t last = std::min(weight.rows, first + packed_matmul_tile_rows);
    for (index_t t = 0; t < tokens; ++t) {
      const float* x_row = x.data() + t * cols;
      const detail::ActivationBlockQ8* xq = xq_all ? xq_all + t * (cols / 32) : nullptr;
      detail::packed_dot_rows(isa, weight.type, weight.row(first), weight.row_bytes, x_row, xq, cols,
                              last - first, y.data() + t * weight.rows + first);
    }
  });
}

/// A packed matrix together with the owner of its bytes.
struct PackedMatrix {
  PackedMatrixView view;
  std::shared_ptr<const void> owner;
};

/// Packs a float32 matrix [rows, cols] into `type`: f16 and bf16 rounded to nearest even; Q8_0 as
/// GGUF quantizes it, per block of 32: d = max|w| / 127 (stored as binary16), q = round(w / d).
/// \throws shape_error when cols does not fit the type (Q8_0: a multiple of 32).
inline PackedMatrix pack_matrix(const TensorView<const float, 2>& weight, WeightType type) {
  const index_t rows = weight.shape(0), cols = weight.shape(1);
  const std::size_t row_bytes = weight_row_bytes(type, cols);
  const auto bytes = std::make_shared<std::vector<std::uint8_t>>(row_bytes * static_cast<std::size_t>(rows));
  const auto store16 = [](std::uint8_t* at, std::uint16_t bits) {
    at[0] = static_cast<std::uint8_t>(bits & 0xff);
    at[1] = static_cast<std::uint8_t>(bits >> 8);
  };
  for (index_t r = 0; r < rows; ++r) {
    std::uint8_t* row = bytes->data() + row_bytes * static_cast<std::size_t>(r);
    for (index_t c = 0; c < cols; c += weight_block_elements(type)) {
      const float value = weight(r, c);
      switch (type) {
        case WeightType::f32: std::memcpy(row + 4 * c, &value, 4); break;
        case WeightType::f16: store16(row + 2 * c, detail::float_to_half_bits(value)); break;
        case WeightType::bf16: store16(row + 2 * c, detail::float_to_bf16_bits(value)); break;
        case WeightType::q8_0: {
          std::uint8_t* block = row + 34 * (c / 32);
          float amax = 0;
          for (index_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(weight(r, c + i)));
          const float d = amax / 127.0f;
          const float inverse = d != 0 ? 1.0f / d : 0.0f;
          store16(block, detail::float_to_half_bits(d));
          for (index_t i = 0; i < 32; ++i)
            block[2 + i] = static_cast<std::uint8_t>(
                static_cast<std::int8_t>(std::lround(weight(r, c + i) * inverse)));
          break;
        }
      }
    }
  }
  PackedMatrix packed;
  packed.view = PackedMatrixView{type, bytes->data(), rows, cols, row_bytes};
  packed.owner = bytes;
  return packed;
}

namespace detail {

/// y = x · Wᵀ for a module's weight: packed_matmul when the parameter holds packed weights (float
/// activations only), else linear_kernel on its T storage.
template <class T>
void project(const Context<cpu>& ctx, const TensorView<const T, 2>& x,
             const Parameter<T, 2, cpu>& weight, const TensorView<T, 2>& out,
             Workspace<std::uint8_t, cpu>& scratch) {
  if constexpr (std::is_same_v<T, float>) {
    if (const auto packed = weight.packed()) {
      packed_matmul(ctx, *packed, x, out, scratch);
      return;
    }
  }
  linear_kernel<T>(ctx, x, weight.view(), out, &scratch);
}

}  // namespace detail

}  // namespace llamablocks
