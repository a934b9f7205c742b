// LlamaBlock<cpu, float> against the golden files of tests/golden (an independent PyTorch float64
// implementation, see tests/golden/README.md), step by step: each module is fed the golden input of
// its step, so a mismatch points at the module that causes it rather than at everything after it.
// Every step runs with 1 and 2 threads. The largest NMSE of each step over both thread counts is
// printed (WARN) once per golden file.
#include "support/golden_file.hpp"
#include "support/tolerance.hpp"

#include <llamablocks/llamablocks.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace llamablocks;
using llamablocks::test::GoldenEntry;
using llamablocks::test::GoldenFile;
using llamablocks::test::golden_file_error;
using llamablocks::test::golden_path;
using llamablocks::test::tolerance;

const std::vector<std::string>& golden_file_names() {
  static const std::vector<std::string> names = {
      "mha_interleaved.lbg", "gqa_half_split_llama3.lbg", "mqa_interleaved_wide_heads.lbg",
      "gqa_interleaved_rope32.lbg"};
  return names;
}

/// Positions beyond the golden sequence, so that the tables and cache are not exactly full.
constexpr index_t extra_positions = 3;

// --- configuration and weights ------------------------------------------------------------------

struct GoldenSetup {
  ModelConfig config;
  index_t batch = 0;
  index_t tokens = 0;
};

GoldenSetup setup_from(const GoldenFile& golden) {
  GoldenSetup s;
  ModelConfig& c = s.config;
  c.dim = golden.integer("config.dim");
  c.n_heads = golden.integer("config.n_heads");
  c.n_kv_heads = golden.integer("config.n_kv_heads");
  c.head_dim = golden.integer("config.head_dim");
  c.ffn_hidden_dim = golden.integer("config.ffn_hidden_dim");
  c.rope_theta = golden.scalar("config.rope_theta");
  c.norm_eps = golden.scalar("config.norm_eps");
  // A block uses neither; validate() wants them positive.
  c.n_layers = 1;
  c.vocab_size = 1;
  s.batch = golden.integer("config.batch");
  s.tokens = golden.integer("config.tokens");
  c.max_seq_len = s.tokens + extra_positions;

  const std::int64_t layout = golden.integer("config.rope_layout");
  if (layout != 0 && layout != 1)
    throw golden_file_error("golden file '" + golden.path() + "': config.rope_layout " +
                            std::to_string(layout) + " is neither 0 nor 1");
  c.rope_layout = layout == 0 ? RopeLayout::interleaved : RopeLayout::half_split;

  const std::int64_t scaling = golden.integer("config.rope_scaling");
  if (scaling != 0 && scaling != 1)
    throw golden_file_error("golden file '" + golden.path() + "': config.rope_scaling " +
                            std::to_string(scaling) + " is neither 0 nor 1");
  if (scaling == 1)
    c.rope_scaling = RopeScaling::llama3(
        golden.scalar("config.rope_scaling.factor"),
        golden.scalar("config.rope_scaling.low_freq_factor"),
        golden.scalar("config.rope_scaling.high_freq_factor"),
        golden.integer("config.rope_scaling.original_max_position_embeddings"));
  c.validate();
  return s;
}

template <int Rank>
std::vector<std::int64_t> as_shape(const Shape<Rank>& shape) {
  return std::vector<std::int64_t>(shape.begin(), shape.end());
}

/// Copies golden entry `name` into `parameter`, whose shape it must have.
template <int Rank>
void load(Parameter<float, Rank>& parameter, const GoldenFile& golden, const std::string& name) {
  const std::vector<float>& data = golden.floats(name, as_shape<Rank>(parameter.shape()));
  parameter.copy_from(TensorView<const float, Rank>(data.data(), parameter.shape()));
}

