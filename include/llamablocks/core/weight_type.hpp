// WeightType and PackedMatrixView: weight matrices kept in memory in the type they are stored in
// (f32, f16, bf16, or GGUF's Q8_0 blocks) rather than widened to float32, so a decode step that
// streams every weight once reads 2 or 3.8 times fewer bytes than float32 would.
//
// Row layout (a matrix is `rows` such rows, `row_bytes` apart):
//   f32    cols × float32
//   f16    cols × IEEE binary16                                   value = half
//   bf16   cols × bfloat16 (the high 16 bits of a float32)        value = bf16
//   q8_0   cols/32 blocks of { binary16 d; int8 q[32] } (34 bytes) value = d · q[i]
// All little-endian, as GGUF stores them; a Q8_0 row needs cols to be a multiple of 32.
#pragma once

#include "llamablocks/core/error.hpp"
#include "llamablocks/core/tensor.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace llamablocks {

enum class WeightType : std::uint8_t { f32, f16, bf16, q8_0 };

inline const char* to_string(WeightType type) {
  switch (type) {
    case WeightType::f32: return "f32";
    case WeightType::f16: return "f16";
    case WeightType::bf16: return "bf16";
    case WeightType::q8_0: return "q8_0";
  }
  return "(invalid)";
}

/// Elements per block (32 for q8_0, else 1) and bytes per block.
inline constexpr index_t weight_block_elements(WeightType type) {
  return type == WeightType::q8_0 ? 32 : 1;
}
inline constexpr std::size_t weight_block_bytes(WeightType type) {
  switch (type) {
    case WeightType::f32: return 4;
    case WeightType::f16: return 2;
    case WeightType::bf16: return 2;
    case WeightType::q8_0: return 34;
  }
  return 0;
}

/// Bytes of one row of `cols` elements. \throws shape_error when cols is not a whole number of
/// blocks or not positive.
inline std::size_t weight_row_bytes(WeightType type, index_t cols) {
  const index_t block = weight_block_elements(type);
  detail::require<shape_error>(cols > 0 && cols % block == 0, "weight_row_bytes: cols (", cols,
                               ") must be a positive multiple of ", block, " for ", to_string(type));
  return static_cast<std::size_t>(cols / block) * weight_block_bytes(type);
}

/// A read-only [rows, cols] weight matrix in one of the WeightTypes. Rows are `row_bytes` apart.
struct PackedMatrixView {
  WeightType type = WeightType::f32;
  const std::uint8_t* data = nullptr;
  index_t rows = 0;
  index_t cols = 0;
  std::size_t row_bytes = 0;

  const std::uint8_t* row(index_t r) const { return data + static_cast<std::size_t>(r) * row_bytes; }
};

namespace detail {

/// IEEE 754 binary16 bits to float (exact: every half is a float).
inline float half_bits_to_float(std::uint16_t half) {
  const std::uint32_t sign = static_cast<std::uint32_t>(half & 0x8000u) << 16;
  std::uint32_t exponent = (half >> 10) & 0x1fu;
  std::uint32_t mantissa = half & 0x3ffu;
  std::uint32_t bits;
  if (exponent == 0x1fu) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // infinity, or NaN keeping its payload
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);  // rebias 15 -> 127
  } else if (mantissa == 0) {
    bits = sign;  // signed zero
  } else {
    // Subnormal: mantissa · 2^-24. Shift the leading one up to the implicit bit.
    exponent = 113u;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --exponent;
    }
    bits = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

/// bfloat16 bits to float (exact).
inline float bf16_bits_to_float(std::uint16_t bf16) {
  const std::uint32_t bits = static_cast<std::uint32_t>(bf16) << 16;
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

/// float to bfloat16 bits, rounding to nearest even (NaN stays a quiet NaN).
inline std::uint16_t float_to_bf16_bits(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<std::uint16_t>(bits >> 16);
}

/// float to binary16 bits, rounding to nearest even; beyond 65504 gives infinity.
inline std::uint16_t float_to_half_bits(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const std::uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7e00u);  // NaN
  if (magnitude >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow
  if (magnitude < 0x38800000u) {
    // Subnormal half (or zero): value / 2^-24, rounded to nearest even.
    if (magnitude < 0x33000000u) return sign;  // below half the smallest subnormal
    const std::uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u;
    const int shift = 126 - static_cast<int>(magnitude >> 23);  // 14 .. 24
    const std::uint32_t half_mantissa = mantissa >> shift;
    const std::uint32_t rest = mantissa & ((1u << shift) - 1);
    const std::uint32_t halfway = 1u << (shift - 1);
    const std::uint32_t rounded =
        half_mantissa + ((rest > halfway || (rest == halfway && (half_mantissa & 1u))) ? 1u : 0u);
    return static_cast<std::uint16_t>(sign | rounded);
  }
  // Normal: rebias 127 -> 15 and round the 13 dropped mantissa bits to nearest even.
  const std::uint32_t rebased = magnitude - 0x38000000u;
  const std::uint32_t rounded = rebased + 0xfffu + ((rebased >> 13) & 1u);
  return static_cast<std::uint16_t>(sign | (rounded >> 13));
}

inline std::uint16_t load_u16(const std::uint8_t* bytes) {
  return static_cast<std::uint16_t>(bytes[0] | (bytes[1] << 8));
}

}  // namespace detail

}  // namespace llamablocks
