// Cross-backend test of the cuda backend [cuda]: RMSNorm<cuda, T> for T = float, __half and
// __nv_bfloat16 against RMSNorm<cpu, float> and a scalar double loop, plus add_inplace and
// swiglu_activation against scalar loops, and the error paths of Context<cuda> and the allocator.
//
// Every output buffer is surrounded by guard regions and poisoned with NaN bytes before the
// kernel runs: an element left unwritten fails the finite check, a write out of bounds changes a
// guard. Exit codes: 0 all passed, 1 a check failed, 77 no CUDA device (CTest SKIP_RETURN_CODE).
#include "cpu_reference.hpp"
#include "cuda_test_support.cuh"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace lb = llamablocks;
using lb::index_t;
using lb::test::tolerance_cuda;
using namespace lb::test;

namespace {

std::vector<double> reference_rms_norm(const std::vector<double>& x, const std::vector<double>& w,
                                       index_t rows, index_t dim, double eps) {
  std::vector<double> out(x.size());
  for (index_t r = 0; r < rows; ++r) {
    const double* row = x.data() + r * dim;
    double sum = 0;
    for (index_t i = 0; i < dim; ++i) sum += row[i] * row[i];
    const double inv_rms = 1.0 / std::sqrt(sum / static_cast<double>(dim) + eps);
    for (index_t i = 0; i < dim; ++i) out[static_cast<std::size_t>(r * dim + i)] = row[i] * inv_rms * w[static_cast<std::size_t>(i)];
  }
  return out;
}

enum class Layout { aligned, misaligned, in_place };

const char* layout_name(Layout layout) {
  switch (layout) {
    case Layout::aligned: return "aligned";
    case Layout::misaligned: return "misaligned";
    default: return "in-place";
  }
}

template <class T>
void test_rms_norm(lb::Context<lb::cuda>& ctx, std::mt19937& rng, index_t batch, index_t tokens,
                   index_t dim, Layout layout) {
  const double eps = 1e-5;
  const index_t count = batch * tokens * dim;
  const auto n = static_cast<std::size_t>(count);
  std::vector<double> x_exact;
  std::vector<double> w_exact;
  std::vector<T> x = random_values<T>(rng, n, -2.0f, 2.0f, x_exact);
  // Rows of very different scale: the result must not depend on it.
  for (index_t r = 0; r < batch * tokens; ++r) {
    const float scale = std::ldexp(1.0f, static_cast<int>(r % 7) - 3);
    for (index_t i = 0; i < dim; ++i) {
      const auto k = static_cast<std::size_t>(r * dim + i);
      x[k] = lb::detail::from_float<T>(lb::detail::to_float(x[k]) * scale);
      x_exact[k] = static_cast<double>(lb::detail::to_float(x[k]));
    }
  }
  const std::vector<T> w = random_values<T>(rng, static_cast<std::size_t>(dim), 0.5f, 1.5f, w_exact);

  lb::RMSNorm<lb::cuda, T> norm(dim, eps);
  norm.weight().copy_from(lb::TensorView<const T, 1>(w.data(), {dim}));

  // The misaligned case shifts x and out by one element, which forces the element-wise path.
  const index_t shift = layout == Layout::misaligned ? 1 : 0;
  GuardedBuffer<T> out_buffer(count + shift);
  GuardedBuffer<T> x_buffer(count + shift);
  T* out_data = out_buffer.data() + shift;
  T* x_data = layout == Layout::in_place ? out_data : x_buffer.data() + shift;
  upload(x_data, x);
  norm.forward(ctx, lb::TensorView<const T, 3>(x_data, {batch, tokens, dim}),
               lb::TensorView<T, 3>(out_data, {batch, tokens, dim}));
  ctx.synchronize();

  std::vector<T> got_with_shift;
  const bool guards_intact = out_buffer.read(got_with_shift);
  const std::vector<T> got(got_with_shift.begin() + shift, got_with_shift.end());
  const std::vector<double> actual = widen(got);

  const std::string what = std::string("RMSNorm<cuda, ") + tolerance_cuda<T>::name + "> [" +
                           std::to_string(batch) + ", " + std::to_string(tokens) + ", " +
                           std::to_string(dim) + "] " + layout_name(layout);
  if (!guards_intact) {
    ++failures;
    std::printf("FAIL %s: a guard region around the output was overwritten\n", what.c_str());
  }
  if (shift == 1 && got_with_shift.size() > 0) {
    // The element before a shifted output must stay poisoned as well.
    unsigned char first[sizeof(T)];
    std::memcpy(first, &got_with_shift[0], sizeof(T));
    for (unsigned char byte : first) EXPECT(byte == poison);
  }

  const std::vector<double> reference = reference_rms_norm(x_exact, w_exact, batch * tokens, dim, eps);
  if (!lb::test::check_close((what + " vs double loop").c_str(), actual.data(), reference.data(), n,
                             tolerance_cuda<T>::nmse))
    ++failures;

  std::vector<float> x_float(n);
  std::vector<float> w_float(static_cast<std::size_t>(dim));
  std::vector<float> cpu_out(n);
  for (std::size_t i = 0; i < n; ++i) x_float[i] = static_cast<float>(x_exact[i]);
  for (std::size_t i = 0; i < w_float.size(); ++i) w_float[i] = static_cast<float>(w_exact[i]);
  lb::test::cpu_rms_norm(x_float.data(), w_float.data(), cpu_out.data(), batch, tokens, dim, eps);
  std::vector<double> cpu_wide(cpu_out.begin(), cpu_out.end());
  if (!lb::test::check_close((what + " vs RMSNorm<cpu, float>").c_str(), actual.data(),
                             cpu_wide.data(), n, tolerance_cuda<T>::nmse))
    ++failures;
}

template <class T>
void test_elementwise(lb::Context<lb::cuda>& ctx, std::mt19937& rng, index_t rows, index_t width) {
  const index_t count = rows * width;
  const auto n = static_cast<std::size_t>(count);
  std::vector<double> a_exact;
  std::vector<double> b_exact;
  const std::vector<T> a = random_values<T>(rng, n, -6.0f, 6.0f, a_exact);
  const std::vector<T> b = random_values<T>(rng, n, -2.0f, 2.0f, b_exact);
  const std::string shape =
      std::string("<") + tolerance_cuda<T>::name + "> [" + std::to_string(rows) + ", " + std::to_string(width) + "]";

  for (int op = 0; op < 2; ++op) {
    GuardedBuffer<T> a_buffer(count);
    GuardedBuffer<T> b_buffer(count);
    upload(a_buffer.data(), a);
    upload(b_buffer.data(), b);
    const lb::TensorView<T, 2> a_view(a_buffer.data(), {rows, width});
    const lb::TensorView<const T, 2> b_view(b_buffer.data(), {rows, width});
    std::vector<double> reference(n);
    if (op == 0) {
      lb::add_inplace(ctx, a_view, b_view);
      for (std::size_t i = 0; i < n; ++i) reference[i] = a_exact[i] + b_exact[i];
    } else {
      lb::swiglu_activation(ctx, a_view, b_view);
      for (std::size_t i = 0; i < n; ++i)
        reference[i] = a_exact[i] / (1.0 + std::exp(-a_exact[i])) * b_exact[i];
    }
    ctx.synchronize();
    std::vector<T> got;
    const bool guards_intact = a_buffer.read(got);
    const std::string what = (op == 0 ? "add_inplace" : "swiglu_activation") + shape;
    if (!guards_intact) {
      ++failures;
      std::printf("FAIL %s: a guard region was overwritten\n", what.c_str());
    }
    const std::vector<double> actual = widen(got);
    if (!lb::test::check_close(what.c_str(), actual.data(), reference.data(), n,
                               tolerance_cuda<T>::nmse))
      ++failures;
  }
}

template <class T>
void test_all_shapes(lb::Context<lb::cuda>& ctx, std::mt19937& rng) {
  const index_t shapes[][2] = {{1, 127}, {7, 4096}, {513, 2048}};
  for (index_t batch : {1, 4})
    for (const auto& shape : shapes)
      test_rms_norm<T>(ctx, rng, batch, shape[0], shape[1], Layout::aligned);
  test_rms_norm<T>(ctx, rng, 2, 7, 4096, Layout::misaligned);
  test_rms_norm<T>(ctx, rng, 2, 7, 4096, Layout::in_place);
  // Longer than the register-held path (4 accesses per thread of 1024): x is read twice.
  test_rms_norm<T>(ctx, rng, 1, 3, 40000, Layout::aligned);
  test_elementwise<T>(ctx, rng, 7, 11008);
  test_elementwise<T>(ctx, rng, 3, 127);
}

void test_errors(lb::Context<lb::cuda>& ctx) {
  using lb::cuda_error;
  std::string message;
  // The allocator says how many bytes it was asked for.
  EXPECT(throws_with<cuda_error>([] { lb::Tensor<float, 1, lb::cuda> huge({index_t{1} << 48}); },
                                 "1125899906842624 bytes", &message));
  std::printf("     out-of-memory message: %s\n", message.c_str());
  // A failing runtime call names itself, the error and where it was checked.
  EXPECT(throws_with<cuda_error>([] { LLAMABLOCKS_CUDA_CHECK(cudaSetDevice(1 << 20)); },
                                 "cudaSetDevice(1 << 20) failed: cudaErrorInvalidDevice", &message));
  EXPECT(message.find("test_cuda_rms_norm.cu:") != std::string::npos);
  std::printf("     runtime error message: %s\n", message.c_str());
  EXPECT(throws_with<lb::config_error>([] { lb::RMSNorm<lb::cuda, float>(0, 1e-5); }, "dim"));
  EXPECT(throws_with<lb::config_error>([] { lb::RMSNorm<lb::cuda, __half>(64, -1.0); }, "norm_eps"));
  EXPECT(throws_with<lb::shape_error>(
      [&] {
        lb::RMSNorm<lb::cuda, float> norm(64, 1e-5);
        lb::Tensor<float, 3, lb::cuda> x({1, 2, 32});
        norm.forward(ctx, x.cview(), x.view());
      },
      "last dimension"));

  // A moved-from context owns nothing; the moved-to one works.
  lb::Context<lb::cuda> first;
  const cudaStream_t stream = first.stream();
  lb::Context<lb::cuda> second(std::move(first));
  EXPECT(first.stream() == nullptr && first.cublas() == nullptr);
  EXPECT(second.stream() == stream && second.cublas() != nullptr);
  lb::Context<lb::cuda> third;
  third = std::move(second);
  EXPECT(third.stream() == stream);
  third.synchronize();

  // The weight starts at ones.
  lb::RMSNorm<lb::cuda, __nv_bfloat16> norm(16, 1e-5);
  std::vector<__nv_bfloat16> weight(16);
  lb::detail::allocator<lb::cuda>::copy_to_host(weight.data(), norm.weight().view().data(),
                                                 weight.size() * sizeof(__nv_bfloat16));
  for (const auto& w : weight) EXPECT(lb::detail::to_float(w) == 1.0f);
}

}  // namespace

int main() {
  return lb::test::run_cuda_test([](lb::Context<lb::cuda>& ctx) {
    std::mt19937 rng(20240611);
    test_all_shapes<float>(ctx, rng);
    test_all_shapes<__half>(ctx, rng);
    test_all_shapes<__nv_bfloat16>(ctx, rng);
    test_errors(ctx);
  });
}
