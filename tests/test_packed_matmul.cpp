// packed_matmul (backends/cpu/packed_matmul.hpp) and the conversions of core/weight_type.hpp.
//
// References, all written here independently of the library:
//   - binary16 and bfloat16 values from their definition, (-1)^s · 2^(e-bias) · (1 + m/2^k), in
//     double; float → half/bf16 as the nearest representable value (ties to even) found by search;
//   - y = x · Wᵀ in double over the dequantized weights; for Q8_0 over GGUF's block arithmetic with
//     the activations quantized here as ggml does (q = round(x · 127/max|x|), d_x = max|x|/127
//     rounded to binary16).
// Every kernel family the CPU runs is checked (families it lacks are reported as skipped), at
// shapes with odd column counts, tails shorter than a vector and several tokens.
// Tolerances: NMSE <= 1e-10 against the double reference (float32 accumulation only, products are
// exact); <= 1e-12 between families; Q8_0 against the unquantized float product NMSE <= 1e-3
// (what 8-bit weights and activations cost).
#include "llamablocks/backends/cpu/linear.hpp"
#include "llamablocks/backends/cpu/packed_matmul.hpp"

#include "support/random.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <iterator>
#include <random>
#include <string>
#include <utility>
#include <vector>

using namespace llamablocks;

namespace {

double half_reference(std::uint16_t bits) {
  const int sign = bits >> 15, exponent = (bits >> 10) & 31, mantissa = bits & 1023;
  double magnitude;
  if (exponent == 31) return mantissa ? NAN : (sign ? -INFINITY : INFINITY);
  if (exponent == 0)
    magnitude = std::ldexp(mantissa / 1024.0, -14);
  else
    magnitude = std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
  return sign ? -magnitude : magnitude;
}

/// The bfloat16 nearest to `value` (ties to the even bit pattern), found by comparing neighbours.
/// Past the largest finite bfloat16, infinity stands at 2^128 for the comparison, as IEEE 754
/// rounding has it (values from max + half an ulp up round to infinity).
std::uint16_t bf16_nearest(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const auto down = static_cast<std::uint16_t>(bits >> 16);
  const auto up = static_cast<std::uint16_t>(down + 1);
  const auto as_double = [](std::uint16_t b) {
    if ((b & 0x7fff) == 0x7f80) return std::copysign(std::ldexp(1.0, 128), (b & 0x8000) ? -1.0 : 1.0);
    return static_cast<double>(detail::bf16_bits_to_float(b));
  };
  const double d_down = std::fabs(static_cast<double>(value) - as_double(down));
  const double d_up = std::fabs(static_cast<double>(value) - as_double(up));
  if (d_down < d_up) return down;
  if (d_up < d_down) return up;
  return (down & 1) ? up : down;
}

/// A [rows, cols] float matrix stored as `type` (Q8_0 quantized as GGUF does, with d in binary16).
std::vector<std::uint8_t> pack(WeightType type, const std::vector<float>& w, index_t rows, index_t cols) {
  const std::size_t row_bytes = weight_row_bytes(type, cols);
  std::vector<std::uint8_t> out(row_bytes * static_cast<std::size_t>(rows));
  for (index_t r = 0; r < rows; ++r) {
    std::uint8_t* row = out.data() + row_bytes * static_cast<std::size_t>(r);
    const float* values = w.data() + r * cols;
    for (index_t c = 0; c < cols; ++c) {
      std::uint16_t bits = 0;
      if (type == WeightType::f32) std::memcpy(row + 4 * c, values + c, 4);
      if (type == WeightType::f16) bits = detail::float_to_half_bits(values[c]);
      if (type == WeightType::bf16) bits = detail::float_to_bf16_bits(values[c]);
      if (type == WeightType::f16 || type == WeightType::bf16) {
        row[2 * c] = static_cast<std::uint8_t>(bits & 0xff);
        row[2 * c + 1] = static_cast<std::uint8_t>(bits >> 8);
      }
    }
    if (type == WeightType::q8_0) {
      for (index_t b = 0; b < cols / 32; ++b) {
        double amax = 0;
        for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(static_cast<double>(values[32 * b + i])));
        const auto d_bits = detail::float_to_half_bits(static_cast<float>(amax / 127));
        const double d = half_reference(d_bits);
        std::uint8_t* block = row + 34 * b;
        block[0] = static_cast<std::uint8_t>(d_bits & 0xff);
        block[1] = static_cast<std::uint8_t>(d_bits >> 8);
        for (int i = 0; i < 32; ++i) {
          const double q = d > 0 ? std::round(values[32 * b + i] / d) : 0;
          block[2 + i] = static_cast<std::uint8_t>(static_cast<std::int8_t>(std::clamp(q, -128.0, 127.0)));
        }
      }
    }
  }
  return out;
}

