// gemm_avx512 (backends/cpu/gemm.hpp), directly and through packed_matmul and linear_kernel;
// gemm_q8_0_amx and gemm_bf16_amx (backends/cpu/gemm_amx.hpp) and gemm_bf16_avx512
// (backends/cpu/gemm_bf16.hpp), directly and through packed_matmul.
//
// Reference: y = x · Wᵀ in double, with W decoded from its stored bytes here (binary16 from its
// definition, bfloat16 as the high half of a float32, Q8_0 as d · q) and, for Q8_0, x quantized
// here as ggml does (q = round(x · 127/max|x|), d_x = max|x|/127 rounded to binary16).
// Shapes: every remainder of the blocking (mr = 14 rows of x, 32 columns of y per panel, 16 depths
// per packed step, 128 per depth block): m in {1, 2, 3, 14, 15, 27, 29, 128, 130}, n in {1, 31,
// 32, 33, 100, 257}, k in {1, 15, 16, 17, 300, 1000}, on 1 and 2 threads, y rows strided with
// guard columns that must stay untouched, written and accumulated.
// AMX shapes: every remainder of its blocking (pairs of 16-token tiles, pairs of 16-column panels,
// one or two Q8_0 blocks per packing step): m in {8, 15, 16, 17, 31, 32, 33, 130}, n in {1, 15,
// 16, 17, 31, 32, 33, 100}, k in {32, 64, 96, 2048}. The bf16-product GEMMs (x rounded to bfloat16
// first, in the reference too): m in {1, 7, 8, 9, 15, 17, 24, 31, 33, 130} (vdpbf16ps works in
// groups of 8 rows), n in {1, 15, 16, 17, 33, 100}, k in {1, 17, 32, 33, 300, 2048}.
// Tolerance: NMSE <= tolerance<float>::nmse (1e-10) against the double reference (float32 sums,
// exact products), as every float32 kernel of the suite.
#include "llamablocks/backends/cpu/eigen.hpp"
#include "llamablocks/backends/cpu/gemm.hpp"
#include "llamablocks/backends/cpu/gemm_amx.hpp"
#include "llamablocks/backends/cpu/gemm_bf16.hpp"
#include "llamablocks/backends/cpu/packed_matmul.hpp"

#include "support/random.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

using namespace llamablocks;