void load_block(LlamaBlock<cpu, float>& block, const GoldenFile& golden) {
  load(block.attention_norm().weight(), golden, "attention_norm.weight");
  load(block.attention().wq(), golden, "attention.wq");
  load(block.attention().wk(), golden, "attention.wk");
  load(block.attention().wv(), golden, "attention.wv");
  load(block.attention().wo(), golden, "attention.wo");
  load(block.ffn_norm().weight(), golden, "ffn_norm.weight");
  load(block.feed_forward().w1(), golden, "feed_forward.w1");
  load(block.feed_forward().w3(), golden, "feed_forward.w3");
  load(block.feed_forward().w2(), golden, "feed_forward.w2");
}

// --- comparison and the per-step NMSE log ---------------------------------------------------------

/// Largest NMSE per step label, in first-seen order.
struct NmseLog {
  std::vector<std::string> order;
  std::map<std::string, double> largest;

  void record(const std::string& step, double nmse) {
    const auto found = largest.find(step);
    if (found == largest.end()) {
      order.push_back(step);
      largest.emplace(step, nmse);
    } else {
      found->second = std::max(found->second, nmse);
    }
  }

  std::string report(const std::string& file) const {
    std::ostringstream out;
    out.precision(3);
    out << file << ": largest NMSE per step (1 and 2 threads; threshold "
        << tolerance<float>::golden_nmse << ")";
    for (const std::string& step : order) out << "\n  " << step << ": " << largest.at(step);
    return out.str();
  }
};

NmseLog& log_for(const std::string& file) {
  static std::map<std::string, NmseLog> logs;
  return logs[file];
}

/// require_close under the golden threshold, also recording the NMSE under `step`.
template <class A, class B>
void check_step(NmseLog& log, const std::string& step, const A* actual, const B* reference,
                std::size_t count) {
  log.record(step, llamablocks::test::compare(actual, reference, count).nmse);
  llamablocks::test::require_close(step.c_str(), actual, reference, count,
                                   tolerance<float>::golden_nmse);
}

/// Rows [first, first + count) of dimension 1 of a row-major [outer, tokens, inner] array, as a
/// contiguous [outer, count, inner] copy.
template <class T>
std::vector<T> token_slice(const std::vector<T>& data, index_t outer, index_t tokens, index_t inner,
                           index_t first, index_t count) {
  std::vector<T> slice;
  slice.reserve(static_cast<std::size_t>(outer * count * inner));
  for (index_t o = 0; o < outer; ++o) {
    const auto begin = data.begin() + static_cast<std::ptrdiff_t>((o * tokens + first) * inner);
    slice.insert(slice.end(), begin, begin + static_cast<std::ptrdiff_t>(count * inner));
  }
  return slice;
}

/// Writes a contiguous [outer, count, inner] slice back into rows [first, first + count).
template <class T>
void put_token_slice(std::vector<T>& data, const std::vector<T>& slice, index_t outer,
                     index_t tokens, index_t inner, index_t first, index_t count) {
  for (index_t o = 0; o < outer; ++o)
    std::copy_n(slice.begin() + static_cast<std::ptrdiff_t>(o * count * inner), count * inner,
                data.begin() + static_cast<std::ptrdiff_t>((o * tokens + first) * inner));
}

/// The cache's [batch, n_kv_heads, max_seq_len, head_dim] positions 0 .. tokens−1 reordered to the
/// golden layout [batch, tokens, n_kv_heads, head_dim].
std::vector<float> cache_as_golden(const TensorView<const float, 4>& cache, index_t tokens) {
  const index_t batch = cache.shape(0);
  const index_t heads = cache.shape(1);
  const index_t head_dim = cache.shape(3);
  std::vector<float> out;
  out.reserve(static_cast<std::size_t>(batch * tokens * heads * head_dim));
  for (index_t b = 0; b < batch; ++b)
    for (index_t t = 0; t < tokens; ++t)
      for (index_t h = 0; h < heads; ++h)
        for (index_t i = 0; i < head_dim; ++i) out.push_back(cache(b, h, t, i));
  return out;
}

}  // namespace

