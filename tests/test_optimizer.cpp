// The optimizer slice of training (issue 7): AdamW and gradient clipping against PyTorch, one AdamW
// step against a plain scalar loop, the warmup + cosine schedule, seeded initialization, and the
// errors of misuse.
//
// PyTorch fixture (tests/golden/optimizer_adamw.lbg, written by make_optimizer_golden.py with
// torch 1.13): three parameters ([3, 4] and [6, 2] with weight decay, [5] without), 10 steps of
// clip_grad_norm_(max_norm 1) + AdamW with the schedule's lr, gradients from a formula of the step
// and the index (repeated below), for two hyper-parameter sets, in float64 and float32.
// Tolerances, on every element of every parameter after every step (values are below 1), with
// what this machine measured (gcc, x86-64) in brackets:
//   double against torch float64:  |error| ≤ 1e-14    [5.6e-17: the same operations in the same
//                                                      order; only the norm's sums are ordered
//                                                      differently]
//   float  against torch float32:  |error| ≤ 2.5e-7   [3.0e-8, one float ulp; torch's vectorized
//                                                      kernels may fuse or reorder]
//   float  against torch float64:  |error| ≤ 1e-6     [2.0e-7; torch's own float32 run is 1.8e-7
//                                                      off its float64 run]
//   the norm clip_grad_norm returns, relative: 1e-14 for double [1.9e-16], 1e-6 for float [6.8e-8;
//   we sum float squares in double, torch in float].
#include "support/golden_file.hpp"
#include "support/helpers.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

using namespace llamablocks;
using Catch::Matchers::Contains;

namespace {

constexpr int golden_steps = 10;
constexpr double golden_max_norm = 1.0;
constexpr double golden_max_lr = 1e-2;
constexpr double golden_min_lr = 1e-3;
constexpr index_t golden_warmup = 3;
constexpr index_t golden_total = 10;

struct GoldenConfig {
  const char* name;
  double beta1, beta2, eps, weight_decay;
};
constexpr GoldenConfig golden_configs[] = {
    {"default", 0.9, 0.95, 1e-8, 0.1},
    {"large_eps", 0.8, 0.99, 1e-3, 0.5},
};

// The formulas of make_optimizer_golden.py, in double, rounded to T.
double golden_initial(int k, index_t i) { return 0.5 * std::sin(1.3 * static_cast<double>(i) + 0.7 * k + 0.1); }
double golden_gradient(int k, index_t i, int t) {
  const double scale = t % 3 == 0 ? 4.0 : 0.1;
  return std::cos(0.37 * static_cast<double>(i) * (k + 1) + 0.91 * t) * (1 + 0.5 * k) * scale;
}

template <class T, int Rank>
void fill(Parameter<T, Rank, cpu>& parameter, int k) {
  T* data = parameter.view().data();
  for (index_t i = 0; i < parameter.size(); ++i) data[i] = static_cast<T>(golden_initial(k, i));
}

template <class T, int Rank>
void fill_gradient(Parameter<T, Rank, cpu>& parameter, int k, int t) {
  T* grad = parameter.grad().data();
  for (index_t i = 0; i < parameter.size(); ++i) grad[i] = static_cast<T>(golden_gradient(k, i, t));
}

/// max |actual − expected| over `count` values.
template <class T>
double max_abs_error(const T* actual, const std::vector<double>& expected) {
  double worst = 0;
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const double a = static_cast<double>(actual[i]);
    REQUIRE(std::isfinite(a));
    worst = std::fmax(worst, std::fabs(a - expected[i]));
  }
  return worst;
}

template <class T, int Rank>
std::vector<T> values_of(const Parameter<T, Rank, cpu>& parameter) {
  const T* data = parameter.view().data();
  return std::vector<T>(data, data + parameter.size());
}

template <class T, int Rank>
std::vector<T> grad_of(const Parameter<T, Rank, cpu>& parameter) {
  const T* data = parameter.grad().data();
  return std::vector<T>(data, data + parameter.size());
}

