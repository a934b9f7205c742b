// Sampler: picks the next token id from one row of logits [vocab_size].
//
//   greedy (temperature == 0):  id = argmax_i logits[i]; the lowest id among equal maxima
//   otherwise, with m = max_j logits[j] / T:
//     softmax                   p_i = exp(logits[i] / T - m) / Σ_j exp(logits[j] / T - m)
//     1. top-k  (top_k > 0)     keep the k most probable tokens (equal p: the lower id ranks first)
//     2. min-p  (min_p > 0)     keep the tokens with p_i >= min_p · max_j p_j
//     3. top-p  (top_p < 1)     sort the survivors by descending p, renormalize them, and keep the
//                               shortest prefix whose cumulative probability exceeds top_p
//                               (all of them if rounding never lets it exceed top_p)
//     draw                      u ~ U[0, 1); return the first kept token s with
//                               u · Σ_kept p  <  Σ_{kept tokens up to and including s} p
// The filters only remove tokens, so each keeps at least the most probable one; with no filter on
// the tokens are walked in id order, otherwise in rank order (same distribution either way). A
// token of probability 0 (a logit of -inf, or an underflowed exp) is never returned.
//
// Random sources, each owning its own state, one draw per stochastic sample() and none for greedy:
//   xorshift_runc  llama2.c run.c's generator, bit for bit:
//                    s ^= s >> 12;  s ^= s << 25;  s ^= s >> 27;  u32 = (s · 0x2545F4914F6CDD1D) >> 32
//                    u = (u32 >> 8) / 2^24                                      (a float in [0, 1))
//                  and run.c's float arithmetic in run.c's order: float division by T, max-subtracted
//                  expf with a float running sum, the cumulative sum over all ids when top_p == 1,
//                  and for 0 < top_p < 1 the prefilter p >= (1 - top_p) / (vocab_size - 1) (which
//                  cannot remove a nucleus token), a descending sort, truncation where the float
//                  cumulative sum first exceeds top_p, and u · (that cumulative sum) as the target.
//                  So `run <model> -t T -p P -s SEED` and {T, P, 0, 0, SEED, xorshift_runc} pick the
//                  same ids. run.c's sort breaks no ties; this one ranks equal probabilities by id,
//                  which is what glibc's (merge sort based) qsort produces. The only departures are
//                  where run.c misbehaves: when the sum of all probabilities stays below u it returns
//                  the last id even if its probability is 0 (here: the last id with p > 0); when
//                  top_p < 1 / vocab_size its prefilter can remove every token and it reads before
//                  its buffer (here: the most probable token, the exact nucleus); and when logits / T
//                  overflows float it samples from NaNs (here: greedy, the T → 0 limit).
//   mt19937_64     std::mt19937_64(seed), u = (64-bit draw >> 11) · 2^-53, arithmetic in double.
//
// API:
//   Sampler(std::int32_t vocab_size, SamplerOptions)   throws config_error naming the field
//   std::int32_t sample(const float* logits)           logits: [vocab_size]; allocates nothing
#pragma once

#include "llamablocks/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