TEST_CASE("LlamaBlock<cpu, float> matches the PyTorch golden files step by step", "[golden]") {
  const std::string file = GENERATE(from_range(golden_file_names()));
  const int threads = GENERATE(1, 2);
  INFO("golden file " << file << ", " << threads << " thread(s)");

  const GoldenFile golden(golden_path(file));
  const GoldenSetup setup = setup_from(golden);
  const ModelConfig& config = setup.config;
  const index_t batch = setup.batch;
  const index_t tokens = setup.tokens;
  const index_t dim = config.dim;
  const index_t n_heads = config.n_heads;
  const index_t n_kv_heads = config.n_kv_heads;
  const index_t head_dim = config.head_dim;
  NmseLog& log = log_for(file);

  const Context<cpu> ctx(threads);
  LlamaBlock<cpu, float> block(config);
  load_block(block, golden);

  const Shape<3> act_shape{batch, tokens, dim};
  const Shape<4> q_shape{batch, tokens, n_heads, head_dim};
  const Shape<4> kv_shape{batch, tokens, n_kv_heads, head_dim};
  const auto& input = golden.floats("input", as_shape<3>(act_shape));
  const auto activation_count = static_cast<std::size_t>(batch * tokens * dim);

  // rope.inv_freq: double against double, element-wise (both are θ^(−2j/d) with LLaMA-3 scaling).
  {
    const std::vector<double>& expected = golden.doubles("rope.inv_freq");
    golden.expect_shape("rope.inv_freq", {head_dim / 2});
    const std::vector<double>& actual = block.attention().rope().inv_freq();
    REQUIRE(actual.size() == expected.size());
    double worst_relative = 0;
    for (std::size_t j = 0; j < expected.size(); ++j) {
      INFO("rope.inv_freq[" << j << "]: " << actual[j] << " vs golden " << expected[j]);
      const double relative = std::fabs(actual[j] - expected[j]) / std::fabs(expected[j]);
      worst_relative = std::max(worst_relative, relative);
      CHECK(std::fabs(actual[j] - expected[j]) <= 1e-12 * std::fabs(expected[j]));
    }
    log.record("rope.inv_freq (max relative error, limit 1e-12)", worst_relative);
    check_step(log, "rope.inv_freq (NMSE)", actual.data(), expected.data(), expected.size());
  }

  // attention_norm on the golden input.
  {
    std::vector<float> out(activation_count);
    block.attention_norm().forward(ctx, TensorView<const float, 3>(input.data(), act_shape),
                                   TensorView<float, 3>(out.data(), act_shape));
    check_step(log, "attention_norm.out", out.data(),
               golden.floats("attention_norm.out", as_shape<3>(act_shape)).data(), out.size());
  }

  const auto& normed = golden.floats("attention_norm.out", as_shape<3>(act_shape));
  const TensorView<const float, 3> normed_view(normed.data(), act_shape);

  // q, k, v projections alone (the block's weights in a Linear each), before RoPE.
  {
    const std::pair<const char*, Parameter<float, 2>*> projections[] = {
        {"attention.q", &block.attention().wq()},
        {"attention.k", &block.attention().wk()},
        {"attention.v", &block.attention().wv()}};
    for (const auto& [name, weight] : projections) {
      Linear<cpu, float> projection(dim, weight->shape()[0]);
      projection.weight().copy_from(weight->view());
      const Shape<3> out_shape{batch, tokens, weight->shape()[0]};
      std::vector<float> out(static_cast<std::size_t>(batch * tokens * weight->shape()[0]));
      projection.forward(ctx, normed_view, TensorView<float, 3>(out.data(), out_shape));
      const auto& expected = golden.floats(name);
      REQUIRE(expected.size() == out.size());
      check_step(log, std::string(name) + " (projection)", out.data(), expected.data(),
                 out.size());
    }
  }

  // RoPE alone, on golden q and k: from position 0, and the second half from start_pos tokens/2.
  const index_t half = tokens / 2;
  for (const auto& [name, heads] : {std::pair<std::string, index_t>{"attention.q", n_heads},
                                    std::pair<std::string, index_t>{"attention.k", n_kv_heads}}) {
    const Shape<4> shape{batch, tokens, heads, head_dim};
    const auto& before = golden.floats(name, as_shape<4>(shape));
    const auto& expected = golden.floats(name + "_rope", as_shape<4>(shape));
    std::vector<float> rotated(before);
    block.attention().rope().apply(ctx, TensorView<float, 4>(rotated.data(), shape), 0);
    check_step(log, name + "_rope", rotated.data(), expected.data(), rotated.size());

    const index_t rest = tokens - half;
    std::vector<float> tail = token_slice(before, batch, tokens, heads * head_dim, half, rest);
    block.attention().rope().apply(
        ctx, TensorView<float, 4>(tail.data(), {batch, rest, heads, head_dim}), half);
    const std::vector<float> expected_tail =
        token_slice(expected, batch, tokens, heads * head_dim, half, rest);
    check_step(log, name + "_rope (start_pos tokens/2)", tail.data(), expected_tail.data(),
               tail.size());
  }

  const auto& q_rope = golden.floats("attention.q_rope", as_shape<4>(q_shape));
  const auto& k_rope = golden.floats("attention.k_rope", as_shape<4>(kv_shape));
  const auto& v = golden.floats("attention.v", as_shape<4>(kv_shape));
  const auto& context = golden.floats("attention.context", {batch, tokens, n_heads * head_dim});

  // The attention kernel alone, on golden q_rope, k_rope and v: the whole prefill, then the
  // second half of the queries at start_pos tokens/2 over the same cache.
  {
    KVCache<cpu, float> cache(config, batch);
    cache.write(0, TensorView<const float, 4>(k_rope.data(), kv_shape),
                TensorView<const float, 4>(v.data(), kv_shape));
    Workspace<float, cpu> workspace;
    std::vector<float> out(q_rope.size());
    causal_attention<float>(ctx, TensorView<const float, 4>(q_rope.data(), q_shape), cache, 0,
                            TensorView<float, 4>(out.data(), q_shape), workspace);
    check_step(log, "attention.context (causal_attention)", out.data(), context.data(),
               out.size());

    const index_t rest = tokens - half;
    const Shape<4> tail_shape{batch, rest, n_heads, head_dim};
    const std::vector<float> q_tail =
        token_slice(q_rope, batch, tokens, n_heads * head_dim, half, rest);
    std::vector<float> tail_out(q_tail.size());
    causal_attention<float>(ctx, TensorView<const float, 4>(q_tail.data(), tail_shape), cache,
                            half, TensorView<float, 4>(tail_out.data(), tail_shape), workspace);
    const std::vector<float> expected_tail =
        token_slice(context, batch, tokens, n_heads * head_dim, half, rest);
    check_step(log, "attention.context (causal_attention, start_pos tokens/2)", tail_out.data(),
               expected_tail.data(), tail_out.size());
  }

  // The attention module on golden attention_norm.out; the cache it fills holds k_rope and v.
  {
    KVCache<cpu, float> cache(config, batch);
    std::vector<float> out(activation_count);
    block.attention().forward(ctx, normed_view, cache, 0,
                              TensorView<float, 3>(out.data(), act_shape));
    check_step(log, "attention.out", out.data(),
               golden.floats("attention.out", as_shape<3>(act_shape)).data(), out.size());
    REQUIRE(cache.length() == tokens);
    const std::vector<float> keys = cache_as_golden(cache.keys(), tokens);
    const std::vector<float> values = cache_as_golden(cache.values(), tokens);
    check_step(log, "attention.k_rope (cached keys)", keys.data(), k_rope.data(), keys.size());
    check_step(log, "attention.v (cached values)", values.data(), v.data(), values.size());
  }

  // ffn_norm on golden h; feed_forward on golden ffn_norm.out (and its hidden activation).
  {
    const auto& h = golden.floats("h", as_shape<3>(act_shape));
    std::vector<float> out(activation_count);
    block.ffn_norm().forward(ctx, TensorView<const float, 3>(h.data(), act_shape),
                             TensorView<float, 3>(out.data(), act_shape));
    check_step(log, "ffn_norm.out", out.data(),
               golden.floats("ffn_norm.out", as_shape<3>(act_shape)).data(), out.size());

    const auto& ffn_in = golden.floats("ffn_norm.out", as_shape<3>(act_shape));
    const TensorView<const float, 3> ffn_in_view(ffn_in.data(), act_shape);
    const index_t hidden_dim = config.ffn_hidden_dim;
    const Shape<3> hidden_shape{batch, tokens, hidden_dim};
    Linear<cpu, float> gate_projection(dim, hidden_dim);
    Linear<cpu, float> up_projection(dim, hidden_dim);
    gate_projection.weight().copy_from(block.feed_forward().w1().view());
    up_projection.weight().copy_from(block.feed_forward().w3().view());
    const auto hidden_count = static_cast<std::size_t>(batch * tokens * hidden_dim);
    std::vector<float> gate(hidden_count);
    std::vector<float> up(hidden_count);
    gate_projection.forward(ctx, ffn_in_view, TensorView<float, 3>(gate.data(), hidden_shape));
    up_projection.forward(ctx, ffn_in_view, TensorView<float, 3>(up.data(), hidden_shape));
    const Shape<2> rows_shape{batch * tokens, hidden_dim};
    swiglu_activation<float>(ctx, TensorView<float, 2>(gate.data(), rows_shape),
                             TensorView<const float, 2>(up.data(), rows_shape));
    check_step(log, "feed_forward.hidden (projections + swiglu_activation)", gate.data(),
               golden.floats("feed_forward.hidden", as_shape<3>(hidden_shape)).data(),
               gate.size());

    block.feed_forward().forward(ctx, ffn_in_view, TensorView<float, 3>(out.data(), act_shape));
    check_step(log, "feed_forward.out", out.data(),
               golden.floats("feed_forward.out", as_shape<3>(act_shape)).data(), out.size());
  }

  const auto& output = golden.floats("output", as_shape<3>(act_shape));

  // The whole block in one prefill from the golden input.
  {
    KVCache<cpu, float> cache(config, batch);
    std::vector<float> x(input);
    block.forward(ctx, TensorView<float, 3>(x.data(), act_shape), cache, 0);
    REQUIRE(cache.length() == tokens);
    check_step(log, "output (block, one prefill)", x.data(), output.data(), x.size());
  }

  // Prefill of the first tokens/2 tokens, then one token per call; the concatenation must match.
  {
    KVCache<cpu, float> cache(config, batch);
    std::vector<float> result(activation_count);
    if (half > 0) {
      std::vector<float> x = token_slice(input, batch, tokens, dim, 0, half);
      block.forward(ctx, TensorView<float, 3>(x.data(), {batch, half, dim}), cache, 0);
      put_token_slice(result, x, batch, tokens, dim, 0, half);
    }
    for (index_t position = half; position < tokens; ++position) {
      std::vector<float> x = token_slice(input, batch, tokens, dim, position, 1);
      block.forward(ctx, TensorView<float, 3>(x.data(), {batch, 1, dim}), cache, position);
      REQUIRE(cache.length() == position + 1);
      put_token_slice(result, x, batch, tokens, dim, position, 1);
    }
    check_step(log, "output (prefill tokens/2, then decode one token at a time)", result.data(),
               output.data(), result.size());
  }

  if (threads == 2) WARN(log.report(file));
}

