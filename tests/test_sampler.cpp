// Sampler: greedy, temperature, top-k, min-p and top-p against a scalar double reference, the
// empirical distribution against the exact one, and bit-exact parity with llama2.c's run.c.
#include <llamablocks/text/sampler.hpp>

#include "support/counting_allocator.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <new>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace llamablocks;
using Catch::Matchers::Contains;

namespace {

constexpr RandomSource both_sources[] = {RandomSource::xorshift_runc, RandomSource::mt19937_64};

const char* name_of(RandomSource random) {
  return random == RandomSource::xorshift_runc ? "xorshift_runc" : "mt19937_64";
}

SamplerOptions make_options(float temperature, float top_p, std::int32_t top_k, float min_p,
                            std::uint64_t seed, RandomSource random) {
  SamplerOptions options;
  options.temperature = temperature;
  options.top_p = top_p;
  options.top_k = top_k;
  options.min_p = min_p;
  options.seed = seed;
  options.random = random;
  return options;
}

std::vector<float> normal_logits(std::size_t vocab_size, std::uint32_t seed, double stddev) {
  std::mt19937 generator(seed);
  std::normal_distribution<double> distribution(0.0, stddev);
  std::vector<float> logits(vocab_size);
  for (float& logit : logits) logit = static_cast<float>(distribution(generator));
  return logits;
}

/// The final distribution of the sampler, written independently: plain loops in double, a full
/// sort, each filter applied to the survivors of the previous one.
struct Reference {
  std::vector<double> probabilities;  // [vocab_size], renormalized over the kept tokens
  std::vector<std::size_t> kept;      // kept ids, most probable first
  // How far the closest filter decision is from flipping: the relative gap between the k-th and
  // the (k+1)-th probability, the relative distance of a probability from min-p's threshold, the
  // distance of a cumulative sum from top_p. The tests ask for 1e-5: float rounding moves each by
  // a few 1e-7 here (a sum of n float terms has a relative error near sqrt(n) · 2^-24, n <= 500).
  double margin = 1;
};

Reference reference_distribution(const std::vector<float>& logits, double temperature, int top_k,
                                 double min_p, double top_p) {
  const std::size_t n = logits.size();
  std::vector<double> softmax(n);
  double max_scaled = -std::numeric_limits<double>::infinity();
  for (float logit : logits) max_scaled = std::max(max_scaled, logit / temperature);
  double sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    softmax[i] = std::exp(logits[i] / temperature - max_scaled);
    sum += softmax[i];
  }
  for (double& p : softmax) p /= sum;

  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return softmax[a] != softmax[b] ? softmax[a] > softmax[b] : a < b;
  });
  Reference reference;
  std::vector<std::size_t> kept = order;
  const auto k = static_cast<std::size_t>(top_k);
  if (top_k > 0 && k < n) {
    kept.resize(k);
    const double kth = softmax[order[k - 1]];
    reference.margin = std::min(reference.margin, (kth - softmax[order[k]]) / kth);
  }
  if (min_p > 0) {
    const double threshold = min_p * softmax[order[0]];
    std::vector<std::size_t> above;
    for (std::size_t id : kept) {
      if (softmax[id] >= threshold) above.push_back(id);
      reference.margin = std::min(reference.margin, std::abs(softmax[id] - threshold) / threshold);
    }
    kept = above;
  }
  if (top_p < 1) {
    double mass = 0;
    for (std::size_t id : kept) mass += softmax[id];
    double cumulative = 0;
    std::size_t length = 0;
    while (length < kept.size()) {
      cumulative += softmax[kept[length]] / mass;
      ++length;
      if (cumulative > top_p) break;
    }
    // Only the last step, where the sum crosses top_p, and the one before it decide the nucleus.
    const double before = cumulative - softmax[kept[length - 1]] / mass;
    reference.margin = std::min({reference.margin, std::abs(cumulative - top_p), top_p - before});
    kept.resize(length);
  }
  double kept_mass = 0;
  for (std::size_t id : kept) kept_mass += softmax[id];
  reference.probabilities.assign(n, 0.0);
  for (std::size_t id : kept) reference.probabilities[id] = softmax[id] / kept_mass;
  reference.kept = kept;
  return reference;
}