namespace {

bool have_avx512() {
  if (cpu_supports(CpuIsa::avx512)) return true;
  WARN("this CPU lacks AVX-512: gemm_avx512 is not checked here");
  return false;
}

bool have_amx() {
  if (cpu_supports(CpuIsa::avx512_amx)) return true;
  WARN("SKIPPED: this CPU (or its operating system) offers no AMX-INT8: gemm_q8_0_amx is not run here");
  return false;
}

bool have_avx512_bf16() {
  if (cpu_supports(CpuIsa::avx512_bf16)) return true;
  WARN("SKIPPED: this CPU lacks AVX512_BF16: gemm_bf16_avx512 (vdpbf16ps) is not run here");
  return false;
}

/// The bf16-product GEMMs this CPU runs: gemm_bf16_avx512 (vdpbf16ps) and gemm_bf16_amx.
using Bf16Gemm = void (*)(const Context<cpu>&, const float*, index_t, index_t, const PackedMatrixView&,
                          float*, index_t, std::uint8_t*);
struct Bf16GemmFamily {
  CpuIsa isa;
  const char* name;
  Bf16Gemm product;
};
std::vector<Bf16GemmFamily> bf16_gemm_families() {
  std::vector<Bf16GemmFamily> families;
  if (have_avx512_bf16()) families.push_back({CpuIsa::avx512_bf16, "gemm_bf16_avx512", detail::gemm_bf16_avx512});
  if (have_amx()) families.push_back({CpuIsa::avx512_amx, "gemm_bf16_amx", detail::gemm_bf16_amx});
  return families;
}

double half_value(std::uint16_t bits) {
  const int sign = bits >> 15, exponent = (bits >> 10) & 31, mantissa = bits & 1023;
  const double magnitude = exponent == 0 ? std::ldexp(mantissa / 1024.0, -14)
                                         : std::ldexp(1.0 + mantissa / 1024.0, exponent - 15);
  return sign ? -magnitude : magnitude;
}

/// W: [rows, cols] decoded from its bytes to double.
std::vector<double> decode(const PackedMatrixView& w) {
  std::vector<double> out(static_cast<std::size_t>(w.rows * w.cols));
  for (index_t r = 0; r < w.rows; ++r) {
    const std::uint8_t* row = w.row(r);
    for (index_t c = 0; c < w.cols; ++c) {
      double value = 0;
      const auto u16 = [&](const std::uint8_t* at) {
        return static_cast<std::uint16_t>(at[0] | (at[1] << 8));
      };
      switch (w.type) {
        case WeightType::f32: {
          float f;
          std::memcpy(&f, row + 4 * c, 4);
          value = f;
          break;
        }
        case WeightType::f16: value = half_value(u16(row + 2 * c)); break;
        case WeightType::bf16: {
          const std::uint32_t bits = static_cast<std::uint32_t>(u16(row + 2 * c)) << 16;
          float f;
          std::memcpy(&f, &bits, 4);
          value = f;
          break;
        }
        case WeightType::q8_0: {
          const std::uint8_t* block = row + 34 * (c / 32);
          value = half_value(u16(block)) * static_cast<std::int8_t>(block[2 + c % 32]);
          break;
        }
      }
      out[static_cast<std::size_t>(r * w.cols + c)] = value;
    }
  }
  return out;
}

/// x as the Q8_0 kernels see it: each block of 32 quantized as ggml does, then d_x · q_x.
std::vector<double> quantized_activations(const float* x, index_t tokens, index_t cols) {
  std::vector<double> out(static_cast<std::size_t>(tokens * cols));
  for (index_t t = 0; t < tokens; ++t)
    for (index_t b = 0; b < cols / 32; ++b) {
      const float* values = x + t * cols + 32 * b;
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(values[i]));
      const float inverse = amax > 0 ? 127.0f / amax : 0.0f;
      const double d_x = half_value(detail::float_to_half_bits(amax / 127.0f));
      for (int i = 0; i < 32; ++i)
        out[static_cast<std::size_t>(t * cols + 32 * b + i)] =
            d_x * static_cast<double>(std::nearbyint(values[i] * inverse));
    }
  return out;
}

/// y: [m, n] = x: [m, k] · w: [n, k]ᵀ in double.
std::vector<double> product(const std::vector<double>& x, const std::vector<double>& w, index_t m,
                            index_t n, index_t k) {
  std::vector<double> y(static_cast<std::size_t>(m * n));
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      double sum = 0;
      for (index_t p = 0; p < k; ++p)
        sum += x[static_cast<std::size_t>(i * k + p)] * w[static_cast<std::size_t>(j * k + p)];
      y[static_cast<std::size_t>(i * n + j)] = sum;
    }
  return y;
}

std::vector<double> as_double(const TensorView<const float, 2>& view) {
  return std::vector<double>(view.data(), view.data() + view.size());
}

/// The [m, n] block of a y whose rows are ldy apart.
std::vector<float> block_of(const std::vector<float>& y, index_t m, index_t n, index_t ldy) {
  std::vector<float> out(static_cast<std::size_t>(m * n));
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j)
      out[static_cast<std::size_t>(i * n + j)] = y[static_cast<std::size_t>(i * ldy + j)];
  return out;
}

constexpr float guard = -12345.0f;

