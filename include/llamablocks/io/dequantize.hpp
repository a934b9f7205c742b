// ggml tensor types and their dequantization to float32, as stored in GGUF files.
//
// Every layout is little-endian and is read byte by byte, so the code needs neither F16C nor a
// little-endian host. A row of n elements of a block type holds n / block_size blocks:
//   F16    IEEE 754 binary16 (subnormals, infinities and NaN included)
//   BF16   the upper 16 bits of a float32
//   Q8_0   32 elements: fp16 scale d, int8 q[32];                      x[i] = d * q[i]
//   Q4_0   32 elements: fp16 scale d, 16 bytes of nibbles;             x[i] = d * (q[i] - 8)
//   Q4_1   32 elements: fp16 scale d, fp16 minimum m, 16 bytes;        x[i] = d * q[i] + m
// In Q4_0 and Q4_1, byte j holds element j in its low nibble and element j + 16 in its high one.
#pragma once

#include "llamablocks/core/weight_type.hpp"

#include "llamablocks/core/error.hpp"

#include <cstdint>
#include <cstring>
#include <optional>

namespace llamablocks::io {

/// The ggml tensor types, numbered as in ggml's `enum ggml_type` (ids 4, 5 and 31-33 are retired).
enum class GgmlType : std::uint32_t {
  f32 = 0,
  f16 = 1,
  q4_0 = 2,
  q4_1 = 3,
  q5_0 = 6,
  q5_1 = 7,
  q8_0 = 8,
  q2_k = 10,
  q3_k = 11,
  q4_k = 12,
  q5_k = 13,
  q6_k = 14,
  q8_k = 15,
  iq2_xxs = 16,
  iq2_xs = 17,
  iq3_xxs = 18,
  iq1_s = 19,
  iq4_nl = 20,
  iq3_s = 21,
  iq2_s = 22,
  iq4_xs = 23,
  i8 = 24,
  i16 = 25,
  i32 = 26,
  i64 = 27,
  f64 = 28,
  iq1_m = 29,
  bf16 = 30,
  tq1_0 = 34,
  tq2_0 = 35,
  mxfp4 = 39,
};

/// Storage layout of a ggml type: `block_bytes` bytes hold `block_size` consecutive elements of a
/// row; a row's length must be a multiple of `block_size`.
struct GgmlTypeTraits {
  const char* name;
  std::int64_t block_size;
  std::int64_t block_bytes;
  bool dequantizable;  ///< whether dequantize_row() supports it
};

/// Layout of a ggml type id, or nullopt for an id this reader does not know (Q8_1, which ggml only
/// uses for activations, is deliberately absent).
inline std::optional<GgmlTypeTraits> ggml_type_traits(std::uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::f32: return GgmlTypeTraits{"F32", 1, 4, true};
    case GgmlType::f16: return GgmlTypeTraits{"F16", 1, 2, true};
    case GgmlType::q4_0: return GgmlTypeTraits{"Q4_0", 32, 18, true};
    case GgmlType::q4_1: return GgmlTypeTraits{"Q4_1", 32, 20, true};
    case GgmlType::q5_0: return GgmlTypeTraits{"Q5_0", 32, 22, false};
    case GgmlType::q5_1: return GgmlTypeTraits{"Q5_1", 32, 24, false};
    case GgmlType::q8_0: return GgmlTypeTraits{"Q8_0", 32, 34, true};
    case GgmlType::q2_k: return GgmlTypeTraits{"Q2_K", 256, 84, false};
    case GgmlType::q3_k: return GgmlTypeTraits{"Q3_K", 256, 110, false};
    case GgmlType::q4_k: return GgmlTypeTraits{"Q4_K", 256, 144, false};
    case GgmlType::q5_k: return GgmlTypeTraits{"Q5_K", 256, 176, false};
    case GgmlType::q6_k: return GgmlTypeTraits{"Q6_K", 256, 210, false};
    case GgmlType::q8_k: return GgmlTypeTraits{"Q8_K", 256, 292, false};
    case GgmlType::iq2_xxs: return GgmlTypeTraits{"IQ2_XXS", 256, 66, false};
    case GgmlType::iq2_xs: return GgmlTypeTraits{"IQ2_XS", 256, 74, false};
    case GgmlType::iq3_xxs: return GgmlTypeTraits{"IQ3_XXS", 256, 98, false};
    case GgmlType::iq1_s: return GgmlTypeTraits{"IQ1_S", 256, 50, false};
    case GgmlType::iq4_nl: return GgmlTypeTraits{"IQ4_NL", 32, 18, false};
    case GgmlType::iq3_s: return GgmlTypeTraits{"IQ3_S", 256, 110, false};
    case GgmlType::iq2_s: return GgmlTypeTraits{"IQ2_S", 256, 82, false};
    case GgmlType::iq4_xs: return GgmlTypeTraits{"IQ4_XS", 256, 136, false};
    case GgmlType::i8: return GgmlTypeTraits{"I8", 1, 1, false};
    case GgmlType::i16: return GgmlTypeTraits{"I16", 1, 2, false};
    case GgmlType::i32: return GgmlTypeTraits{"I32", 1, 4, false};
    case GgmlType::i64: return GgmlTypeTraits{"I64", 1, 8, false};
    case GgmlType::f64: return GgmlTypeTraits{"F64", 1, 8, false};
    case GgmlType::iq1_m: return GgmlTypeTraits{"IQ1_M", 256, 56, false};
    case GgmlType::bf16: return GgmlTypeTraits{"BF16", 1, 2, true};
    case GgmlType::tq1_0: return GgmlTypeTraits{"TQ1_0", 256, 54, false};
    case GgmlType::tq2_0: return GgmlTypeTraits{"TQ2_0", 256, 66, false};
    case GgmlType::mxfp4: return GgmlTypeTraits{"MXFP4", 32, 17, false};
  }
  return std::nullopt;
}