// --- the reader itself --------------------------------------------------------------------------

namespace {

std::vector<unsigned char> read_bytes(const std::string& path) {
  std::ifstream stream(path, std::ios::binary);
  REQUIRE(stream);
  return std::vector<unsigned char>((std::istreambuf_iterator<char>(stream)),
                                    std::istreambuf_iterator<char>());
}

std::size_t element_size(const GoldenEntry& e) {
  return e.dtype == llamablocks::test::GoldenDtype::float64 ? 8 : 4;
}

/// Byte offset at which each entry starts, plus the file size at the end.
std::vector<std::size_t> entry_offsets(const GoldenFile& file) {
  std::vector<std::size_t> offsets{12};
  for (const GoldenEntry& e : file.entries())
    offsets.push_back(offsets.back() + 4 + e.name.size() + 4 + 4 + 8 * e.shape.size() +
                      e.count() * element_size(e));
  return offsets;
}

void put_u32(std::vector<unsigned char>& bytes, std::size_t offset, std::uint32_t value) {
  for (std::size_t i = 0; i < 4; ++i)
    bytes[offset + i] = static_cast<unsigned char>((value >> (8 * i)) & 0xffu);
}

void put_i64(std::vector<unsigned char>& bytes, std::size_t offset, std::int64_t value) {
  const auto bits = static_cast<std::uint64_t>(value);
  for (std::size_t i = 0; i < 8; ++i)
    bytes[offset + i] = static_cast<unsigned char>((bits >> (8 * i)) & 0xffu);
}

/// Parsing `bytes` must throw golden_file_error whose message contains every one of `parts`.
void require_rejected(const std::vector<unsigned char>& bytes, const std::string& label,
                      const std::vector<std::string>& parts) {
  std::string message;
  try {
    GoldenFile parsed(bytes, label);
    FAIL("accepted a corrupt file (" << bytes.size() << " bytes), label " << label);
  } catch (const golden_file_error& error) {
    message = error.what();
  }
  INFO("message: " << message);
  for (const std::string& part : parts) {
    INFO("expected to contain: " << part);
    REQUIRE(message.find(part) != std::string::npos);
  }
}

}  // namespace