template <class T>
struct dtype_name;
template <>
struct dtype_name<float> {
  static constexpr const char* value = "float32";
  static constexpr double tolerance = 2.5e-7;
  static constexpr double float64_tolerance = 1e-6;
  static constexpr double norm_tolerance = 1e-6;
};
template <>
struct dtype_name<double> {
  static constexpr const char* value = "float64";
  static constexpr double tolerance = 1e-14;
  static constexpr double float64_tolerance = 1e-14;
  static constexpr double norm_tolerance = 1e-14;
};

}  // namespace

TEMPLATE_TEST_CASE("AdamW with clip_grad_norm and the schedule matches torch over 10 steps",
                   "[optimizer][golden]", float, double) {
  using T = TestType;
  const test::GoldenFile golden(test::golden_path("optimizer_adamw.lbg"));
  REQUIRE(golden.scalar("config.steps") == golden_steps);
  REQUIRE(golden.scalar("config.max_norm") == golden_max_norm);
  REQUIRE(golden.scalar("config.max_lr") == golden_max_lr);
  REQUIRE(golden.scalar("config.min_lr") == golden_min_lr);
  REQUIRE(golden.scalar("config.warmup") == golden_warmup);
  REQUIRE(golden.scalar("config.total") == golden_total);
  const WarmupCosineSchedule schedule(golden_max_lr, golden_min_lr, golden_warmup, golden_total);

  for (const GoldenConfig& config : golden_configs) {
    const std::string prefix = std::string(config.name) + "." + dtype_name<T>::value;
    const std::string float64_prefix = std::string(config.name) + ".float64";
    INFO(prefix);
    REQUIRE(golden.scalar(std::string("config.") + config.name + ".beta1") == config.beta1);
    REQUIRE(golden.scalar(std::string("config.") + config.name + ".beta2") == config.beta2);
    REQUIRE(golden.scalar(std::string("config.") + config.name + ".eps") == config.eps);
    REQUIRE(golden.scalar(std::string("config.") + config.name + ".weight_decay") ==
            config.weight_decay);

    Parameter<T, 2, cpu> p0("p0", {3, 4});
    Parameter<T, 1, cpu> p1("p1", {5});
    Parameter<T, 2, cpu> p2("p2", {6, 2});
    fill(p0, 0);
    fill(p1, 1);
    fill(p2, 2);
    p0.enable_grad();
    p1.enable_grad();
    p2.enable_grad();

    AdamWConfig adamw;
    adamw.lr = golden_max_lr;
    adamw.beta1 = config.beta1;
    adamw.beta2 = config.beta2;
    adamw.eps = config.eps;
    adamw.weight_decay = config.weight_decay;
    AdamW<T> optimizer(adamw);
    optimizer.add(p0);  // default rule: matrices decay, the rank-1 gain does not
    optimizer.add(p1);
    optimizer.add(p2);
    REQUIRE(optimizer.weight_decay(1) == WeightDecay::none);

    const std::vector<double>& norms = golden.doubles(prefix + ".norm");
    REQUIRE(norms.size() == golden_steps);
    for (int t = 1; t <= golden_steps; ++t) {
      INFO("step " << t);
      fill_gradient(p0, 0, t);
      fill_gradient(p1, 1, t);
      fill_gradient(p2, 2, t);
      const double norm = optimizer.clip_grad_norm(golden_max_norm);
      const double expected_norm = norms[static_cast<std::size_t>(t - 1)];
      REQUIRE(std::fabs(norm - expected_norm) <= dtype_name<T>::norm_tolerance * expected_norm);
      optimizer.set_lr(schedule.lr(t - 1));
      optimizer.step();

      const std::string step = ".step" + std::to_string(t);
      const T* values[] = {p0.view().data(), p1.view().data(), p2.view().data()};
      for (int k = 0; k < 3; ++k) {
        const std::string name = ".p" + std::to_string(k) + step;
        const double error = max_abs_error(values[k], golden.doubles(prefix + name));
        const double error64 = max_abs_error(values[k], golden.doubles(float64_prefix + name));
        INFO("p" << k << ": max |error| " << error << " against torch " << dtype_name<T>::value
                 << ", " << error64 << " against torch float64");
        REQUIRE(error <= dtype_name<T>::tolerance);
        REQUIRE(error64 <= dtype_name<T>::float64_tolerance);
      }
    }
    REQUIRE(optimizer.step_count(0) == golden_steps);
  }
}