/// IEEE 754 binary16 bits to float (exact: every half is a float).
inline float fp16_to_float(std::uint16_t half) { return detail::half_bits_to_float(half); }

/// bfloat16 bits to float (exact).
inline float bf16_to_float(std::uint16_t bf16) { return detail::bf16_bits_to_float(bf16); }

}  // namespace llamablocks::io

namespace llamablocks::detail {

inline std::uint16_t load_u16_le(const unsigned char* bytes) {
  return static_cast<std::uint16_t>(bytes[0] | (bytes[1] << 8));
}

inline void dequantize_f16(const unsigned char* src, float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = io::fp16_to_float(load_u16_le(src + 2 * i));
}

inline void dequantize_bf16(const unsigned char* src, float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) dst[i] = io::bf16_to_float(load_u16_le(src + 2 * i));
}

inline void dequantize_f32(const unsigned char* src, float* dst, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) {
    const unsigned char* p = src + 4 * i;
    const std::uint32_t bits = static_cast<std::uint32_t>(p[0]) |
                               (static_cast<std::uint32_t>(p[1]) << 8) |
                               (static_cast<std::uint32_t>(p[2]) << 16) |
                               (static_cast<std::uint32_t>(p[3]) << 24);
    std::memcpy(dst + i, &bits, sizeof(float));
  }
}

inline void dequantize_q8_0(const unsigned char* src, float* dst, std::int64_t n) {
  for (std::int64_t b = 0; b < n / 32; ++b, src += 34, dst += 32) {
    const float d = io::fp16_to_float(load_u16_le(src));
    for (int i = 0; i < 32; ++i) {
      const int q = src[2 + i] < 128 ? src[2 + i] : src[2 + i] - 256;  // int8, two's complement
      dst[i] = d * static_cast<float>(q);
    }
  }
}

inline void dequantize_q4_0(const unsigned char* src, float* dst, std::int64_t n) {
  for (std::int64_t b = 0; b < n / 32; ++b, src += 18, dst += 32) {
    const float d = io::fp16_to_float(load_u16_le(src));
    for (int j = 0; j < 16; ++j) {
      const unsigned char byte = src[2 + j];
      dst[j] = d * static_cast<float>((byte & 0x0f) - 8);
      dst[j + 16] = d * static_cast<float>((byte >> 4) - 8);
    }
  }
}

inline void dequantize_q4_1(const unsigned char* src, float* dst, std::int64_t n) {
  for (std::int64_t b = 0; b < n / 32; ++b, src += 20, dst += 32) {
    const float d = io::fp16_to_float(load_u16_le(src));
    const float m = io::fp16_to_float(load_u16_le(src + 2));
    for (int j = 0; j < 16; ++j) {
      const unsigned char byte = src[4 + j];
      dst[j] = d * static_cast<float>(byte & 0x0f) + m;
      dst[j + 16] = d * static_cast<float>(byte >> 4) + m;
    }
  }
}

}  // namespace llamablocks::detail

namespace llamablocks::io {

/// Decodes `n` consecutive elements of `type` starting at `src` into `dst`.
/// \param type one of F32, F16, BF16, Q8_0, Q4_0, Q4_1; any other throws llamablocks::error.
/// \param src  n / block_size * block_bytes readable bytes (any alignment).
/// \param dst  n writable floats; must not overlap `src`.
/// \param n    element count, a multiple of the type's block size (else llamablocks::error).
inline void dequantize_row(GgmlType type, const void* src, float* dst, std::int64_t n) {
  const auto traits = ggml_type_traits(static_cast<std::uint32_t>(type));
  detail::require<error>(traits && traits->dequantizable,
                                      "dequantize_row: unsupported ggml type ",
                                      traits ? traits->name : "(unknown)", " (id ",
                                      static_cast<std::uint32_t>(type), ")");
  detail::require<error>(n >= 0 && n % traits->block_size == 0,
                                      "dequantize_row: element count ", n,
                                      " is not a multiple of the ", traits->name, " block size ",
                                      traits->block_size);
  const auto* bytes = static_cast<const unsigned char*>(src);
  switch (type) {
    case GgmlType::f32: detail::dequantize_f32(bytes, dst, n); break;
    case GgmlType::f16: detail::dequantize_f16(bytes, dst, n); break;
    case GgmlType::bf16: detail::dequantize_bf16(bytes, dst, n); break;
    case GgmlType::q8_0: detail::dequantize_q8_0(bytes, dst, n); break;
    case GgmlType::q4_0: detail::dequantize_q4_0(bytes, dst, n); break;
    case GgmlType::q4_1: detail::dequantize_q4_1(bytes, dst, n); break;
    default: break;  // unreachable: refused above
  }
}

}  // namespace llamablocks::io