/// y[t][r] in double, from the stored bytes (see the top of this file).
std::vector<double> reference(WeightType type, const std::vector<std::uint8_t>& packed, index_t rows,
                              index_t cols, const std::vector<float>& x, index_t tokens) {
  const std::size_t row_bytes = weight_row_bytes(type, cols);
  std::vector<double> y(static_cast<std::size_t>(tokens * rows));
  for (index_t t = 0; t < tokens; ++t) {
    const float* xt = x.data() + t * cols;
    for (index_t r = 0; r < rows; ++r) {
      const std::uint8_t* row = packed.data() + row_bytes * static_cast<std::size_t>(r);
      double sum = 0;
      if (type == WeightType::q8_0) {
        for (index_t b = 0; b < cols / 32; ++b) {
          double amax = 0;
          for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(static_cast<double>(xt[32 * b + i])));
          // ggml's q8_0 activations: q = round(x · 127 / max|x|), the scale max|x|/127 in binary16.
          const float inverse = amax > 0 ? 127.0f / static_cast<float>(amax) : 0.0f;
          const double d_x = half_reference(detail::float_to_half_bits(static_cast<float>(amax) / 127.0f));
          long long integer = 0;
          for (int i = 0; i < 32; ++i) {
            const long long qx = std::llround(static_cast<double>(xt[32 * b + i] * inverse));
            integer += static_cast<std::int8_t>(row[34 * b + 2 + i]) * qx;
          }
          sum += half_reference(static_cast<std::uint16_t>(row[34 * b] | (row[34 * b + 1] << 8))) * d_x *
                 static_cast<double>(integer);
        }
      } else {
        for (index_t c = 0; c < cols; ++c) {
          double w;
          if (type == WeightType::f32) {
            float value;
            std::memcpy(&value, row + 4 * c, 4);
            w = value;
          } else {
            const auto bits = static_cast<std::uint16_t>(row[2 * c] | (row[2 * c + 1] << 8));
            w = type == WeightType::f16 ? half_reference(bits) : detail::bf16_bits_to_float(bits);
          }
          sum += w * xt[c];
        }
      }
      y[static_cast<std::size_t>(t * rows + r)] = sum;
    }
  }
  return y;
}

std::vector<CpuIsa> runnable_families() {
  std::vector<CpuIsa> families;
  for (CpuIsa isa : {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512, CpuIsa::avx512_vnni, CpuIsa::avx512_bf16,
                     CpuIsa::avx512_amx}) {
    if (cpu_supports(isa))
      families.push_back(isa);
    else
      WARN("this CPU lacks the " << to_string(isa) << " family: its kernels are not checked here");
  }
  return families;
}

}  // namespace