TEST_CASE("Two AdamW steps equal a plain scalar loop", "[optimizer]") {
  // The textbook form: m̂ = m / (1 − β1ᵗ), v̂ = v / (1 − β2ᵗ), p −= lr·(λp) then lr·m̂/(√v̂ + ε).
  // The library computes the same in torch's algebraic arrangement; in double they agree to
  // relative 1e-14 per element.
  Parameter<double, 2, cpu> matrix("matrix", {7, 5});
  Parameter<double, 1, cpu> gain("gain", {5});
  test::randomize(matrix, 11, 0.5);
  test::randomize(gain, 12, 0.1, 1.0);
  matrix.enable_grad();
  gain.enable_grad();
  AdamWConfig config;
  config.lr = 3e-3;
  config.beta1 = 0.85;
  config.beta2 = 0.98;
  config.eps = 1e-6;
  config.weight_decay = 0.2;
  AdamW<double> optimizer(config);
  optimizer.add(matrix, WeightDecay::apply);
  optimizer.add(gain, WeightDecay::none);

  const std::vector<double> start[] = {values_of(matrix), values_of(gain)};
  std::vector<double> expected[] = {start[0], start[1]};
  std::vector<double> m[] = {std::vector<double>(35), std::vector<double>(5)};
  std::vector<double> v[] = {std::vector<double>(35), std::vector<double>(5)};
  const double decay[] = {0.2, 0.0};
  for (int t = 1; t <= 2; ++t) {
    test::fill_normal(matrix.grad(), 20 + t, 1.0);
    test::fill_normal(gain.grad(), 30 + t, 0.01);
    const std::vector<double> grads[] = {grad_of(matrix), grad_of(gain)};
    optimizer.step();
    for (int k = 0; k < 2; ++k) {
      for (std::size_t i = 0; i < expected[k].size(); ++i) {
        double& p = expected[k][i];
        const double g = grads[k][i];
        p -= config.lr * decay[k] * p;
        m[k][i] = config.beta1 * m[k][i] + (1 - config.beta1) * g;
        v[k][i] = config.beta2 * v[k][i] + (1 - config.beta2) * g * g;
        const double m_hat = m[k][i] / (1 - std::pow(config.beta1, t));
        const double v_hat = v[k][i] / (1 - std::pow(config.beta2, t));
        p -= config.lr * m_hat / (std::sqrt(v_hat) + config.eps);
      }
      const double* actual = k == 0 ? matrix.view().data() : gain.view().data();
      for (std::size_t i = 0; i < expected[k].size(); ++i) {
        INFO("parameter " << k << ", step " << t << ", element " << i);
        REQUIRE(std::fabs(actual[i] - expected[k][i]) <= 1e-14 * std::fabs(expected[k][i]));
        REQUIRE(std::fabs(optimizer.exp_avg(static_cast<std::size_t>(k))[i] - m[k][i]) <=
                1e-15 * std::fabs(m[k][i]));
        REQUIRE(std::fabs(optimizer.exp_avg_sq(static_cast<std::size_t>(k))[i] - v[k][i]) <=
                1e-15 * std::fabs(v[k][i]));
      }
      REQUIRE(values_of(matrix) != start[0]);
    }
  }
}

TEST_CASE("clip_grad_norm scales only above max_norm and returns the norm before clipping",
          "[optimizer]") {
  Parameter<double, 2, cpu> a("a", {2, 3});
  Parameter<double, 1, cpu> b("b", {4});
  a.enable_grad();
  b.enable_grad();
  // a: six 1s, b: four 0.5s, norm √(6 + 1) = √7.
  std::fill_n(a.grad().data(), 6, 1.0);
  std::fill_n(b.grad().data(), 4, 0.5);
  const std::vector<ParameterRef<double>> both = {a, b};

  REQUIRE(clip_grad_norm(both, 10.0) == Approx(std::sqrt(7.0)).epsilon(1e-15));
  REQUIRE(grad_of(a) == std::vector<double>(6, 1.0));  // below max_norm: unchanged

  REQUIRE(clip_grad_norm(both, 1.0) == Approx(std::sqrt(7.0)).epsilon(1e-15));
  const double scale = 1.0 / (std::sqrt(7.0) + 1e-6);
  for (double g : grad_of(a)) REQUIRE(g == Approx(scale).epsilon(1e-15));
  for (double g : grad_of(b)) REQUIRE(g == Approx(0.5 * scale).epsilon(1e-15));
  REQUIRE(clip_grad_norm(both, 10.0) == Approx(1.0).epsilon(1e-6));

  // A non-finite norm is returned and the gradients are left as they are.
  a.grad().data()[2] = INFINITY;
  const std::vector<double> before = grad_of(b);
  REQUIRE(std::isinf(clip_grad_norm(both, 1.0)));
  REQUIRE(grad_of(b) == before);
}