/// Runs product(ctx, y, ldy) on 1 and 2 threads into an [m, n] y whose rows have guard columns and
/// which has a guard row below it, and checks it against `expected` (NMSE), the guards (untouched)
/// and that both thread counts give the same bits.
template <class Product>
void check_amx_product(const char* label, index_t m, index_t n, const std::vector<double>& expected,
                       Product&& product) {
  const index_t ldy = n + 5;
  std::vector<float> first;
  for (const int threads : {1, 2}) {
    INFO("threads " << threads);
    const Context<cpu> ctx(threads);
    std::vector<float> y(static_cast<std::size_t>((m + 1) * ldy), guard);
    product(ctx, y.data(), ldy);
    const auto written = block_of(y, m, n, ldy);
    test::require_close(label, written.data(), expected.data(), expected.size(), test::tolerance<float>::nmse);
    for (index_t i = 0; i <= m; ++i)
      for (index_t j = i < m ? n : 0; j < ldy; ++j) REQUIRE(y[static_cast<std::size_t>(i * ldy + j)] == guard);
    if (first.empty())
      first = written;
    else
      REQUIRE(std::memcmp(first.data(), written.data(), sizeof(float) * first.size()) == 0);
  }
}

/// round_to_bf16_avx512 on 16 values (the tests are built for the baseline ISA, so the vector code
/// needs a function compiled for AVX-512).
LLAMABLOCKS_TARGET_AVX512 void round_sixteen_to_bf16(const float* values, std::uint16_t* out) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), detail::round_to_bf16_avx512(_mm512_loadu_ps(values)));
}

}  // namespace

TEST_CASE("gemm_avx512: every remainder of the blocking against a double reference", "[gemm]") {
  if (!have_avx512()) return;
  Workspace<std::uint8_t, cpu> scratch;
  for (const index_t k : {1, 15, 16, 17, 300, 1000})
    for (const index_t n : {1, 31, 32, 33, 100, 257}) {
      const auto w_values = test::random_tensor<float, 2>({n, k}, static_cast<std::uint32_t>(7 * n + k), 0.1);
      const PackedMatrixView w{WeightType::f32, reinterpret_cast<const std::uint8_t*>(w_values.cview().data()),
                               n, k, sizeof(float) * static_cast<std::size_t>(k)};
      const auto w_double = as_double(w_values.cview());
      for (const index_t m : {1, 2, 3, 14, 15, 27, 29, 128, 130}) {
        const auto x = test::random_tensor<float, 2>({m, k}, static_cast<std::uint32_t>(m + 3 * k));
        const auto expected = product(as_double(x.cview()), w_double, m, n, k);
        const index_t ldy = n + 5;
        for (const int threads : {1, 2}) {
          INFO("m " << m << " n " << n << " k " << k << " threads " << threads);
          const Context<cpu> ctx(threads);
          std::vector<float> y(static_cast<std::size_t>(m * ldy), guard);
          detail::gemm_avx512(ctx, x.cview().data(), k, m, w, y.data(), ldy, false, scratch);
          const auto written = block_of(y, m, n, ldy);
          test::require_close("gemm_avx512 vs double reference", written.data(), expected.data(),
                              expected.size(), test::tolerance<float>::nmse);
          // Accumulating the same product again doubles it.
          detail::gemm_avx512(ctx, x.cview().data(), k, m, w, y.data(), ldy, true, scratch);
          const auto doubled = block_of(y, m, n, ldy);
          std::vector<double> twice(expected.size());
          for (std::size_t i = 0; i < twice.size(); ++i) twice[i] = 2 * expected[i];
          test::require_close("gemm_avx512 accumulated vs double reference", doubled.data(), twice.data(),
                              twice.size(), test::tolerance<float>::nmse);
          for (index_t i = 0; i < m; ++i)
            for (index_t j = n; j < ldy; ++j) REQUIRE(y[static_cast<std::size_t>(i * ldy + j)] == guard);
        }
      }
    }
}

