// AdamW<T, cuda> and clip_grad_norm on the device [cuda] against AdamW<float> on the cpu
// (tests/cuda/cpu_backward_reference.cpp), for T = float, __half and __nv_bfloat16: a [37, 19]
// matrix with weight decay and a [19] gain without, six steps of clip_grad_norm(1) and step() with
// gradients 200× larger every third step (norm about 62: clipped; otherwise about 0.31: not). Compared:
// the norms, the weights (and, for float, how far the six steps moved them), m and v. Errors: a
// parameter added twice, a step with a parameter that has no gradient, a bad max_norm (nothing
// changes), a NaN gradient (the norm is returned, the gradients are left alone).
// Exit codes: 0 passed, 1 failed, 77 no CUDA device.
#include "cpu_backward_reference.hpp"
#include "cuda_test_support.cuh"
#include "layer_values.cuh"

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

namespace lb = llamablocks;
using lb::index_t;
using lb::test::tolerance_cuda;
using namespace lb::test;

namespace {

using lb::cuda;

template <class T>
void set_grad(T* device, const std::vector<T>& host) {
  lb::detail::allocator<cuda>::copy_from_host(device, host.data(), host.size() * sizeof(T));
}

template <class T>
void test_adamw(lb::Context<cuda>& ctx, std::mt19937& rng) {
  const index_t rows = 37;
  const index_t cols = 19;
  const int steps = 6;
  AdamWRun run{};
  run.lr = 0.05;
  run.beta1 = 0.9;
  run.beta2 = 0.95;
  run.eps = 1e-8;
  run.weight_decay = 0.1;
  run.max_norm = 1.0;
  run.rows = rows;
  run.cols = cols;
  const auto matrix0 = make_values<T>(rng, rows * cols, 1.0f);
  const auto gain0 = Layer<T>::gains(rng, cols);
  run.matrix = matrix0.exact;
  run.gain = gain0.exact;
  std::vector<Values<T>> matrix_grads;
  std::vector<Values<T>> gain_grads;
  for (int s = 0; s < steps; ++s) {
    const float bound = s % 3 == 2 ? 4.0f : 0.02f;  // norm ≈ 62 (clipped) or ≈ 0.31 (not)
    matrix_grads.push_back(make_values<T>(rng, rows * cols, bound));
    gain_grads.push_back(make_values<T>(rng, cols, bound));
    run.matrix_grads.push_back(matrix_grads.back().exact);
    run.gain_grads.push_back(gain_grads.back().exact);
  }
  cpu_adamw_steps(run);

  lb::Parameter<T, 2, cuda> matrix("matrix", {rows, cols});
  lb::Parameter<T, 1, cuda> gain("gain", {cols});
  matrix.copy_from(lb::TensorView<const T, 2>(matrix0.rounded.data(), {rows, cols}));
  gain.copy_from(lb::TensorView<const T, 1>(gain0.rounded.data(), {cols}));
  matrix.enable_grad();
  gain.enable_grad();
  lb::AdamWConfig config;
  config.lr = run.lr;
  config.beta1 = run.beta1;
  config.beta2 = run.beta2;
  config.eps = run.eps;
  config.weight_decay = run.weight_decay;
  lb::AdamW<T, cuda> optimizer(config);
  optimizer.add(matrix);
  optimizer.add(gain);
  EXPECT(optimizer.weight_decay(0) == lb::WeightDecay::apply);
  EXPECT(optimizer.weight_decay(1) == lb::WeightDecay::none);
  std::vector<double> norms;
  for (int s = 0; s < steps; ++s) {
    set_grad(matrix.grad().data(), matrix_grads[static_cast<std::size_t>(s)].rounded);
    set_grad(gain.grad().data(), gain_grads[static_cast<std::size_t>(s)].rounded);
    norms.push_back(optimizer.clip_grad_norm(ctx, run.max_norm));
    optimizer.step(ctx);
  }
  ctx.synchronize();
  EXPECT(optimizer.step_count(0) == steps && optimizer.step_count(1) == steps);

  const std::string what = std::string("AdamW<") + tolerance_cuda<T>::name + ", cuda>";
  bool norms_ok = true;
  for (int s = 0; s < steps; ++s) {
    const double expected = run.norms[static_cast<std::size_t>(s)];
    norms_ok = norms_ok && std::isfinite(norms[static_cast<std::size_t>(s)]) &&
               std::fabs(norms[static_cast<std::size_t>(s)] - expected) <= 1e-9 * expected;
    std::printf("     step %d: norm %.12g, cpu %.12g\n", s, norms[static_cast<std::size_t>(s)], expected);
  }
  std::printf("%s %s: clip_grad_norm's norms\n", norms_ok ? "ok  " : "FAIL", what.c_str());
  if (!norms_ok) ++failures;
  const double threshold = tolerance_cuda<T>::nmse;
  const std::vector<double> matrix_after = read_device(matrix.view().data(), rows * cols);
  expect_close(what + " matrix", matrix_after, wide(run.matrix), threshold);
  expect_close(what + " gain", read_device(gain.view().data(), cols), wide(run.gain), threshold);
  expect_close(what + " matrix m", read_device(optimizer.exp_avg(0).data(), rows * cols),
               wide(run.matrix_m), threshold);
  expect_close(what + " matrix v", read_device(optimizer.exp_avg_sq(0).data(), rows * cols),
               wide(run.matrix_v), threshold);
  expect_close(what + " gain m", read_device(optimizer.exp_avg(1).data(), cols), wide(run.gain_m),
               threshold);
  expect_close(what + " gain v", read_device(optimizer.exp_avg_sq(1).data(), cols),
               wide(run.gain_v), threshold);
  if (std::is_same_v<T, float>) {
    // How far the weights moved, which the comparison of the weights themselves would dilute.
    std::vector<double> moved(matrix_after.size());
    std::vector<double> moved_ref(matrix_after.size());
    for (std::size_t i = 0; i < moved.size(); ++i) {
      moved[i] = matrix_after[i] - static_cast<double>(matrix0.exact[i]);
      moved_ref[i] = static_cast<double>(run.matrix[i]) - static_cast<double>(matrix0.exact[i]);
    }
    expect_close(what + " matrix update", moved, moved_ref, 1e-9);
  }

  // Errors change nothing.
  EXPECT(throws_with<lb::config_error>([&] { optimizer.add(matrix); }, "matrix was added twice"));
  lb::Parameter<T, 1, cuda> untrained("untrained", {cols});
  optimizer.add(untrained);
  EXPECT(throws_with<lb::config_error>([&] { optimizer.step(ctx); }, "untrained has no gradient"));
  EXPECT(throws_with<lb::config_error>([&] { optimizer.clip_grad_norm(ctx, 0.0); }, "max_norm"));
  const std::vector<double> unchanged = read_device(matrix.view().data(), rows * cols);
  EXPECT(unchanged == matrix_after);
  EXPECT(optimizer.step_count(0) == steps);

  std::vector<T> nan_grad(matrix_grads[0].rounded);
  nan_grad[5] = lb::detail::from_float<T>(NAN);
  set_grad(matrix.grad().data(), nan_grad);
  const std::vector<lb::ParameterRef<T, cuda>> refs = {matrix, gain};
  const double nan_norm = lb::clip_grad_norm<T>(ctx, refs, 1.0);
  EXPECT(!std::isfinite(nan_norm));
  const std::vector<double> grad_after = read_device(matrix.grad().data(), rows * cols);
  const std::vector<double> grad_before = widen(nan_grad);
  bool same = true;
  for (std::size_t i = 0; i < grad_after.size(); ++i)
    same = same && (grad_after[i] == grad_before[i] || (std::isnan(grad_after[i]) && std::isnan(grad_before[i])));
  std::printf("%s %s: a NaN gradient gives norm %g and leaves the gradients alone\n",
              same ? "ok  " : "FAIL", what.c_str(), nan_norm);
  if (!same) ++failures;
  EXPECT(throws_with<lb::config_error>([&] { optimizer.zero_grad(ctx); }, "untrained has no gradient"));
}

template <class T>
void test_zero_grad(lb::Context<cuda>& ctx) {
  lb::Parameter<T, 2, cuda> matrix("matrix", {3, 5});
  matrix.enable_grad();
  set_grad(matrix.grad().data(), std::vector<T>(15, lb::detail::from_float<T>(2.0f)));
  lb::AdamW<T, cuda> optimizer(lb::AdamWConfig{});
  optimizer.add(matrix);
  optimizer.zero_grad(ctx);
  const std::vector<double> grad = read_device(matrix.grad().data(), 15);
  bool zero = true;
  for (const double value : grad) zero = zero && value == 0.0;
  std::printf("%s AdamW<%s, cuda>::zero_grad\n", zero ? "ok  " : "FAIL", tolerance_cuda<T>::name);
  if (!zero) ++failures;
}

template <class T>
void test_all(lb::Context<cuda>& ctx, std::mt19937& rng) {
  test_adamw<T>(ctx, rng);
  test_zero_grad<T>(ctx);
}

}  // namespace

int main() {
  return run_cuda_test([](lb::Context<cuda>& ctx) {
    std::mt19937 rng(20261207);
    test_all<float>(ctx, rng);
    test_all<__half>(ctx, rng);
    test_all<__nv_bfloat16>(ctx, rng);
  });
}