TEST_CASE("WarmupCosineSchedule at its known points", "[optimizer][schedule]") {
  const WarmupCosineSchedule schedule(1.0, 0.1, 10, 110);
  REQUIRE(schedule.lr(0) == Approx(0.1).epsilon(1e-15));  // warmup start: max · 1/warmup
  REQUIRE(schedule.lr(4) == Approx(0.5).epsilon(1e-15));
  REQUIRE(schedule.lr(9) == Approx(1.0).epsilon(1e-15));  // warmup end
  REQUIRE(schedule.lr(10) == Approx(1.0).epsilon(1e-15));  // cosine start
  REQUIRE(schedule.lr(60) == Approx(0.55).epsilon(1e-15));  // cosine midpoint: (max + min) / 2
  REQUIRE(schedule.lr(35) ==
          Approx(0.1 + 0.45 * (1 + std::cos(3.14159265358979323846 / 4))).epsilon(1e-15));
  REQUIRE(schedule.lr(110) == 0.1);  // end
  REQUIRE(schedule.lr(1000) == 0.1);
  for (index_t s = 11; s <= 110; ++s) REQUIRE(schedule.lr(s) < schedule.lr(s - 1));

  const WarmupCosineSchedule no_warmup(2.0, 0.0, 0, 4);
  REQUIRE(no_warmup.lr(0) == 2.0);
  REQUIRE(no_warmup.lr(2) == Approx(1.0).epsilon(1e-15));
  REQUIRE(no_warmup.lr(4) == 0.0);
}

TEST_CASE("WarmupCosineSchedule refuses bad arguments, naming them", "[optimizer][schedule][errors]") {
  REQUIRE_THROWS_MATCHES(WarmupCosineSchedule(0.0, 0.0, 1, 2), config_error,
                         Catch::Message("WarmupCosineSchedule: max_lr must be > 0 and finite, got 0"));
  REQUIRE_THROWS_WITH(WarmupCosineSchedule(NAN, 0.0, 1, 2), Contains("max_lr") && Contains("nan"));
  REQUIRE_THROWS_WITH(WarmupCosineSchedule(1.0, 2.0, 1, 2), Contains("min_lr") && Contains("got 2"));
  REQUIRE_THROWS_WITH(WarmupCosineSchedule(1.0, -0.5, 1, 2), Contains("min_lr") && Contains("got -0.5"));
  REQUIRE_THROWS_WITH(WarmupCosineSchedule(1.0, 0.1, -1, 2),
                      Contains("warmup_steps") && Contains("got -1"));
  REQUIRE_THROWS_WITH(WarmupCosineSchedule(1.0, 0.1, 5, 5),
                      Contains("total_steps") && Contains("got 5"));
  const WarmupCosineSchedule schedule(1.0, 0.1, 1, 2);
  REQUIRE_THROWS_MATCHES(schedule.lr(-1), range_error,
                         Catch::Message("WarmupCosineSchedule: step must be >= 0, got -1"));
}