TEST_CASE("gemm_avx512 through packed_matmul: every weight type against a double reference", "[gemm]") {
  if (!have_avx512()) return;
  Workspace<std::uint8_t, cpu> scratch;
  for (const WeightType type : {WeightType::f32, WeightType::f16, WeightType::bf16, WeightType::q8_0}) {
    const bool blocked = type == WeightType::q8_0;
    const std::vector<index_t> depths = blocked ? std::vector<index_t>{32, 96, 320, 1024}
                                                : std::vector<index_t>{1, 17, 300, 1000};
    for (const index_t k : depths)
      for (const index_t n : {1, 31, 33, 100, 257}) {
        const auto w_values = test::random_tensor<float, 2>({n, k}, static_cast<std::uint32_t>(n + 11 * k), 0.1);
        const PackedMatrix packed = pack_matrix(w_values.cview(), type);
        const auto w_double = decode(packed.view);
        for (const index_t m : {8, 14, 15, 29, 130}) {
          const auto x = test::random_tensor<float, 2>({m, k}, static_cast<std::uint32_t>(5 * m + k));
          const auto x_double = blocked ? quantized_activations(x.cview().data(), m, k) : as_double(x.cview());
          const auto expected = product(x_double, w_double, m, n, k);
          for (const int threads : {1, 2}) {
            INFO(to_string(type) << " m " << m << " n " << n << " k " << k << " threads " << threads);
            const Context<cpu> ctx(threads);
            Tensor<float, 2> y({m, n});
            packed_matmul(ctx, packed.view, x.cview(), y.view(), scratch, CpuIsa::avx512);
            test::require_close("packed_matmul (gemm_avx512) vs double reference", y.cview().data(),
                                expected.data(), expected.size(), test::tolerance<float>::nmse);
          }
        }
      }
  }
}

TEST_CASE("gemm_avx512 through linear_kernel: with and without a scratch Workspace", "[gemm]") {
  if (!have_avx512()) return;
  const index_t m = 29, n = 100, k = 300;
  const auto x = test::random_tensor<float, 2>({m, k}, 1);
  const auto w = test::random_tensor<float, 2>({n, k}, 2, 0.1);
  const auto expected = product(as_double(x.cview()), as_double(w.cview()), m, n, k);
  const Context<cpu> ctx(2);
  Workspace<std::uint8_t, cpu> scratch;
  Tensor<float, 2> with_scratch({m, n}), without({m, n});
  detail::linear_kernel<float>(ctx, x.cview(), w.cview(), with_scratch.view(), &scratch);
  detail::linear_kernel<float>(ctx, x.cview(), w.cview(), without.view());
  test::require_close("linear_kernel vs double reference", with_scratch.cview().data(), expected.data(),
                      expected.size(), test::tolerance<float>::nmse);
  REQUIRE(std::memcmp(with_scratch.cview().data(), without.cview().data(), sizeof(float) * static_cast<std::size_t>(m * n)) == 0);
  REQUIRE(scratch.capacity() >= detail::gemm_scratch_bytes(m, k, 2));
}

TEST_CASE("gemm_avx512: a NaN in a row of x makes that row of y NaN, and only it", "[gemm]") {
  if (!have_avx512()) return;
  const index_t m = 30, n = 40, k = 37;
  Workspace<std::uint8_t, cpu> scratch;
  for (const WeightType type : {WeightType::f32, WeightType::f16, WeightType::bf16}) {
    for (const index_t nan_row : {0, 13, 14, 29}) {
      INFO(to_string(type) << " NaN in row " << nan_row);
      auto x = test::random_tensor<float, 2>({m, k}, 3);
      x.view().data()[nan_row * k + 20] = NAN;
      const auto w = test::random_tensor<float, 2>({n, k}, 4, 0.1);
      const PackedMatrix packed = pack_matrix(w.cview(), type);
      Tensor<float, 2> y({m, n});
      packed_matmul(Context<cpu>(2), packed.view, x.cview(), y.view(), scratch, CpuIsa::avx512);
      for (index_t i = 0; i < m; ++i)
        for (index_t j = 0; j < n; ++j) REQUIRE(std::isnan(y.cview()(i, j)) == (i == nan_row));
    }
  }
}