namespace llamablocks {

/// The generator behind the uniform draw of each stochastic sample.
enum class RandomSource {
  xorshift_runc,  ///< llama2.c run.c's xorshift64* and its float arithmetic: same ids as run.c
  mt19937_64,     ///< std::mt19937_64 seeded with `seed`, 53-bit draws, double arithmetic
};

/// Options of a Sampler. Each filter has one value that turns it off.
struct SamplerOptions {
  float temperature = 1.0f;  ///< > 0 divides the logits; 0 = greedy (argmax, lowest id on ties)
  float top_p = 1.0f;        ///< nucleus mass in (0, 1]; 1 = off
  std::int32_t top_k = 0;    ///< keep the k most probable tokens; 0 = off (as is k >= vocab_size)
  float min_p = 0.0f;        ///< drop tokens with p < min_p · p_max, in [0, 1); 0 = off
  std::uint64_t seed = 1;    ///< initial generator state; must be != 0 for xorshift_runc
  RandomSource random = RandomSource::mt19937_64;  ///< generator and arithmetic, see above
};

namespace detail {

/// run.c's random_u32: one xorshift64* step.
inline std::uint32_t xorshift_runc_u32(std::uint64_t& state) noexcept {
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return static_cast<std::uint32_t>((state * 0x2545F4914F6CDD1Dull) >> 32);
}

/// run.c's random_f32: the top 24 bits of a draw, as a float in [0, 1) (exact: both are < 2^24).
inline float xorshift_runc_f32(std::uint64_t& state) noexcept {
  return static_cast<float>(xorshift_runc_u32(state) >> 8) / 16777216.0f;
}

/// The top 53 bits of a 64-bit draw as a double in [0, 1). (std::generate_canonical may return 1.)
inline double unit_double(std::mt19937_64& engine) {
  return static_cast<double>(engine() >> 11) * (1.0 / 9007199254740992.0);
}

/// Index of the largest logit, the lowest one among equal maxima.
/// \throws range_error for a NaN or +inf logit, or when every logit is -inf.
inline std::int32_t checked_argmax(const float* logits, std::int32_t vocab_size) {
  std::int32_t best = 0;
  for (std::int32_t i = 0; i < vocab_size; ++i) {
    const float logit = logits[i];
    // -inf is how callers mask tokens out; NaN or +inf leaves no distribution to sample from.
    if (std::isnan(logit) || logit == std::numeric_limits<float>::infinity()) {
      throw range_error(concat("Sampler::sample: logits[", i, "] must be finite or -inf, got ",
                               logit));
    }
    if (logit > logits[best]) best = i;
  }
  require<range_error>(logits[best] > -std::numeric_limits<float>::infinity(),
                       "Sampler::sample: every logit is -inf (vocab_size ", vocab_size, ")");
  return best;
}

/// Candidate ids ranked lazily, most probable first (lower id first among equal probabilities):
/// a max-heap from which each pop moves the next-best id to the back of the buffer, so rank r
/// lives at ids[count - 1 - r]. The nucleus costs O(count + rank · log count), not a full sort.
template <class Real>
class RankedCandidates {
 public:
  RankedCandidates(std::int32_t* ids, std::int32_t count, const Real* probabilities)
      : ids_(ids), count_(count), ranks_below_{probabilities} {
    std::make_heap(ids_, ids_ + count_, ranks_below_);
  }

  /// The id of rank `rank` (0 = most probable); ranks must be < count.
  std::int32_t at(std::int32_t rank) {
    for (; ranked_ <= rank; ++ranked_) std::pop_heap(ids_, ids_ + (count_ - ranked_), ranks_below_);
    return ids_[count_ - 1 - rank];
  }