TEST_CASE("Seeded initialization: statistics, scaled residual projections, reproducibility",
          "[optimizer][init]") {
  SECTION("a large matrix is N(0, 0.02²)") {
    // 512 × 512 = 262144 values: the sample mean has standard error 0.02/512 = 3.9e-5 and the
    // sample std a relative one of 1/√(2·262144) = 0.14%; the bounds are 5 and 7 standard errors.
    Parameter<float, 2, cpu> big("big", {512, 512});
    NormalRng rng(42);
    init_normal(big, 0.02, rng);
    double sum = 0, sum_of_squares = 0;
    const float* data = big.view().data();
    for (index_t i = 0; i < big.size(); ++i) {
      sum += data[i];
      sum_of_squares += static_cast<double>(data[i]) * data[i];
    }
    const double n = static_cast<double>(big.size());
    const double mean = sum / n;
    const double stddev = std::sqrt(sum_of_squares / n - mean * mean);
    INFO("mean " << mean << ", std " << stddev);
    REQUIRE(std::fabs(mean) <= 2e-4);
    REQUIRE(std::fabs(stddev / 0.02 - 1) <= 0.01);
  }

  const ModelConfig config = test::make_config(64, 4, 2, 16, 172, 32);
  const index_t n_layers = 4;
  auto init = [&](LlamaBlock<cpu, float>& block, std::uint64_t seed) {
    NormalRng rng(seed);
    init_block(block, n_layers, rng);
  };
  auto stddev_of = [](const Parameter<float, 2, cpu>& parameter) {
    double sum_of_squares = 0;
    const float* data = parameter.view().data();
    for (index_t i = 0; i < parameter.size(); ++i)
      sum_of_squares += static_cast<double>(data[i]) * data[i];
    return std::sqrt(sum_of_squares / static_cast<double>(parameter.size()));
  };

  SECTION("a block: 0.02 for wq, wk, wv, w1, w3; 0.02/sqrt(2 n_layers) for wo, w2; gains 1") {
    // The smallest matrix (wk, wv: 32 × 64 = 2048 values) has a relative standard error of the std
    // of 1.6%; the bound of 8% is five of them.
    LlamaBlock<cpu, float> block(config);
    init(block, 7);
    const double residual = 0.02 / std::sqrt(2.0 * n_layers);
    REQUIRE(residual_init_stddev(0.02, n_layers) == residual);
    auto& attention = block.attention();
    auto& ffn = block.feed_forward();
    const std::pair<const Parameter<float, 2, cpu>*, double> expected[] = {
        {&attention.wq(), 0.02}, {&attention.wk(), 0.02}, {&attention.wv(), 0.02},
        {&attention.wo(), residual}, {&ffn.w1(), 0.02}, {&ffn.w2(), residual}, {&ffn.w3(), 0.02}};
    for (const auto& [parameter, stddev] : expected) {
      INFO(parameter->name() << ": std " << stddev_of(*parameter) << ", expected " << stddev);
      REQUIRE(std::fabs(stddev_of(*parameter) / stddev - 1) <= 0.08);
    }
    for (const auto* gain : {&block.attention_norm().weight(), &block.ffn_norm().weight()})
      for (index_t i = 0; i < gain->size(); ++i) REQUIRE(gain->view().data()[i] == 1.0f);
  }

  SECTION("the same seed gives the same bits, another seed other numbers") {
    LlamaBlock<cpu, float> a(config), b(config), c(config);
    init(a, 1234);
    init(b, 1234);
    init(c, 1235);
    auto bits_equal = [](const Parameter<float, 2, cpu>& x, const Parameter<float, 2, cpu>& y) {
      // Over the common prefix: wq and wk differ in size when n_kv_heads < n_heads.
      const index_t count = std::min(x.size(), y.size());
      return std::memcmp(x.view().data(), y.view().data(),
                         static_cast<std::size_t>(count) * sizeof(float)) == 0;
    };
    REQUIRE(bits_equal(a.attention().wq(), b.attention().wq()));
    REQUIRE(bits_equal(a.attention().wo(), b.attention().wo()));
    REQUIRE(bits_equal(a.feed_forward().w2(), b.feed_forward().w2()));
    REQUIRE(bits_equal(a.feed_forward().w3(), b.feed_forward().w3()));
    REQUIRE_FALSE(bits_equal(a.attention().wq(), c.attention().wq()));
    REQUIRE_FALSE(bits_equal(a.feed_forward().w3(), c.feed_forward().w3()));
    // The matrices of one block draw different numbers from one stream.
    REQUIRE_FALSE(bits_equal(a.attention().wq(), a.attention().wk()));
  }

  SECTION("NormalRng is mt19937_64 (the standard pins its 10000th output) through Box-Muller") {
    std::mt19937_64 engine;
    engine.discard(9999);
    REQUIRE(engine() == 9981545732273789042ULL);
    std::mt19937_64 reference(5);
    const double u1 = static_cast<double>((reference() >> 11) + 1) / 9007199254740992.0;
    const double u2 = static_cast<double>(reference() >> 11) / 9007199254740992.0;
    const double r = std::sqrt(-2 * std::log(u1));
    NormalRng rng(5);
    REQUIRE(rng.next() == r * std::cos(6.28318530717958647692 * u2));
    REQUIRE(rng.next() == r * std::sin(6.28318530717958647692 * u2));
  }
}