TEST_CASE("weight types: binary16 and bfloat16 conversions", "[packed]") {
  for (std::uint32_t bits = 0; bits < 65536; ++bits) {
    const auto half = static_cast<std::uint16_t>(bits);
    const double expected = half_reference(half);
    const float actual = detail::half_bits_to_float(half);
    if (std::isnan(expected)) {
      REQUIRE(std::isnan(actual));
      continue;
    }
    REQUIRE(static_cast<double>(actual) == expected);
    // Every half survives the round trip through float.
    REQUIRE(detail::float_to_half_bits(actual) == half);
  }
  // float -> half: the nearest half, ties to even, checked on random floats of all magnitudes.
  std::mt19937 generator(11);
  std::uniform_int_distribution<std::uint32_t> any_bits;
  std::vector<double> halves;
  for (std::uint32_t bits = 0; bits < 0x7c00; ++bits) halves.push_back(half_reference(static_cast<std::uint16_t>(bits)));
  halves.push_back(INFINITY);
  for (int i = 0; i < 200000; ++i) {
    std::uint32_t bits = any_bits(generator);
    float value;
    std::memcpy(&value, &bits, 4);
    if (std::isnan(value)) continue;
    const double magnitude = std::fabs(static_cast<double>(value));
    const auto above = std::lower_bound(halves.begin(), halves.end(), magnitude);
    std::uint16_t expected;
    if (magnitude >= 65520.0) {
      expected = 0x7c00;  // rounds past the largest half, 65504
    } else if (*above == magnitude || above == halves.begin()) {
      expected = static_cast<std::uint16_t>(above - halves.begin());
    } else {
      const auto below = above - 1;
      const double d_below = magnitude - *below, d_above = *above - magnitude;
      auto index = static_cast<std::uint16_t>((d_below < d_above || (d_below == d_above && ((below - halves.begin()) % 2 == 0)))
                                                  ? below - halves.begin()
                                                  : above - halves.begin());
      expected = index;
    }
    if (std::signbit(value)) expected = static_cast<std::uint16_t>(expected | 0x8000);
    INFO("value " << value);
    REQUIRE(detail::float_to_half_bits(value) == expected);
    REQUIRE(detail::float_to_bf16_bits(value) == bf16_nearest(value));
  }
  CHECK(detail::float_to_bf16_bits(1.0f) == 0x3f80);
  CHECK(detail::float_to_half_bits(1.0f) == 0x3c00);
  CHECK(detail::float_to_half_bits(65504.0f) == 0x7bff);
  CHECK(detail::float_to_half_bits(-0.0f) == 0x8000);
  CHECK(std::isnan(detail::bf16_bits_to_float(detail::float_to_bf16_bits(NAN))));
  CHECK(std::isnan(detail::half_bits_to_float(detail::float_to_half_bits(NAN))));
}

TEST_CASE("packed_matmul: every weight type and kernel family against a double reference", "[packed]") {
  const Context<cpu> ctx(2);
  Workspace<std::uint8_t, cpu> scratch;
  const auto families = runnable_families();
  struct Case {
    index_t rows, cols, tokens;
  };
  for (WeightType type : {WeightType::f32, WeightType::f16, WeightType::bf16, WeightType::q8_0}) {
    const bool blocked = type == WeightType::q8_0;
    const std::vector<Case> cases = blocked
        ? std::vector<Case>{{1, 32, 1}, {7, 64, 3}, {33, 96, 1}, {17, 160, 9}, {48, 2048, 2},
                            {130, 96, 20}}
        : std::vector<Case>{{1, 1, 1}, {7, 67, 3}, {33, 131, 1}, {17, 200, 9}, {48, 2048, 2},
                            {130, 67, 20}};
    for (const Case& shape : cases) {
      INFO(to_string(type) << " rows " << shape.rows << " cols " << shape.cols << " tokens " << shape.tokens);
      const auto w = test::random_tensor<float, 2>({shape.rows, shape.cols}, 3, 0.05);
      const auto x = test::random_tensor<float, 2>({shape.tokens, shape.cols}, 4);
      const std::vector<float> w_values(w.cview().data(), w.cview().data() + w.size());
      const std::vector<float> x_values(x.cview().data(), x.cview().data() + x.size());
      const auto packed = pack(type, w_values, shape.rows, shape.cols);
      const PackedMatrixView view{type, packed.data(), shape.rows, shape.cols,
                                  weight_row_bytes(type, shape.cols)};
      const auto expected = reference(type, packed, shape.rows, shape.cols, x_values, shape.tokens);
      Tensor<float, 2> scalar_y({shape.tokens, shape.rows});
      packed_matmul(ctx, view, x.cview(), scalar_y.view(), scratch, CpuIsa::scalar);
      for (CpuIsa isa : families) {
        INFO("family " << to_string(isa));
        Tensor<float, 2> y({shape.tokens, shape.rows});
        packed_matmul(ctx, view, x.cview(), y.view(), scratch, isa);
        test::require_close("packed_matmul vs double reference", y.cview().data(), expected.data(),
                            expected.size(), test::tolerance<float>::nmse);
        test::require_close("packed_matmul family vs scalar", y.cview().data(), scalar_y.cview().data(),
                            expected.size(), 1e-12);
      }
      if (blocked) {
        // What 8 bits cost: against the float product of the unquantized matrices.
        std::vector<double> exact(expected.size());
        for (index_t t = 0; t < shape.tokens; ++t)
          for (index_t r = 0; r < shape.rows; ++r) {
            double sum = 0;
            for (index_t c = 0; c < shape.cols; ++c)
              sum += static_cast<double>(w_values[static_cast<std::size_t>(r * shape.cols + c)]) *
                     x_values[static_cast<std::size_t>(t * shape.cols + c)];
            exact[static_cast<std::size_t>(t * shape.rows + r)] = sum;
          }
        test::require_close("q8_0 vs unquantized", scalar_y.cview().data(), exact.data(), exact.size(), 1e-3);
      }
    }
  }
}