/// A top_p near `target` halfway between the two cumulative sums of the reference (after top-k and
/// min-p) that straddle it: random logits put a sum arbitrarily close to a round top_p, and then a
/// difference of rounding between the sampler and the reference decides the nucleus, not the rule.
float robust_top_p(const std::vector<float>& logits, double temperature, int top_k, double min_p,
                   double target) {
  const Reference survivors = reference_distribution(logits, temperature, top_k, min_p, 1.0);
  double cumulative = 0;
  for (std::size_t id : survivors.kept) {
    const double next = cumulative + survivors.probabilities[id];
    if (next > target) return static_cast<float>((cumulative + next) / 2);
    cumulative = next;
  }
  return static_cast<float>(target);
}

std::vector<std::int64_t> histogram(Sampler& sampler, const std::vector<float>& logits, int draws) {
  std::vector<std::int64_t> counts(logits.size(), 0);
  int out_of_range = 0;
  for (int draw = 0; draw < draws; ++draw) {
    const std::int32_t id = sampler.sample(logits.data());
    if (id >= 0 && id < static_cast<std::int32_t>(logits.size())) {
      ++counts[static_cast<std::size_t>(id)];
    } else {
      ++out_of_range;
    }
  }
  REQUIRE(out_of_range == 0);
  return counts;
}

/// Checks `counts` (from `draws` samples) against `expected`:
///  - no draw lands on a token of probability 0;
///  - per token, |f - p| <= 5·sqrt(p(1-p)/N) + 2^-23: the binomial standard deviation, 5σ being a
///    two-sided tail of 6e-7 per token, plus room for the 24-bit resolution of run.c's draw;
///  - Pearson's χ² over the tokens with p > 0 stays below the 0.999 quantile of χ²(k − 1),
///    from the Wilson–Hilferty approximation (within 1% of the exact quantile for k − 1 >= 3).
/// The seeds are fixed, so the test is deterministic; the bounds say it is no lucky seed.
void check_frequencies(const std::vector<std::int64_t>& counts, const std::vector<double>& expected,
                       int draws) {
  const double n = draws;
  double chi_square = 0;
  int support = 0;
  double max_excess = -1;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const double p = expected[i];
    const double frequency = static_cast<double>(counts[i]) / n;
    if (p == 0) {
      INFO("token " << i << " has probability 0");
      CHECK(counts[i] == 0);
      continue;
    }
    ++support;
    const double expected_count = p * n;
    chi_square += (static_cast<double>(counts[i]) - expected_count) *
                  (static_cast<double>(counts[i]) - expected_count) / expected_count;
    const double bound = 5 * std::sqrt(p * (1 - p) / n) + std::ldexp(1.0, -23);
    max_excess = std::max(max_excess, std::abs(frequency - p) - bound);
  }
  const double dof = support - 1;
  double chi_square_limit = 0;
  if (dof > 0) {
    const double z = 3.090232;  // the 0.999 quantile of N(0, 1)
    const double c = 2.0 / (9.0 * dof);
    chi_square_limit = dof * std::pow(1 - c + z * std::sqrt(c), 3);
  }
  INFO("tokens with p > 0: " << support << ", chi-square " << chi_square << " (limit "
                             << chi_square_limit << "), max |f - p| - bound " << max_excess);
  CHECK(max_excess <= 0);
  if (dof > 0) CHECK(chi_square <= chi_square_limit);
}

}  // namespace

TEST_CASE("greedy sampling returns the argmax, the lowest id on ties", "[sampler]") {
  for (RandomSource random : both_sources) {
    INFO(name_of(random));
    Sampler sampler(6, make_options(0.0f, 0.9f, 3, 0.1f, 42, random));
    const std::vector<float> distinct = {0.5f, -1.0f, 2.5f, 2.0f, -3.0f, 1.0f};
    CHECK(sampler.sample(distinct.data()) == 2);
    const std::vector<float> tied = {1.0f, 4.0f, -2.0f, 4.0f, 4.0f, 0.0f};
    for (int repeat = 0; repeat < 3; ++repeat) CHECK(sampler.sample(tied.data()) == 1);
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> masked = {-inf, -inf, -7.0f, -inf, -8.0f, -inf};
    CHECK(sampler.sample(masked.data()) == 2);
  }
}