TEST_CASE("AdamW refuses bad hyper-parameters, naming them and their values",
          "[optimizer][errors]") {
  auto with = [](auto change) {
    AdamWConfig config;
    change(config);
    return config;
  };
  REQUIRE_THROWS_MATCHES(AdamW<float>(with([](AdamWConfig& c) { c.lr = -1; })), config_error,
                         Catch::Message("AdamW: lr must be >= 0 and finite, got -1"));
  REQUIRE_THROWS_WITH(AdamW<float>(with([](AdamWConfig& c) { c.lr = INFINITY; })),
                      Contains("lr") && Contains("inf"));
  REQUIRE_THROWS_MATCHES(AdamW<float>(with([](AdamWConfig& c) { c.beta1 = 1; })), config_error,
                         Catch::Message("AdamW: beta1 must be in [0, 1), got 1"));
  REQUIRE_THROWS_MATCHES(AdamW<float>(with([](AdamWConfig& c) { c.beta2 = -0.5; })), config_error,
                         Catch::Message("AdamW: beta2 must be in [0, 1), got -0.5"));
  REQUIRE_THROWS_MATCHES(AdamW<float>(with([](AdamWConfig& c) { c.eps = 0; })), config_error,
                         Catch::Message("AdamW: eps must be > 0 and finite, got 0"));
  REQUIRE_THROWS_MATCHES(AdamW<float>(with([](AdamWConfig& c) { c.weight_decay = -0.1; })),
                         config_error,
                         Catch::Message("AdamW: weight_decay must be >= 0 and finite, got -0.1"));
  AdamW<float> optimizer(AdamWConfig{});
  REQUIRE_THROWS_MATCHES(optimizer.set_lr(-2), config_error,
                         Catch::Message("AdamW: lr must be >= 0 and finite, got -2"));
  REQUIRE(optimizer.lr() == 1e-3);
}