 private:
  struct RanksBelow {
    const Real* probabilities;
    bool operator()(std::int32_t a, std::int32_t b) const {
      return probabilities[a] < probabilities[b] || (probabilities[a] == probabilities[b] && a > b);
    }
  };
  std::int32_t* ids_;
  std::int32_t count_;
  RanksBelow ranks_below_;
  std::int32_t ranked_ = 0;
};

/// One stochastic sample with arithmetic in `Real` (float reproduces run.c, see the file comment).
/// \param logits        [vocab_size], already checked by checked_argmax
/// \param argmax        checked_argmax(logits), the greedy fallback when logits / T overflows
/// \param coin          the uniform draw in [0, 1)
/// \param probabilities scratch [vocab_size]
/// \param candidates    scratch [vocab_size]
template <class Real>
std::int32_t sample_stochastic(const float* logits, std::int32_t vocab_size,
                               const SamplerOptions& options, std::int32_t argmax, Real coin,
                               Real* probabilities, std::int32_t* candidates) {
  Real* const p = probabilities;  // [vocab_size]
  const std::int32_t n = vocab_size;

  // Softmax of logits / T, in run.c's order: divide, take the max, exp and sum, divide by the sum.
  const Real temperature = static_cast<Real>(options.temperature);
  std::int32_t most_probable = 0;
  for (std::int32_t i = 0; i < n; ++i) {
    p[i] = static_cast<Real>(logits[i]) / temperature;
    if (p[i] > p[most_probable]) most_probable = i;
  }
  const Real max_scaled = p[most_probable];
  if (!std::isfinite(max_scaled)) return argmax;  // logits / T overflowed: the T → 0 limit
  Real sum = 0;
  for (std::int32_t i = 0; i < n; ++i) {
    p[i] = std::exp(p[i] - max_scaled);
    sum += p[i];
  }
  for (std::int32_t i = 0; i < n; ++i) p[i] /= sum;

  const bool top_k_on = options.top_k > 0 && options.top_k < n;
  const bool min_p_on = options.min_p > 0;
  const bool top_p_on = options.top_p < 1;

  if (!top_k_on && !min_p_on && !top_p_on) {  // run.c's sample_mult
    Real cdf = 0;
    std::int32_t last_possible = most_probable;
    for (std::int32_t i = 0; i < n; ++i) {
      cdf += p[i];
      if (coin < cdf) return i;
      if (p[i] > 0) last_possible = i;
    }
    return last_possible;
  }

  // Candidates above a probability threshold, in id order. min-p is such a threshold; for top-p
  // alone run.c's prefilter is: tokens below (1 - top_p) / (n - 1) sum to less than 1 - top_p, so
  // the nucleus is found before reaching them. It does not hold after top-k's renormalization.
  Real threshold = 0;
  if (min_p_on) {
    threshold = static_cast<Real>(options.min_p) * p[most_probable];
  } else if (top_p_on && !top_k_on && n > 1) {
    threshold = (Real(1) - static_cast<Real>(options.top_p)) / static_cast<Real>(n - 1);
  }
  std::int32_t count = 0;
  Real kept_mass = 0;
  for (std::int32_t i = 0; i < n; ++i) {
    if (p[i] >= threshold && p[i] > 0) {
      candidates[count++] = i;
      kept_mass += p[i];
    }
  }
  // Only the prefilter with top_p < 1/n can remove everything; the nucleus is then the top token.
  if (count == 0) return most_probable;

  if (!top_k_on && !top_p_on) {  // min-p alone: nothing depends on rank
    const Real target = coin * kept_mass;
    Real cdf = 0;
    for (std::int32_t j = 0; j < count; ++j) {
      cdf += p[candidates[j]];
      if (target < cdf) return candidates[j];
    }
    return candidates[count - 1];
  }

  RankedCandidates<Real> ranked(candidates, count, p);
  const std::int32_t eligible = top_k_on ? std::min(options.top_k, count) : count;
  std::int32_t last = eligible - 1;  // kept when rounding never lets the sum exceed the limit
  Real cumulative = 0;
  if (top_p_on) {
    // run.c compares with top_p itself (its probabilities sum to one); after top-k or min-p the
    // nucleus is taken of the renormalized survivors, i.e. against top_p times their mass.
    Real limit = static_cast<Real>(options.top_p);
    if (top_k_on) {
      Real mass = 0;
      for (std::int32_t rank = 0; rank < eligible; ++rank) mass += p[ranked.at(rank)];
      limit *= mass;
    } else if (min_p_on) {
      limit *= kept_mass;
    }
    for (std::int32_t rank = 0; rank < eligible; ++rank) {
      cumulative += p[ranked.at(rank)];
      if (cumulative > limit) {
        last = rank;
        break;
      }
    }
  } else {
    for (std::int32_t rank = 0; rank < eligible; ++rank) cumulative += p[ranked.at(rank)];
  }

  const Real target = coin * cumulative;  // renormalizes the kept tokens
  Real cdf = 0;
  for (std::int32_t rank = 0; rank <= last; ++rank) {
    cdf += p[ranked.at(rank)];
    if (target < cdf) return ranked.at(rank);
  }
  return ranked.at(last);
}

}  // namespace detail

/// Draws token ids from logits with temperature, top-k, min-p and top-p (nucleus) filtering.
///
/// The sampler owns its generator state and its scratch buffers, so sample() allocates nothing;
/// one Sampler serves one sequence at a time (it is not thread-safe). Filters apply in the order
/// top-k, min-p, top-p; see the file comment for the exact math and the two random sources.
///
/// \code
/// Sampler sampler(vocab_size, {0.8f, 0.9f, 0, 0.0f, 42, RandomSource::xorshift_runc});
/// std::int32_t next = sampler.sample(logits);  // the id llama2.c's run -t 0.8 -p 0.9 -s 42 picks
/// \endcode
class Sampler {
 public:
  /// \param vocab_size number of logits per call, > 0.
  /// \param options    temperature >= 0 and finite, top_p in (0, 1], top_k >= 0, min_p in [0, 1),
  ///                   seed != 0 for RandomSource::xorshift_runc (0 is a fixed point of xorshift).
  /// \throws config_error naming the first invalid field and its value.
  explicit Sampler(std::int32_t vocab_size, const SamplerOptions& options)
      : vocab_size_(vocab_size), options_(options) {
    detail::require<config_error>(vocab_size > 0, "Sampler: vocab_size must be > 0, got ",
                                  vocab_size);
    detail::require<config_error>(std::isfinite(options.temperature) && options.temperature >= 0,
                                  "Sampler: temperature must be >= 0 and finite, got ",
                                  options.temperature);
    detail::require<config_error>(options.top_p > 0 && options.top_p <= 1,
                                  "Sampler: top_p must be in (0, 1], got ", options.top_p);
    detail::require<config_error>(options.top_k >= 0, "Sampler: top_k must be >= 0, got ",
                                  options.top_k);
    detail::require<config_error>(options.min_p >= 0 && options.min_p < 1,
                                  "Sampler: min_p must be in [0, 1), got ", options.min_p);
    detail::require<config_error>(options.random == RandomSource::xorshift_runc ||
                                      options.random == RandomSource::mt19937_64,
                                  "Sampler: random must be xorshift_runc or mt19937_64, got ",
                                  static_cast<int>(options.random));
    const bool runc = options.random == RandomSource::xorshift_runc;
    detail::require<config_error>(!runc || options.seed != 0,
                                  "Sampler: seed must be != 0 with RandomSource::xorshift_runc "
                                  "(0 is a fixed point of xorshift), got ",
                                  options.seed);
    const auto n = static_cast<std::size_t>(vocab_size);
    if (runc) {
      probabilities_f32_.resize(n);
    } else {
      probabilities_f64_.resize(n);
    }
    candidates_.resize(n);
    xorshift_state_ = options.seed;
    engine_.seed(options.seed);
  }