TEST_CASE("packed_matmul: avx512_vnni gives the avx512 family's bits for Q8_0 (exact int32 sums)",
          "[packed]") {
  if (!cpu_supports(CpuIsa::avx512_vnni)) {
    WARN("SKIPPED: this CPU lacks AVX512_VNNI; the vpdpbusd kernels are not run here");
    return;
  }
  const Context<cpu> ctx(2);
  Workspace<std::uint8_t, cpu> scratch;
  // Rows not a multiple of the 4-row group, an odd block count (the single-block tail), decode
  // and two-token products (both through the dot kernels).
  for (const index_t cols : {index_t{32}, index_t{96}, index_t{2048}}) {
    for (const index_t tokens : {index_t{1}, index_t{3}}) {
      INFO("cols " << cols << " tokens " << tokens);
      const index_t rows = 37;
      const auto w = test::random_tensor<float, 2>({rows, cols}, 51, 0.1);
      const auto x = test::random_tensor<float, 2>({tokens, cols}, 52);
      const std::vector<float> w_values(w.cview().data(), w.cview().data() + w.size());
      const auto packed = pack(WeightType::q8_0, w_values, rows, cols);
      const PackedMatrixView view{WeightType::q8_0, packed.data(), rows, cols,
                                  weight_row_bytes(WeightType::q8_0, cols)};
      Tensor<float, 2> plain({tokens, rows}), vnni({tokens, rows});
      packed_matmul(ctx, view, x.cview(), plain.view(), scratch, CpuIsa::avx512);
      packed_matmul(ctx, view, x.cview(), vnni.view(), scratch, CpuIsa::avx512_vnni);
      CHECK(std::memcmp(plain.cview().data(), vnni.cview().data(),
                        sizeof(float) * static_cast<std::size_t>(plain.size())) == 0);
    }
  }
}

TEST_CASE("packed_matmul: a prefill-sized product (GEMM path) equals the tokens one at a time",
          "[packed]") {
  const Context<cpu> ctx(2);
  Workspace<std::uint8_t, cpu> scratch;
  const index_t rows = 150, cols = 320, tokens = 12;  // rows: two GEMM tiles and a partial one
  for (WeightType type : {WeightType::f32, WeightType::f16, WeightType::bf16, WeightType::q8_0}) {
    INFO(to_string(type));
    const auto w = test::random_tensor<float, 2>({rows, cols}, 31, 0.05);
    const auto x = test::random_tensor<float, 2>({tokens, cols}, 32);
    const std::vector<float> w_values(w.cview().data(), w.cview().data() + w.size());
    const auto packed = pack(type, w_values, rows, cols);
    const PackedMatrixView view{type, packed.data(), rows, cols, weight_row_bytes(type, cols)};
    Tensor<float, 2> batched({tokens, rows}), one_by_one({tokens, rows});
    packed_matmul(ctx, view, x.cview(), batched.view(), scratch);
    for (index_t t = 0; t < tokens; ++t)
      packed_matmul(ctx, view, TensorView<const float, 2>(x.cview().data() + t * cols, {1, cols}),
                    TensorView<float, 2>(one_by_one.view().data() + t * rows, {1, rows}), scratch);
    test::require_close("batched vs one token at a time", batched.cview().data(),
                        one_by_one.cview().data(), static_cast<std::size_t>(tokens * rows), 1e-12);
  }
}