TEST_CASE("gemm_avx512: a repeated prefill of one size allocates nothing", "[gemm]") {
  if (!have_avx512()) return;
  const index_t m = 64, n = 96, k = 256;
  const auto x = test::random_tensor<float, 2>({m, k}, 5);
  const auto w = test::random_tensor<float, 2>({n, k}, 6, 0.1);
  for (const WeightType type : {WeightType::f32, WeightType::q8_0}) {
    const PackedMatrix packed = pack_matrix(w.cview(), type);
    Workspace<std::uint8_t, cpu> scratch;
    Tensor<float, 2> y({m, n});
    const Context<cpu> ctx(2);
    packed_matmul(ctx, packed.view, x.cview(), y.view(), scratch, CpuIsa::avx512);
    const index_t grown = scratch.capacity();
    for (int repeat = 0; repeat < 3; ++repeat) {
      packed_matmul(ctx, packed.view, x.cview(), y.view(), scratch, CpuIsa::avx512);
      REQUIRE(scratch.capacity() == grown);
    }
  }
}

TEST_CASE("gemm_q8_0_amx: every remainder of the blocking against a double reference", "[gemm][amx]") {
  if (!have_amx()) return;
  Workspace<std::uint8_t, cpu> scratch;
  for (const index_t k : {32, 64, 96, 2048})
    for (const index_t n : {1, 15, 16, 17, 31, 32, 33, 100}) {
      const auto w_values = test::random_tensor<float, 2>({n, k}, static_cast<std::uint32_t>(3 * n + k), 0.1);
      const PackedMatrix packed = pack_matrix(w_values.cview(), WeightType::q8_0);
      const auto w_double = decode(packed.view);
      for (const index_t m : {8, 15, 16, 17, 31, 32, 33, 130}) {
        const auto x = test::random_tensor<float, 2>({m, k}, static_cast<std::uint32_t>(m + 7 * k));
        const auto expected = product(quantized_activations(x.cview().data(), m, k), w_double, m, n, k);
        std::vector<detail::ActivationBlockQ8> xq(static_cast<std::size_t>(m * (k / 32)));
        for (index_t t = 0; t < m; ++t)
          detail::quantize_activation_q8(x.cview().data() + t * k, k, xq.data() + t * (k / 32));
        INFO("m " << m << " n " << n << " k " << k);
        check_amx_product("gemm_q8_0_amx vs double reference", m, n, expected,
                          [&](const Context<cpu>& ctx, float* y, index_t ldy) {
                            const auto bytes =
                                scratch.get<1>({detail::gemm_amx_scratch_bytes(m, k, ctx.num_threads())});
                            detail::gemm_q8_0_amx(ctx, xq.data(), m, packed.view, y, ldy, bytes.data());
                          });
      }
    }
}