TEST_CASE("GoldenFile parses the golden files and refuses truncated or corrupt ones",
          "[golden][golden_file]") {
  const std::string path = golden_path("mha_interleaved.lbg");
  const std::vector<unsigned char> bytes = read_bytes(path);
  const GoldenFile file(bytes, path);

  SECTION("entries in the documented order, shapes and dtypes") {
    const std::vector<std::string> expected_names = {
        "config.dim", "config.n_heads", "config.n_kv_heads", "config.head_dim",
        "config.ffn_hidden_dim", "config.batch", "config.tokens", "config.rope_theta",
        "config.norm_eps", "config.rope_layout", "config.rope_scaling",
        "config.rope_scaling.factor", "config.rope_scaling.low_freq_factor",
        "config.rope_scaling.high_freq_factor",
        "config.rope_scaling.original_max_position_embeddings", "attention_norm.weight",
        "attention.wq", "attention.wk", "attention.wv", "attention.wo", "ffn_norm.weight",
        "feed_forward.w1", "feed_forward.w3", "feed_forward.w2", "input", "attention_norm.out",
        "attention.q", "attention.k", "attention.v", "attention.q_rope", "attention.k_rope",
        "attention.probs", "attention.context", "attention.out", "h", "ffn_norm.out",
        "feed_forward.hidden", "feed_forward.out", "output", "rope.inv_freq"};
    std::vector<std::string> names;
    for (const GoldenEntry& e : file.entries()) names.push_back(e.name);
    REQUIRE(names == expected_names);
    REQUIRE(entry_offsets(file).back() == bytes.size());
    CHECK(file.integer("config.dim") == 64);
    CHECK(file.scalar("config.norm_eps") == 1e-5);
    CHECK(file.floats("attention.wq", {64, 64}).size() == 64 * 64);
    CHECK(file.doubles("rope.inv_freq").size() == 8);
    CHECK(file.entry("attention.probs").shape == std::vector<std::int64_t>{2, 4, 7, 7});
  }

  SECTION("the file on disk gives the same entries") {
    const GoldenFile from_disk(path);
    REQUIRE(from_disk.entries().size() == file.entries().size());
    CHECK(from_disk.floats("output") == file.floats("output"));
  }

  SECTION("missing entries, wrong dtype, shape or kind name the file and the entry") {
    REQUIRE_THROWS_WITH(file.entry("no.such.entry"),
                        Catch::Contains(path) && Catch::Contains("no.such.entry"));
    REQUIRE_THROWS_WITH(file.floats("config.dim"),
                        Catch::Contains(path) && Catch::Contains("config.dim") &&
                            Catch::Contains("float64"));
    REQUIRE_THROWS_WITH(file.doubles("attention.wq"),
                        Catch::Contains("attention.wq") && Catch::Contains("float32"));
    REQUIRE_THROWS_WITH(file.scalar("rope.inv_freq"),
                        Catch::Contains("rope.inv_freq") && Catch::Contains("scalar"));
    REQUIRE_THROWS_WITH(file.integer("config.norm_eps"),
                        Catch::Contains("config.norm_eps") && Catch::Contains("integer"));
    REQUIRE_THROWS_WITH(file.floats("attention.wq", {64, 65}),
                        Catch::Contains("attention.wq") && Catch::Contains("[64, 65]"));
    REQUIRE_THROWS_WITH(GoldenFile(path + ".missing"), Catch::Contains(path + ".missing"));
  }

  SECTION("every truncation is refused, naming the file and the entry being read") {
    const std::vector<std::size_t> offsets = entry_offsets(file);
    // Every length through the headers of the first entries.
    for (std::size_t length = 0; length < std::min<std::size_t>(bytes.size(), 2048); ++length)
      require_rejected(std::vector<unsigned char>(bytes.begin(),
                                                  bytes.begin() + static_cast<std::ptrdiff_t>(length)),
                       path, {path});
    // At, just inside and half-way through every entry.
    for (std::size_t i = 0; i + 1 < offsets.size(); ++i) {
      const std::string entry = "entry #" + std::to_string(i);
      const std::string named = entry + " '" + file.entries()[i].name + "'";
      const std::pair<std::size_t, std::string> cuts[] = {
          {offsets[i], entry},
          {(offsets[i] + offsets[i + 1]) / 2, entry},
          {offsets[i + 1] - 1, named}};
      for (const auto& [length, expected] : cuts)
        require_rejected(std::vector<unsigned char>(bytes.begin(),
                                                    bytes.begin() + static_cast<std::ptrdiff_t>(length)),
                         path, {path, expected});
    }
  }

  SECTION("corrupt headers are refused") {
    const std::vector<std::size_t> offsets = entry_offsets(file);
    const std::size_t wq = 16;  // index of attention.wq
    REQUIRE(file.entries()[wq].name == "attention.wq");
    const std::size_t wq_dtype = offsets[wq] + 4 + file.entries()[wq].name.size();

    std::vector<unsigned char> corrupt = bytes;
    corrupt[0] = 'X';
    require_rejected(corrupt, path, {path, "magic"});

    corrupt = bytes;
    put_u32(corrupt, 8, 0xffffffffu);
    require_rejected(corrupt, path, {path, "entry #40 (of 4294967295 declared)"});

    corrupt = bytes;
    put_u32(corrupt, 8, static_cast<std::uint32_t>(file.entries().size() - 1));
    require_rejected(corrupt, path, {path, "trailing"});

    corrupt = bytes;
    put_u32(corrupt, offsets[wq], 0xffffffffu);
    require_rejected(corrupt, path, {path, "entry #16", "name"});

    corrupt = bytes;
    put_u32(corrupt, wq_dtype, 7);
    require_rejected(corrupt, path, {path, "'attention.wq'", "dtype 7"});

    corrupt = bytes;
    put_u32(corrupt, wq_dtype + 4, 1000);
    require_rejected(corrupt, path, {path, "'attention.wq'", "ndim 1000"});

    corrupt = bytes;
    put_i64(corrupt, wq_dtype + 8, -64);
    require_rejected(corrupt, path, {path, "'attention.wq'", "negative"});

    corrupt = bytes;
    put_i64(corrupt, wq_dtype + 8, std::int64_t{1} << 62);
    require_rejected(corrupt, path, {path, "'attention.wq'", "too large"});

    corrupt = bytes;
    put_i64(corrupt, wq_dtype + 8, 65);  // [65, 64]: reads 64 floats of the next entry
    require_rejected(corrupt, path, {path});

    corrupt = bytes;
    const std::string duplicate = "attention.wq";  // over attention.wk, the same length
    std::copy(duplicate.begin(), duplicate.end(),
              corrupt.begin() + static_cast<std::ptrdiff_t>(offsets[wq + 1] + 4));
    require_rejected(corrupt, path, {path, "'attention.wq'", "duplicate"});

    corrupt = bytes;
    corrupt.push_back(0);
    require_rejected(corrupt, path, {path, "trailing"});
  }
}