TEST_CASE("as the temperature goes to 0 sampling becomes greedy", "[sampler]") {
  // The argmax is id 1 (3.5); the runner-up, id 4, is 0.5 below it.
  const std::vector<float> logits = {1.0f, 3.5f, 2.5f, -1.0f, 3.0f, 0.0f, 0.5f};
  for (RandomSource random : both_sources) {
    INFO(name_of(random));
    // The share of the argmax grows towards 1 as T shrinks: exactly 0.315, 0.466, 0.661, 0.867 and
    // 0.9933 for these temperatures.
    double previous = 0;
    for (float temperature : {2.0f, 1.0f, 0.5f, 0.25f, 0.1f}) {
      Sampler sampler(7, make_options(temperature, 1.0f, 0, 0.0f, 5, random));
      const auto counts = histogram(sampler, logits, 20000);
      const double share = static_cast<double>(counts[1]) / 20000;
      INFO("T = " << temperature << ": share of the argmax " << share);
      CHECK(share > previous);
      previous = share;
    }
    CHECK(previous > 0.99);

    // Small temperatures, down to ones where logits / T overflows float, give the argmax always.
    for (float temperature :
         {1e-2f, 1e-6f, 1e-30f, 1e-38f, std::numeric_limits<float>::denorm_min()}) {
      INFO("T = " << temperature);
      Sampler sampler(7, make_options(temperature, 0.9f, 0, 0.0f, 5, random));
      CHECK(histogram(sampler, logits, 2000)[1] == 2000);
    }

    // Tied maxima share the limit equally.
    const std::vector<float> tied = {0.0f, 2.0f, 1.9f, 2.0f};
    Sampler sampler(4, make_options(1e-3f, 1.0f, 0, 0.0f, 5, random));
    check_frequencies(histogram(sampler, tied, 20000), {0.0, 0.5, 0.0, 0.5}, 20000);
  }
}

TEST_CASE("with a fixed seed sampling is deterministic", "[sampler]") {
  const std::vector<float> logits = normal_logits(1000, 11, 2.0);
  for (RandomSource random : both_sources) {
    INFO(name_of(random));
    for (float top_p : {1.0f, 0.8f}) {
      Sampler first(1000, make_options(0.9f, top_p, 0, 0.0f, 1234, random));
      Sampler second(1000, make_options(0.9f, top_p, 0, 0.0f, 1234, random));
      Sampler other_seed(1000, make_options(0.9f, top_p, 0, 0.0f, 1235, random));
      int differences = 0;
      for (int draw = 0; draw < 500; ++draw) {
        const std::int32_t id = first.sample(logits.data());
        CHECK(id == second.sample(logits.data()));
        differences += id != other_seed.sample(logits.data());
      }
      CHECK(differences > 400);  // two streams agree on a draw about 1% of the time here
    }
  }
}

TEST_CASE("sample() allocates nothing", "[sampler]") {
  const std::vector<float> logits = normal_logits(4096, 3, 3.0);
  for (RandomSource random : both_sources) {
    Sampler sampler(4096, make_options(0.8f, 0.9f, 50, 0.01f, 77, random));
    Sampler nucleus(4096, make_options(0.8f, 0.95f, 0, 0.0f, 77, random));
    Sampler plain(4096, make_options(1.0f, 1.0f, 0, 0.0f, 77, random));
    const std::size_t before = llamablocks::test::allocation_count;
    for (int draw = 0; draw < 20; ++draw) {
      sampler.sample(logits.data());
      nucleus.sample(logits.data());
      plain.sample(logits.data());
    }
    const std::size_t allocations = llamablocks::test::allocation_count - before;
    INFO(name_of(random));
    CHECK(allocations == 0);
  }
}

TEST_CASE("200k draws follow softmax(logits / T)", "[sampler]") {
  // Ten tokens whose probabilities span 0.003 .. 0.4 at T = 0.7.
  const std::vector<float> logits = {1.2f, -0.4f, 0.3f, 2.0f, -1.5f, 0.9f, 0.0f, -2.4f, 1.6f, 0.6f};
  const int draws = 200000;
  for (RandomSource random : both_sources) {
    for (float temperature : {0.7f, 1.0f, 1.8f}) {
      INFO(name_of(random) << ", T = " << temperature);
      Sampler sampler(10, make_options(temperature, 1.0f, 0, 0.0f, 2024, random));
      const Reference reference = reference_distribution(logits, temperature, 0, 0.0, 1.0);
      check_frequencies(histogram(sampler, logits, draws), reference.probabilities, draws);
    }
  }
}