TEST_CASE("gemm_q8_0_amx through packed_matmul: the decode kernels' numbers, a NaN row, no growth",
          "[gemm][amx]") {
  if (!have_amx()) return;
  const index_t m = 40, n = 70, k = 320;
  const auto w = test::random_tensor<float, 2>({n, k}, 8, 0.1);
  const PackedMatrix packed = pack_matrix(w.cview(), WeightType::q8_0);
  const auto x = test::random_tensor<float, 2>({m, k}, 9);
  const Context<cpu> ctx(2);
  Workspace<std::uint8_t, cpu> scratch;
  Tensor<float, 2> batched({m, n}), one_by_one({m, n});
  packed_matmul(ctx, packed.view, x.cview(), batched.view(), scratch, CpuIsa::avx512_amx);
  const index_t grown = scratch.capacity();
  for (index_t t = 0; t < m; ++t)
    packed_matmul(ctx, packed.view, TensorView<const float, 2>(x.cview().data() + t * k, {1, k}),
                  TensorView<float, 2>(one_by_one.view().data() + t * n, {1, n}), scratch,
                  CpuIsa::avx512_amx);
  // The same exact int32 block sums; only the float32 order of the scaled sums differs.
  test::require_close("AMX prefill vs vpdpbusd decode", batched.cview().data(), one_by_one.cview().data(),
                      static_cast<std::size_t>(m * n), 1e-12);
  for (int repeat = 0; repeat < 3; ++repeat) {
    packed_matmul(ctx, packed.view, x.cview(), batched.view(), scratch, CpuIsa::avx512_amx);
    REQUIRE(scratch.capacity() == grown);
  }
  for (const index_t nan_row : {0, 15, 16, 39}) {
    INFO("NaN in row " << nan_row);
    auto poisoned = test::random_tensor<float, 2>({m, k}, 9);
    poisoned.view().data()[nan_row * k + 100] = NAN;
    Tensor<float, 2> y({m, n});
    packed_matmul(ctx, packed.view, poisoned.cview(), y.view(), scratch, CpuIsa::avx512_amx);
    for (index_t i = 0; i < m; ++i)
      for (index_t j = 0; j < n; ++j) REQUIRE(std::isnan(y.cview()(i, j)) == (i == nan_row));
  }
}

TEST_CASE("bf16 GEMMs (vdpbf16ps, AMX-BF16): bf16 activations times bf16 weights against a double reference",
          "[gemm][amx]") {
  Workspace<std::uint8_t, cpu> scratch;
  for (const Bf16GemmFamily& family : bf16_gemm_families()) {
    INFO(family.name);
    // k: below, at and past one 32-deep step, and odd; m and n: the pairs' remainders (and, for
    // vdpbf16ps, its groups of 8 rows).
    for (const index_t k : {1, 17, 32, 33, 300, 2048})
      for (const index_t n : {1, 15, 16, 17, 33, 100}) {
        const auto w_values = test::random_tensor<float, 2>({n, k}, static_cast<std::uint32_t>(5 * n + k), 0.1);
        const PackedMatrix packed = pack_matrix(w_values.cview(), WeightType::bf16);
        const auto w_double = decode(packed.view);
        for (const index_t m : {1, 7, 8, 9, 15, 17, 24, 31, 33, 130}) {
          const auto x = test::random_tensor<float, 2>({m, k}, static_cast<std::uint32_t>(m + 9 * k));
          // x as the kernel sees it: each value rounded to bfloat16.
          std::vector<double> x_double(static_cast<std::size_t>(m * k));
          for (std::size_t i = 0; i < x_double.size(); ++i)
            x_double[i] = detail::bf16_bits_to_float(detail::float_to_bf16_bits(x.cview().data()[i]));
          const auto expected = product(x_double, w_double, m, n, k);
          INFO("m " << m << " n " << n << " k " << k);
          check_amx_product("bf16 GEMM vs double reference", m, n, expected,
                            [&](const Context<cpu>& ctx, float* y, index_t ldy) {
                              const auto bytes =
                                  scratch.get<1>({detail::gemm_bf16_scratch_bytes(m, k, ctx.num_threads())});
                              family.product(ctx, x.cview().data(), k, m, packed.view, y, ldy, bytes.data());
                            });
        }
      }
  }
}