  /// Draws the next token id.
  /// \param logits [vocab_size] scores; -inf masks a token out.
  /// \returns an id in [0, vocab_size).
  /// \throws shape_error for a null pointer; range_error for a NaN or +inf logit or when every
  ///         logit is -inf. A call that throws leaves the generator state unchanged.
  std::int32_t sample(const float* logits) {
    detail::require<shape_error>(logits != nullptr, "Sampler::sample: logits must point to ",
                                 vocab_size_, " floats (vocab_size), got nullptr");
    const std::int32_t argmax = detail::checked_argmax(logits, vocab_size_);
    if (options_.temperature == 0) return argmax;
    if (options_.random == RandomSource::xorshift_runc) {
      const float coin = detail::xorshift_runc_f32(xorshift_state_);
      return detail::sample_stochastic<float>(logits, vocab_size_, options_, argmax, coin,
                                              probabilities_f32_.data(), candidates_.data());
    }
    const double coin = detail::unit_double(engine_);
    return detail::sample_stochastic<double>(logits, vocab_size_, options_, argmax, coin,
                                             probabilities_f64_.data(), candidates_.data());
  }

  std::int32_t vocab_size() const { return vocab_size_; }
  const SamplerOptions& options() const { return options_; }

 private:
  std::int32_t vocab_size_;
  SamplerOptions options_;
  std::vector<float> probabilities_f32_;   // [vocab_size], xorshift_runc only
  std::vector<double> probabilities_f64_;  // [vocab_size], mt19937_64 only
  std::vector<std::int32_t> candidates_;   // [vocab_size] ids passing the filters
  std::uint64_t xorshift_state_ = 0;
  std::mt19937_64 engine_;
};

}  // namespace llamablocks