TEST_CASE("top-k only ever returns the k largest", "[sampler]") {
  // Logits on a coarse grid, so equal values meet at the k-th place: ties rank the lower id first.
  std::vector<float> logits = normal_logits(200, 21, 1.5);
  for (float& logit : logits) logit = std::round(logit * 4) / 4;
  int ties_at_the_boundary = 0;
  for (RandomSource random : both_sources) {
    for (int top_k : {1, 2, 5, 17, 64}) {
      INFO(name_of(random) << ", top_k = " << top_k);
      const Reference reference = reference_distribution(logits, 1.0, top_k, 0.0, 1.0);
      REQUIRE(reference.kept.size() == static_cast<std::size_t>(top_k));
      ties_at_the_boundary += reference.margin == 0;  // the k-th and (k+1)-th are equal
      Sampler sampler(200, make_options(1.0f, 1.0f, top_k, 0.0f, 99, random));
      const int draws = 20000;
      check_frequencies(histogram(sampler, logits, draws), reference.probabilities, draws);
    }
    Sampler off(200, make_options(1.0f, 1.0f, 200, 0.0f, 99, random));
    Sampler plain(200, make_options(1.0f, 1.0f, 0, 0.0f, 99, random));
    for (int draw = 0; draw < 200; ++draw) CHECK(off.sample(logits.data()) == plain.sample(logits.data()));
  }
  CHECK(ties_at_the_boundary > 0);
  // top_k = 1 is greedy, ties included.
  const std::vector<float> tied = {0.0f, 2.0f, 1.9f, 2.0f};
  for (RandomSource random : both_sources) {
    Sampler sampler(4, make_options(1.0f, 1.0f, 1, 0.0f, 3, random));
    CHECK(histogram(sampler, tied, 1000)[1] == 1000);
  }
}

TEST_CASE("top-p returns only tokens of the nucleus", "[sampler]") {
  const std::vector<float> logits = normal_logits(500, 31, 2.0);
  for (RandomSource random : both_sources) {
    for (double target : {0.05, 0.3, 0.7, 0.9, 0.99}) {
      const float top_p = robust_top_p(logits, 0.9, 0, 0.0, target);
      INFO(name_of(random) << ", top_p = " << top_p);
      const Reference reference = reference_distribution(logits, 0.9, 0, 0.0, top_p);
      REQUIRE(reference.margin > 1e-5);
      Sampler sampler(500, make_options(0.9f, top_p, 0, 0.0f, 8, random));
      const int draws = 20000;
      const auto counts = histogram(sampler, logits, draws);
      check_frequencies(counts, reference.probabilities, draws);
      // And the nucleus is not smaller than the reference's: each of its tokens expected 20 times
      // or more turns up (a binomial count of mean 20 is 0 with probability 2e-9).
      INFO("nucleus size " << reference.kept.size());
      for (std::size_t id : reference.kept) {
        if (reference.probabilities[id] * draws >= 20) CHECK(counts[id] > 0);
      }
    }
  }
  // A nucleus smaller than one token is the most probable one: here top_p < 1 / vocab_size, where
  // run.c's prefilter removes every token of a flat distribution.
  const std::vector<float> flat(64, 0.25f);
  for (RandomSource random : both_sources) {
    Sampler sampler(64, make_options(1.0f, 1e-3f, 0, 0.0f, 8, random));
    CHECK(histogram(sampler, flat, 100)[0] == 100);
  }
}

TEST_CASE("min-p drops tokens below min_p times the largest probability", "[sampler]") {
  const std::vector<float> logits = normal_logits(300, 41, 1.5);
  for (RandomSource random : both_sources) {
    for (float min_p : {0.02f, 0.1f, 0.5f}) {
      INFO(name_of(random) << ", min_p = " << min_p);
      const Reference reference = reference_distribution(logits, 1.1, 0, min_p, 1.0);
      REQUIRE(reference.margin > 1e-5);
      Sampler sampler(300, make_options(1.1f, 1.0f, 0, min_p, 13, random));
      const int draws = 20000;
      check_frequencies(histogram(sampler, logits, draws), reference.probabilities, draws);
    }
  }
}