TEST_CASE("packed_matmul: a NaN or an infinity in x makes its row of y NaN for Q8_0, and no other",
          "[packed][hostile]") {
  // The activations are quantized for Q8_0; a block holding NaN or ±inf has no int8 form.
  const index_t rows = 40, cols = 96;
  const auto w = test::random_tensor<float, 2>({rows, cols}, 41, 0.1);
  const std::vector<float> w_values(w.cview().data(), w.cview().data() + w.size());
  const auto packed = pack(WeightType::q8_0, w_values, rows, cols);
  const PackedMatrixView view{WeightType::q8_0, packed.data(), rows, cols,
                              weight_row_bytes(WeightType::q8_0, cols)};
  Workspace<std::uint8_t, cpu> scratch;
  const float bad = GENERATE(NAN, INFINITY, -INFINITY);
  const index_t tokens = GENERATE(1, 2, 20);  // decode kernels, and the GEMM path
  INFO("bad value " << bad << ", " << tokens << " tokens");
  auto x = test::random_tensor<float, 2>({tokens, cols}, 42);
  const index_t bad_token = tokens - 1;
  x.view()(bad_token, 37) = bad;
  for (const int threads : {1, 2}) {
    Tensor<float, 2> y({tokens, rows});
    packed_matmul(Context<cpu>(threads), view, x.cview(), y.view(), scratch);
    for (index_t t = 0; t < tokens; ++t)
      for (index_t r = 0; r < rows; ++r) {
        if (t == bad_token)
          REQUIRE(std::isnan(y.cview()(t, r)));
        else
          REQUIRE(std::isfinite(y.cview()(t, r)));
      }
  }
}

TEST_CASE("packed_matmul: one thread and two give the same bits, and bad shapes are refused", "[packed]") {
  const index_t rows = 37, cols = 256, tokens = 5;
  const auto w = test::random_tensor<float, 2>({rows, cols}, 8, 0.1);
  const auto x = test::random_tensor<float, 2>({tokens, cols}, 9);
  const std::vector<float> w_values(w.cview().data(), w.cview().data() + w.size());
  const auto packed = pack(WeightType::q8_0, w_values, rows, cols);
  const PackedMatrixView view{WeightType::q8_0, packed.data(), rows, cols, weight_row_bytes(WeightType::q8_0, cols)};
  Workspace<std::uint8_t, cpu> scratch;
  Tensor<float, 2> one({tokens, rows}), two({tokens, rows});
  packed_matmul(Context<cpu>(1), view, x.cview(), one.view(), scratch);
  packed_matmul(Context<cpu>(2), view, x.cview(), two.view(), scratch);
  CHECK(std::memcmp(one.cview().data(), two.cview().data(), sizeof(float) * static_cast<std::size_t>(one.size())) == 0);

  const Context<cpu> ctx(1);
  Tensor<float, 2> wrong_x({tokens, cols + 32}), wrong_y({tokens, rows + 1});
  CHECK_THROWS_AS(packed_matmul(ctx, view, wrong_x.cview(), one.view(), scratch), shape_error);
  CHECK_THROWS_AS(packed_matmul(ctx, view, x.cview(), wrong_y.view(), scratch), shape_error);
  CHECK_THROWS_WITH(weight_row_bytes(WeightType::q8_0, 40),
                    Catch::Matchers::Contains("cols (40) must be a positive multiple of 32 for q8_0"));
  PackedMatrixView short_rows = view;
  short_rows.row_bytes = 10;
  CHECK_THROWS_AS(packed_matmul(ctx, short_rows, x.cview(), one.view(), scratch), shape_error);
}