TEST_CASE("packed_matmul: bf16 weights use bf16 products only where the context allows bf16 activations",
          "[gemm][amx]") {
  const index_t m = 40, n = 70, k = 300;
  const auto w = test::random_tensor<float, 2>({n, k}, 12, 0.1);
  const PackedMatrix packed = pack_matrix(w.cview(), WeightType::bf16);
  const auto x = test::random_tensor<float, 2>({m, k}, 13);
  for (const Bf16GemmFamily& family : bf16_gemm_families()) {
    INFO(to_string(family.isa));
    Workspace<std::uint8_t, cpu> scratch;
    Context<cpu> ctx(2);
    // Off (the default): the float32 GEMM's bits.
    Tensor<float, 2> exact({m, n}), by_default({m, n}), rounded({m, n});
    packed_matmul(ctx, packed.view, x.cview(), exact.view(), scratch, CpuIsa::avx512);
    packed_matmul(ctx, packed.view, x.cview(), by_default.view(), scratch, family.isa);
    REQUIRE(std::memcmp(exact.cview().data(), by_default.cview().data(), sizeof(float) * static_cast<std::size_t>(m * n)) == 0);
    // On: within what rounding x to 8 bits of mantissa costs (relative error up to 2^-9 per value).
    ctx.set_bf16_activations(true);
    packed_matmul(ctx, packed.view, x.cview(), rounded.view(), scratch, family.isa);
    test::require_close("bf16 activations vs float32 activations", rounded.cview().data(),
                        exact.cview().data(), static_cast<std::size_t>(m * n), 1e-5);
    REQUIRE(std::memcmp(exact.cview().data(), rounded.cview().data(), sizeof(float) * static_cast<std::size_t>(m * n)) != 0);
    // The decode kernels stay float32 with the flag on: one token gives the exact row's bits.
    Tensor<float, 2> one_token({1, n}), one_token_exact({1, n});
    packed_matmul(ctx, packed.view, TensorView<const float, 2>(x.cview().data(), {1, k}), one_token.view(),
                  scratch, family.isa);
    packed_matmul(Context<cpu>(2), packed.view, TensorView<const float, 2>(x.cview().data(), {1, k}),
                  one_token_exact.view(), scratch, family.isa);
    REQUIRE(std::memcmp(one_token.cview().data(), one_token_exact.cview().data(), sizeof(float) * static_cast<std::size_t>(n)) == 0);
    packed_matmul(ctx, packed.view, x.cview(), rounded.view(), scratch, family.isa);
    const index_t grown = scratch.capacity();
    for (const index_t nan_row : {0, 16, 39}) {
      INFO("NaN in row " << nan_row);
      auto poisoned = test::random_tensor<float, 2>({m, k}, 13);
      poisoned.view().data()[nan_row * k + 100] = NAN;
      packed_matmul(ctx, packed.view, poisoned.cview(), rounded.view(), scratch, family.isa);
      REQUIRE(scratch.capacity() == grown);
      for (index_t i = 0; i < m; ++i)
        for (index_t j = 0; j < n; ++j) REQUIRE(std::isnan(rounded.cview()(i, j)) == (i == nan_row));
    }
  }
}

TEST_CASE("round_to_bf16_avx512 rounds as float_to_bf16_bits, NaN payloads and ties included", "[gemm][amx]") {
  if (!have_avx512()) return;
  // Every pattern class: random bits (all exponents, NaN payloads in the low half), ties, the
  // largest finite values (which round to infinity), denormals, zeros, infinities.
  std::vector<std::uint32_t> patterns = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u,
                                         0x7f800001u, 0xff800001u, 0x7fc00000u, 0x7f80ffffu,
                                         0x7f7fffffu, 0x3f808000u, 0x3f818000u, 0x00000001u,
                                         0x00008000u, 0x00018000u, 0x807fffffu, 0x3f800000u};
  std::uint32_t state = 12345;
  while (patterns.size() < 16 * 65536) {
    state = state * 1664525u + 1013904223u;
    patterns.push_back(state);
  }
  for (std::size_t i = 0; i < patterns.size(); i += 16) {
    float values[16];
    std::memcpy(values, patterns.data() + i, sizeof values);
    std::uint16_t rounded[16];
    round_sixteen_to_bf16(values, rounded);
    for (int lane = 0; lane < 16; ++lane) REQUIRE(rounded[lane] == detail::float_to_bf16_bits(values[lane]));
  }
}