TEST_CASE("top-k, min-p and top-p compose in that order", "[sampler]") {
  const std::vector<float> logits = normal_logits(400, 51, 1.0);
  struct Case {
    int top_k;
    float min_p;
    double top_p;
  };
  for (RandomSource random : both_sources) {
    for (const Case& filters : {Case{40, 0.0f, 0.6}, Case{0, 0.2f, 0.6}, Case{40, 0.3f, 1.0},
                                Case{25, 0.25f, 0.5}}) {
      const float top_p = filters.top_p < 1
                              ? robust_top_p(logits, 0.8, filters.top_k, filters.min_p, filters.top_p)
                              : 1.0f;
      INFO(name_of(random) << ", top_k = " << filters.top_k << ", min_p = " << filters.min_p
                           << ", top_p = " << top_p);
      const Reference reference =
          reference_distribution(logits, 0.8, filters.top_k, filters.min_p, top_p);
      REQUIRE(reference.margin > 1e-5);
      Sampler sampler(400, make_options(0.8f, top_p, filters.top_k, filters.min_p, 17, random));
      const int draws = 20000;
      check_frequencies(histogram(sampler, logits, draws), reference.probabilities, draws);
    }
  }
}

TEST_CASE("masked tokens (-inf) are never sampled", "[sampler]") {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> logits(50, -inf);
  logits[3] = 0.0f;
  logits[17] = 0.5f;
  logits[49] = -0.5f;
  for (RandomSource random : both_sources) {
    for (const SamplerOptions& options :
         {make_options(1.0f, 1.0f, 0, 0.0f, 5, random), make_options(1.0f, 0.5f, 0, 0.0f, 5, random),
          make_options(1.0f, 1.0f, 20, 0.0f, 5, random), make_options(1.0f, 1.0f, 0, 0.01f, 5, random)}) {
      Sampler sampler(50, options);
      const auto counts = histogram(sampler, logits, 3000);
      CHECK(counts[3] + counts[17] + counts[49] == 3000);
    }
  }
}

TEST_CASE("invalid options and logits are refused by name", "[sampler]") {
  const SamplerOptions valid = make_options(1.0f, 0.9f, 0, 0.0f, 42, RandomSource::xorshift_runc);
  REQUIRE_NOTHROW(Sampler(10, valid));
  auto rejects = [&](SamplerOptions options, const std::string& field, const std::string& value) {
    INFO(field << " = " << value);
    CHECK_THROWS_AS(Sampler(10, options), config_error);
    CHECK_THROWS_WITH(Sampler(10, options), Contains(field) && Contains("got " + value));
  };
  SamplerOptions options = valid;
  options.temperature = -0.5f;
  rejects(options, "temperature", "-0.5");
  options.temperature = std::numeric_limits<float>::infinity();
  rejects(options, "temperature", "inf");
  options.temperature = std::nanf("");
  rejects(options, "temperature", "nan");
  options = valid;
  options.top_p = 0.0f;
  rejects(options, "top_p", "0");
  options.top_p = 1.5f;
  rejects(options, "top_p", "1.5");
  options.top_p = std::nanf("");
  rejects(options, "top_p", "nan");
  options = valid;
  options.top_k = -3;
  rejects(options, "top_k", "-3");
  options = valid;
  options.min_p = 1.0f;
  rejects(options, "min_p", "1");
  options.min_p = -0.25f;
  rejects(options, "min_p", "-0.25");
  options = valid;
  options.seed = 0;
  rejects(options, "seed", "0");
  options.random = RandomSource::mt19937_64;
  REQUIRE_NOTHROW(Sampler(10, options));  // 0 is an ordinary seed for the Mersenne twister
  options.random = static_cast<RandomSource>(7);
  rejects(options, "random", "7");
  CHECK_THROWS_AS(Sampler(0, valid), config_error);
  CHECK_THROWS_WITH(Sampler(-5, valid), Contains("vocab_size") && Contains("got -5"));

  Sampler sampler(4, valid);
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> with_nan = {0.0f, std::nanf(""), 1.0f, 2.0f};
  CHECK_THROWS_AS(sampler.sample(with_nan.data()), range_error);
  CHECK_THROWS_WITH(sampler.sample(with_nan.data()), Contains("logits[1]") && Contains("nan"));
  const std::vector<float> with_inf = {0.0f, 1.0f, 2.0f, inf};
  CHECK_THROWS_WITH(sampler.sample(with_inf.data()), Contains("logits[3]") && Contains("inf"));
  const std::vector<float> all_masked(4, -inf);
  CHECK_THROWS_AS(sampler.sample(all_masked.data()), range_error);
  CHECK_THROWS_AS(sampler.sample(nullptr), shape_error);
}