TEST_CASE("AdamW and clip_grad_norm check every parameter before changing any",
          "[optimizer][errors]") {
  Parameter<float, 2, cpu> trained("attention.wq", {3, 4});
  Parameter<float, 1, cpu> untrained("ffn_norm.weight", {4});
  test::randomize(trained, 3, 0.5);
  trained.enable_grad();
  test::fill_normal(trained.grad(), 4, 1.0);
  AdamW<float> optimizer(AdamWConfig{});
  optimizer.add(trained);
  optimizer.step();  // state exists now
  REQUIRE_THROWS_MATCHES(optimizer.add(trained), config_error,
                         Catch::Message("AdamW: attention.wq was added twice"));

  optimizer.add(untrained);  // listed after: the check must still come before any update
  const std::vector<float> values = values_of(trained);
  const std::vector<float> grads = grad_of(trained);
  const std::vector<float> m = optimizer.exp_avg(0);
  const std::vector<float> v = optimizer.exp_avg_sq(0);
  auto unchanged = [&] {
    REQUIRE(values_of(trained) == values);
    REQUIRE(grad_of(trained) == grads);
    REQUIRE(optimizer.exp_avg(0) == m);
    REQUIRE(optimizer.exp_avg_sq(0) == v);
    REQUIRE(optimizer.step_count(0) == 1);
    REQUIRE(optimizer.exp_avg(1).empty());
    REQUIRE(optimizer.step_count(1) == 0);
  };
  REQUIRE_THROWS_MATCHES(
      optimizer.step(), config_error,
      Catch::Message("AdamW: ffn_norm.weight has no gradient; call enable_grad() before training"));
  unchanged();
  REQUIRE_THROWS_WITH(optimizer.zero_grad(), Contains("ffn_norm.weight has no gradient"));
  unchanged();
  REQUIRE_THROWS_WITH(optimizer.clip_grad_norm(1e-3),
                      Contains("clip_grad_norm: ffn_norm.weight has no gradient"));
  unchanged();

  SECTION("max_norm") {
    const std::vector<ParameterRef<float>> only_trained = {trained};
    REQUIRE_THROWS_MATCHES(clip_grad_norm(only_trained, 0.0), config_error,
                           Catch::Message("clip_grad_norm: max_norm must be > 0 and finite, got 0"));
    REQUIRE_THROWS_WITH(clip_grad_norm(only_trained, -1.0), Contains("max_norm") && Contains("got -1"));
    REQUIRE_THROWS_WITH(clip_grad_norm(only_trained, NAN), Contains("max_norm") && Contains("nan"));
    unchanged();
  }

  SECTION("packed weights") {
    Parameter<float, 2, cpu> packed("output.weight", {2, 2});
    auto halves = std::make_shared<std::vector<std::uint16_t>>(4, std::uint16_t{0x3c00});  // 1.0
    packed.assign_packed(PackedMatrixView{WeightType::f16,
                                          reinterpret_cast<const std::uint8_t*>(halves->data()),
                                          2, 2, 4},
                         halves);
    packed.enable_grad();
    untrained.enable_grad();
    optimizer.add(packed);
    REQUIRE_THROWS_MATCHES(optimizer.step(), config_error,
                           Catch::Message("AdamW: output.weight holds packed weights, which cannot "
                                          "be trained"));
    unchanged();
  }

  SECTION("tied storage") {
    Parameter<float, 2, cpu> tied("output.weight", {3, 4});
    tied.assign(trained.share());
    tied.enable_grad();
    untrained.enable_grad();
    optimizer.add(tied);
    REQUIRE_THROWS_MATCHES(optimizer.step(), config_error,
                           Catch::Message("AdamW: output.weight shares its storage with "
                                          "attention.wq; add tied parameters once "
                                          "(Parameter::tie shares their gradient)"));
    unchanged();
  }

  SECTION("a tied pair added twice") {
    Parameter<float, 2, cpu> tied("output.weight", {3, 4});
    tied.tie(trained);
    untrained.enable_grad();
    tied.enable_grad();  // the gradient trained has already: shared, not a second one
    REQUIRE(tied.shares_grad_with(trained));
    optimizer.add(tied);
    REQUIRE_THROWS_AS(optimizer.step(), config_error);
    unchanged();
  }
}

TEST_CASE("Initialization refuses bad arguments before changing anything", "[optimizer][init][errors]") {
  Parameter<float, 2, cpu> matrix("attention.wq", {2, 2});
  NormalRng rng(1);
  REQUIRE_THROWS_MATCHES(init_normal(matrix, 0.0, rng), config_error,
                         Catch::Message("init_normal: attention.wq: stddev must be > 0 and finite, got 0"));
  REQUIRE(values_of(matrix) == std::vector<float>(4, 0.0f));

  LlamaBlock<cpu, float> block(test::make_config(8, 2, 1, 4, 16, 8));
  REQUIRE_THROWS_MATCHES(init_block(block, 0, rng), config_error,
                         Catch::Message("init_block: n_layers must be >= 1, got 0"));
  REQUIRE_THROWS_WITH(init_block(block, 2, rng, -0.02), Contains("stddev") && Contains("got -0.02"));
  REQUIRE(values_of(block.attention().wq()) == std::vector<float>(64, 0.0f));
  // rng was not drawn from: it still gives the seed's first number.
  NormalRng fresh(1);
  REQUIRE(rng.next() == fresh.next());
}

TEST_CASE("add_parameters adds a block's nine parameters with the usual decay rule", "[optimizer]") {
  LlamaBlock<cpu, float> block(test::make_config(8, 2, 1, 4, 16, 8));
  AdamW<float> optimizer(AdamWConfig{});
  add_parameters(optimizer, block);
  REQUIRE(optimizer.size() == 9);
  int decayed = 0;
  for (std::size_t i = 0; i < optimizer.size(); ++i) {
    const bool decays = optimizer.weight_decay(i) == WeightDecay::apply;
    REQUIRE(decays == (optimizer.parameter(i).rank() == 2));
    decayed += decays;
  }
  REQUIRE(decayed == 7);
}