TEST_CASE("Parameter::assign_packed: Linear reads the packed rows, and misuse is refused", "[packed]") {
  const index_t in = 64, out = 24, tokens = 3;
  Linear<cpu, float> linear(in, out);
  const auto w = test::random_tensor<float, 2>({out, in}, 21, 0.1);
  const auto x = test::random_tensor<float, 3>({1, tokens, in}, 22);
  linear.weight().copy_from(w.cview());
  Tensor<float, 3> unpacked({1, tokens, out});
  const Context<cpu> ctx(2);
  linear.forward(ctx, x.cview(), unpacked.view());

  PackedMatrix packed = pack_matrix(w.cview(), WeightType::bf16);
  linear.weight().assign_packed(packed.view, packed.owner);
  REQUIRE(linear.weight().is_packed());
  CHECK(linear.weight().packed()->type == WeightType::bf16);
  Tensor<float, 3> from_packed({1, tokens, out});
  linear.forward(ctx, x.cview(), from_packed.view());
  Workspace<std::uint8_t, cpu> scratch;
  Tensor<float, 2> expected({tokens, out});
  packed_matmul(ctx, packed.view, reshape<2>(x.cview(), {tokens, in}), expected.view(), scratch);
  CHECK(std::memcmp(from_packed.cview().data(), expected.cview().data(), sizeof(float) * 3 * 24) == 0);
  // bf16 weights: within the rounding of 8 mantissa bits of the float32 product.
  test::require_close("bf16 Linear vs float32", from_packed.cview().data(), unpacked.cview().data(),
                      static_cast<std::size_t>(tokens * out), 1e-4);

  CHECK_THROWS_WITH(std::as_const(linear.weight()).view(),
                    Catch::Matchers::Contains("Linear.weight holds packed bf16 weights"));
  PackedMatrixView wrong = packed.view;
  wrong.rows = out + 1;
  CHECK_THROWS_AS(linear.weight().assign_packed(wrong, packed.owner), shape_error);
  CHECK(linear.weight().packed()->rows == out);  // unchanged by the refused call
  // copy_from makes it float32 again.
  linear.weight().copy_from(w.cview());
  CHECK_FALSE(linear.weight().is_packed());
  Tensor<float, 3> again({1, tokens, out});
  linear.forward(ctx, x.cview(), again.view());
  CHECK(std::memcmp(again.cview().data(), unpacked.cview().data(), sizeof(float) * 3 * 24) == 0);
}

TEST_CASE("cpu_supports: the kept answers are CPUID's, the families nest, cpu_isa is the best", "[packed]") {
  const CpuIsa families[] = {CpuIsa::scalar, CpuIsa::avx2, CpuIsa::avx512, CpuIsa::avx512_vnni,
                             CpuIsa::avx512_bf16, CpuIsa::avx512_amx};
  for (const CpuIsa isa : families) {
    INFO(to_string(isa));
    // Asked twice (the second answer is the kept one), both the same as asking CPUID again.
    REQUIRE(cpu_supports(isa) == detail::cpu_detect(isa));
    REQUIRE(cpu_supports(isa) == detail::cpu_detect(isa));
  }
  REQUIRE(cpu_supports(CpuIsa::scalar));
  // Each AVX-512 family extends the one before it.
  for (std::size_t i = 3; i < std::size(families); ++i)
    if (cpu_supports(families[i])) REQUIRE(cpu_supports(families[i - 1]));
  CpuIsa best = CpuIsa::scalar;
  for (const CpuIsa isa : families)
    if (cpu_supports(isa)) best = isa;
  REQUIRE(cpu_isa() == best);
  REQUIRE_FALSE(cpu_supports(static_cast<CpuIsa>(99)));
}