namespace {

#ifdef LLAMABLOCKS_TEST_DATA_DIR
const std::string test_data_dir = LLAMABLOCKS_TEST_DATA_DIR;
#else
// CMake passes absolute source paths, so tests/data sits beside this file.
const std::string test_data_dir = [] {
  const std::string file = __FILE__;
  const std::size_t slash = file.find_last_of("/\\");
  return (slash == std::string::npos ? std::string(".") : file.substr(0, slash)) + "/data";
}();
#endif

struct RuncRun {
  std::uint64_t seed = 0;
  float temperature = 0;
  float top_p = 0;
  std::vector<std::int32_t> ids;
};

std::vector<RuncRun> read_runc_fixture(const std::string& path) {
  std::ifstream file(path);
  INFO("fixture " << path);
  REQUIRE(file.is_open());
  std::vector<RuncRun> runs;
  std::string line;
  while (std::getline(file, line)) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("config ", 0) == 0) {
      RuncRun run;
      const std::size_t seed_at = line.find("seed=");
      const std::size_t temperature_at = line.find("temperature=");
      const std::size_t top_p_at = line.find("top_p=");
      REQUIRE(seed_at != std::string::npos);
      REQUIRE(temperature_at != std::string::npos);
      REQUIRE(top_p_at != std::string::npos);
      run.seed = std::strtoull(line.c_str() + seed_at + 5, nullptr, 10);
      run.temperature = std::strtof(line.c_str() + temperature_at + 12, nullptr);
      run.top_p = std::strtof(line.c_str() + top_p_at + 6, nullptr);
      runs.push_back(run);
      continue;
    }
    REQUIRE(!runs.empty());
    REQUIRE(line.size() % 4 == 0);
    for (std::size_t at = 0; at < line.size(); at += 4) {
      runs.back().ids.push_back(
          static_cast<std::int32_t>(std::stoul(line.substr(at, 4), nullptr, 16)));
    }
  }
  return runs;
}

/// The fixture's logits, step by step (its header states the formula).
class FixtureLogits {
 public:
  static constexpr std::int32_t vocab_size = 32000;

  FixtureLogits() : permutation_(vocab_size), logits_(vocab_size) {
    std::iota(permutation_.begin(), permutation_.end(), 0);
  }

  const std::vector<float>& next() {
    for (std::uint32_t i = vocab_size - 1; i > 0; --i) {
      const std::uint32_t j = draw() % (i + 1);
      std::swap(permutation_[i], permutation_[j]);
    }
    const float scale = 1.0f / static_cast<float>(1 << (9 + step_ % 4));
    for (std::size_t i = 0; i < logits_.size(); ++i) {
      logits_[i] = static_cast<float>(permutation_[i] - vocab_size / 2) * scale;
    }
    ++step_;
    return logits_;
  }

 private:
  std::uint32_t draw() {
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<std::uint32_t>(state_ >> 32);
  }
  std::uint64_t state_ = 20240601;
  std::vector<std::int32_t> permutation_;
  std::vector<float> logits_;
  int step_ = 0;
};

}  // namespace

TEST_CASE("xorshift_runc picks exactly the ids of llama2.c's run.c", "[sampler][runc]") {
  const std::vector<RuncRun> runs = read_runc_fixture(test_data_dir + "/runc_sampler_fixture.txt");
  REQUIRE(runs.size() == 8);
  std::vector<Sampler> samplers;
  std::size_t steps = 0;
  for (const RuncRun& run : runs) {
    samplers.emplace_back(FixtureLogits::vocab_size,
                          make_options(run.temperature, run.top_p, 0, 0.0f, run.seed,
                                       RandomSource::xorshift_runc));
    REQUIRE(run.ids.size() == 2000);
    steps = run.ids.size();
  }
  FixtureLogits fixture;
  std::vector<std::size_t> mismatches(runs.size(), 0);
  std::vector<std::size_t> first_mismatch(runs.size(), steps);
  for (std::size_t step = 0; step < steps; ++step) {
    const std::vector<float>& logits = fixture.next();
    for (std::size_t r = 0; r < runs.size(); ++r) {
      if (samplers[r].sample(logits.data()) != runs[r].ids[step]) {
        if (mismatches[r]++ == 0) first_mismatch[r] = step;
      }
    }
  }
  for (std::size_t r = 0; r < runs.size(); ++r) {
    INFO("seed " << runs[r].seed << ", temperature " << runs[r].temperature << ", top_p "
                 << runs[r].top_p << ": first mismatch at step " << first_mismatch[r]);
    CHECK(mismatches[r] == 0);
  }
}
