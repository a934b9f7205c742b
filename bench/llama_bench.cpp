// llama_bench: end-to-end prefill and decode speed of a whole LLaMA model with random weights, in
// llama.cpp's llama-bench units so the two compare directly:
//   ppN   tokens/s of one prompt of N tokens, one forward from an empty cache (N / its time)
//   tgN   tokens/s of N one-token decode steps, from position `depth` (default 0, as llama-bench)
// Every test runs once untimed (warm-up), then --repetitions times; the table shows the median
// and the min–max spread of tokens/s, the JSON every sample.
//
// Decode is a stream over the weights, so tg also reports the weight bytes read per token (every
// layer's weights, the final norm, the output head, one embedding row) and the implied GB/s
// (10⁹ bytes / s) to compare with bench_machine_limits' read bandwidth. Prefill reports GFLOP/s
// (2 FLOP per multiply-add, bench_cost.hpp's counting) to compare with its FMA and GEMM peaks.
//
//   llama_bench --shape tinyllama [-p 128,512] [-n 64] [-d 0] [--threads 1,2] [--repetitions 5]
//               [--tied] [--weights TYPE] [--bf16-activations] [--json FILE]
#include "bench_cost.hpp"
#include "bench_shapes.hpp"

#include "../examples/llama2/llama_model.hpp"

#include <Eigen/Core>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace llamablocks;
using llamablocks::bench::Cost;

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "llama_bench: %s\n"
               "usage: llama_bench --shape NAME|DIM,LAYERS,HEADS,KV_HEADS,FFN,VOCAB [options]\n"
               "  --shape NAME         stories110M, tinyllama, llama2-7b, or the six numbers\n"
               "  -p, --n-prompt LIST  prefill lengths, default 128,512\n"
               "  -n, --n-gen LIST     decode lengths, default 64\n"
               "  -d, --depth N        positions in the cache before a decode test, default 0\n"
               "  --threads LIST       thread counts, default 1,2\n"
               "  -r, --repetitions N  timed runs per test, default 5\n"
               "  --tied               the output head shares the embedding table\n"
               "  --weights TYPE       f32|f16|bf16|q8_0: projections stored so (default f32)\n"
               "  --bf16-activations   let a bf16 prefill round x to bfloat16 (AMX-BF16 tiles or vdpbf16ps)\n"
               "  --json FILE          also write the results as JSON\n",
               message.c_str());
  std::exit(2);
}

long long parse_integer(const std::string& flag, const std::string& text, long long minimum) {
  char* end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || value < minimum)
    usage("cannot parse " + flag + " " + text + " (an integer >= " + std::to_string(minimum) + ")");
  return value;
}

std::vector<long long> parse_list(const std::string& flag, const std::string& text, long long minimum) {
  std::vector<long long> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) values.push_back(parse_integer(flag, item, minimum));
  if (values.empty()) usage("empty list for " + flag);
  return values;
}

struct Options {
  std::string shape_name;
  std::vector<long long> prompt_lengths = {128, 512};
  std::vector<long long> gen_lengths = {64};
  long long depth = 0;
  std::vector<long long> threads = {1, 2};
  long long repetitions = 5;
  bool tied = false;
  WeightType weights = WeightType::f32;  ///< storage of the projection matrices (--weights)
  bool bf16_activations = false;         ///< Context<cpu>::set_bf16_activations (--bf16-activations)
  std::string json_path;
};

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value for " + flag);
      return argv[++i];
    };
    if (flag == "--shape") options.shape_name = value();
    else if (flag == "-p" || flag == "--n-prompt") options.prompt_lengths = parse_list(flag, value(), 1);
    else if (flag == "-n" || flag == "--n-gen") options.gen_lengths = parse_list(flag, value(), 1);
    else if (flag == "-d" || flag == "--depth") options.depth = parse_integer(flag, value(), 0);
    else if (flag == "--threads" || flag == "-t") options.threads = parse_list(flag, value(), 1);
    else if (flag == "-r" || flag == "--repetitions") options.repetitions = parse_integer(flag, value(), 1);
    else if (flag == "--tied") options.tied = true;
    else if (flag == "--bf16-activations") options.bf16_activations = true;
    else if (flag == "--weights") {
      const std::string name = value();
      bool known = false;
      for (WeightType type : {WeightType::f32, WeightType::f16, WeightType::bf16, WeightType::q8_0})
        if (name == to_string(type)) options.weights = type, known = true;
      if (!known) usage("--weights must be f32, f16, bf16 or q8_0, got " + name);
    }
    else if (flag == "--json") options.json_path = value();
    else usage("unknown flag " + flag);
  }
  if (options.shape_name.empty()) usage("--shape is required");
  return options;
}

/// The shape's hyper-parameters (head_dim = dim / heads, LLaMA-2's norm_eps and rope_theta), the
/// cache sized for the longest test.
ModelConfig shape_config(const std::string& name, index_t max_seq_len) {
  long long dim = 0, layers = 0, heads = 0, kv_heads = 0, ffn = 0, vocab = 0;
  if (name == "stories110M") {
    dim = 768, layers = 12, heads = 12, kv_heads = 12, ffn = 2048, vocab = 32000;
  } else if (name == "tinyllama") {
    dim = 2048, layers = 22, heads = 32, kv_heads = 4, ffn = 5632, vocab = 32000;
  } else if (name == "llama2-7b") {
    dim = 4096, layers = 32, heads = 32, kv_heads = 32, ffn = 11008, vocab = 32000;
  } else {
    std::vector<long long> numbers = parse_list("--shape", name, 1);
    if (numbers.size() != 6) usage("--shape " + name + ": expected a name or six numbers");
    dim = numbers[0], layers = numbers[1], heads = numbers[2], kv_heads = numbers[3],
    ffn = numbers[4], vocab = numbers[5];
  }
  ModelConfig config;
  config.dim = dim;
  config.n_layers = layers;
  config.n_heads = heads;
  config.n_kv_heads = kv_heads;
  config.head_dim = dim / heads;
  config.ffn_hidden_dim = ffn;
  config.vocab_size = vocab;
  config.norm_eps = 1e-5;
  config.rope_theta = 10000;
  config.max_seq_len = max_seq_len;
  try {
    config.validate();
  } catch (const config_error& failure) {
    usage("--shape " + name + ": " + failure.what());
  }
  return config;
}

bench::ModelShape model_shape(const ModelConfig& config) {
  return {"model",           config.dim,        config.n_layers,       config.n_heads,
          config.n_kv_heads, config.head_dim,   config.ffn_hidden_dim, config.vocab_size};
}

/// Parameters (elements) of the model; a tied head is counted once, with the embedding.
double parameter_count(const ModelConfig& config, bool tied) {
  const double dim = static_cast<double>(config.dim);
  const double q_width = static_cast<double>(config.n_heads * config.head_dim);
  const double kv_width = static_cast<double>(config.n_kv_heads * config.head_dim);
  const double layer = 2 * dim * q_width + 2 * dim * kv_width +
                       3 * dim * static_cast<double>(config.ffn_hidden_dim) + 2 * dim;
  const double table = static_cast<double>(config.vocab_size) * dim;
  return static_cast<double>(config.n_layers) * layer + dim + table * (tied ? 1 : 2);
}

/// The work of one forward call of `tokens` tokens after `cached` positions: the embedding rows,
/// every layer, the final norm and the head on the last token only (LlamaModel::forward).
Cost forward_cost(const ModelConfig& config, index_t tokens, index_t cached) {
  const bench::ModelShape shape = model_shape(config);
  const Cost embedding = bench::embedding_cost<float>(config.dim, tokens);
  const Cost layer = bench::llama_block_cost<float>(shape, tokens, cached);
  const Cost norm = bench::rms_norm_cost<float>(config.dim, 1);
  const Cost head = bench::linear_cost<float>(config.dim, config.vocab_size, 1);
  const double layers = static_cast<double>(config.n_layers);
  Cost cost;
  cost.flop = embedding.flop + layers * layer.flop + norm.flop + head.flop;
  cost.weight_bytes = embedding.weight_bytes + layers * layer.weight_bytes + norm.weight_bytes +
                      head.weight_bytes;
  cost.activation_bytes = embedding.activation_bytes + layers * layer.activation_bytes +
                          norm.activation_bytes + head.activation_bytes;
  cost.kv_bytes = layers * layer.kv_bytes;
  return cost;
}

/// Bytes of one projection matrix as the model holds it (packed or float32).
double matrix_bytes(const Parameter<float, 2, cpu>& weight) {
  if (const auto packed = weight.packed())
    return static_cast<double>(packed->row_bytes) * static_cast<double>(packed->rows);
  return static_cast<double>(weight.size()) * sizeof(float);
}

/// Weight bytes a decode step reads from `model` as it holds them: every projection, the norm
/// gains, one embedding row and the head.
double decode_weight_bytes(llama2::LlamaModel<cpu>& model) {
  const ModelConfig& c = model.config();
  double bytes = static_cast<double>(c.dim) * sizeof(float) * (1 + 1 + 2 * static_cast<double>(c.n_layers));
  for (auto& block : model.layers())
    for (const auto* w : {&block.attention().wq(), &block.attention().wk(), &block.attention().wv(),
                          &block.attention().wo(), &block.feed_forward().w1(),
                          &block.feed_forward().w2(), &block.feed_forward().w3()})
      bytes += matrix_bytes(*w);
  return bytes + matrix_bytes(model.output().weight());
}

struct Stats {
  double median = 0, mean = 0, stddev = 0, min = 0, max = 0;
};

Stats statistics(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  Stats stats;
  const std::size_t n = values.size();
  stats.min = values.front();
  stats.max = values.back();
  stats.median = n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
  for (const double value : values) stats.mean += value;
  stats.mean /= static_cast<double>(n);
  for (const double value : values) stats.stddev += (value - stats.mean) * (value - stats.mean);
  stats.stddev = n > 1 ? std::sqrt(stats.stddev / static_cast<double>(n - 1)) : 0;
  return stats;
}

/// One row of the report: a test (ppN or tgN) at one thread count.
struct Result {
  std::string test;
  long long n_prompt = 0;
  long long n_gen = 0;
  long long depth = 0;
  long long threads = 0;
  std::vector<double> seconds;  ///< wall time of each timed repetition
  Stats tokens_per_second;
  double flop_per_token = 0;          ///< mean over the test's tokens
  double weight_bytes_per_token = 0;  ///< tg only: the stream a decode step reads
};

class Runner {
 public:
  Runner(llama2::LlamaModel<cpu>& model, std::uint64_t seed) : model_(model), random_(seed) {}

  /// Seconds of one forward of `count` random tokens at positions start .. start+count-1.
  double prefill(const Context<cpu>& ctx, index_t start, index_t count) {
    Tensor<std::int32_t, 2> tokens({1, count});  // [batch 1, count]
    for (index_t i = 0; i < count; ++i) tokens.data()[i] = random_token();
    const auto begin = std::chrono::steady_clock::now();
    model_.forward(ctx, tokens.cview(), start, logits_.view());
    return seconds_since(begin);
  }

  /// Seconds of `count` one-token forwards at positions start .. start+count-1.
  double decode(const Context<cpu>& ctx, index_t start, index_t count) {
    Tensor<std::int32_t, 2> token({1, 1});
    const auto begin = std::chrono::steady_clock::now();
    for (index_t i = 0; i < count; ++i) {
      token.data()[0] = random_token();
      model_.forward(ctx, token.cview(), start + i, logits_.view());
    }
    return seconds_since(begin);
  }

 private:
  static double seconds_since(std::chrono::steady_clock::time_point begin) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  }
  std::int32_t random_token() {
    return static_cast<std::int32_t>(random_() % static_cast<std::uint64_t>(model_.config().vocab_size));
  }

  llama2::LlamaModel<cpu>& model_;
  std::mt19937_64 random_;
  Tensor<float, 2> logits_{{1, model_.config().vocab_size}};  // [batch 1, vocab_size]
};

Result run_test(Runner& runner, const Context<cpu>& ctx, const ModelConfig& config,
                long long n_prompt, long long n_gen, long long depth, long long repetitions) {
  Result result;
  result.n_prompt = n_prompt;
  result.n_gen = n_gen;
  result.depth = n_gen > 0 ? depth : 0;
  result.threads = ctx.num_threads();
  result.test = n_prompt > 0 ? "pp" + std::to_string(n_prompt) : "tg" + std::to_string(n_gen);
  if (result.depth > 0) result.test += " @ d" + std::to_string(result.depth);
  const long long tokens = n_prompt > 0 ? n_prompt : n_gen;
  auto once = [&] {
    if (n_prompt > 0) return runner.prefill(ctx, 0, n_prompt);
    // The cache before a decode test holds `depth` positions, filled by an untimed prefill.
    if (depth > 0) runner.prefill(ctx, 0, depth);
    return runner.decode(ctx, depth, n_gen);
  };
  once();  // warm-up: first-touch of workspaces, caches
  std::vector<double> rates;
  for (long long r = 0; r < repetitions; ++r) {
    result.seconds.push_back(once());
    rates.push_back(static_cast<double>(tokens) / result.seconds.back());
  }
  result.tokens_per_second = statistics(rates);
  if (n_prompt > 0) {
    result.flop_per_token = forward_cost(config, n_prompt, 0).flop / static_cast<double>(n_prompt);
  } else {
    double flop = 0, weight_bytes = 0;
    for (long long i = 0; i < n_gen; ++i) {
      const Cost step = forward_cost(config, 1, depth + i);
      flop += step.flop;
      weight_bytes += step.weight_bytes;
    }
    result.flop_per_token = flop / static_cast<double>(n_gen);
    result.weight_bytes_per_token = weight_bytes / static_cast<double>(n_gen);
  }
  return result;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  return "unknown";
}

/// The 1, 5 and 15 minute load averages: the machine was shared when these figures were taken.
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  double one = 0, five = 0, fifteen = 0;
  in >> one >> five >> fifteen;
  std::ostringstream out;
  out << '[' << one << ", " << five << ", " << fifteen << ']';
  return out.str();
}

std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + '"';
}

std::string json_number(double value) {
  if (!std::isfinite(value)) return "null";
  char text[32];
  std::snprintf(text, sizeof text, "%.6g", value);
  return text;
}

/// Now, in UTC, as 2026-11-22T17:46:44Z.
std::string utc_now() {
  char date[32];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return date;
}

/// `date` is when the first test started.
/// `weight_bytes`: the weights as the model holds them (projections in options.weights).
void write_json(std::ostream& out, const Options& options, const ModelConfig& config,
                double parameters, double weight_bytes, const std::vector<Result>& results,
                const std::string& date,
                const std::string& load_start, const std::string& load_end) {
  out << "{\n  \"schema\": \"llamablocks-llama-bench/1\",\n"
      << "  \"implementation\": \"llamablocks\",\n"
      << "  \"date\": " << json_string(date) << ",\n"
      << "  \"machine\": {\"cpu\": " << json_string(cpu_model_name())
      << ", \"hardware_threads\": " << Context<cpu>::default_num_threads()
      << ", \"eigen_simd\": " << json_string(Eigen::SimdInstructionSetsInUse())
      << ", \"load_average_start\": " << load_start << ", \"load_average_end\": " << load_end
      << "},\n"
      << "  \"model\": {\"shape\": " << json_string(options.shape_name) << ", \"dim\": " << config.dim
      << ", \"n_layers\": " << config.n_layers << ", \"n_heads\": " << config.n_heads
      << ", \"n_kv_heads\": " << config.n_kv_heads << ", \"head_dim\": " << config.head_dim
      << ", \"ffn_hidden_dim\": " << config.ffn_hidden_dim << ", \"vocab_size\": " << config.vocab_size
      << ", \"tied_output\": " << (options.tied ? "true" : "false")
      << ", \"parameters\": " << json_number(parameters) << "},\n"
      << "  \"results\": [";
  for (std::size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    out << (i == 0 ? "\n" : ",\n") << "    {\"test\": " << json_string(r.test)
        << ", \"weight_type\": " << json_string(to_string(options.weights))
        << ", \"bf16_activations\": " << (options.bf16_activations ? "true" : "false")
        << ", \"weight_bytes\": " << json_number(weight_bytes)
        << ", \"n_prompt\": " << r.n_prompt << ", \"n_gen\": " << r.n_gen << ", \"depth\": " << r.depth
        << ", \"threads\": " << r.threads << ", \"repetitions\": " << r.seconds.size()
        << ",\n     \"samples_s\": [";
    for (std::size_t s = 0; s < r.seconds.size(); ++s)
      out << (s == 0 ? "" : ", ") << json_number(r.seconds[s]);
    const Stats& t = r.tokens_per_second;
    out << "],\n     \"tokens_per_second\": {\"median\": " << json_number(t.median)
        << ", \"mean\": " << json_number(t.mean) << ", \"stddev\": " << json_number(t.stddev)
        << ", \"min\": " << json_number(t.min) << ", \"max\": " << json_number(t.max) << "},\n"
        << "     \"flop_per_token\": " << json_number(r.flop_per_token)
        << ", \"gflop_per_second\": " << json_number(r.flop_per_token * t.median / 1e9);
    if (r.weight_bytes_per_token > 0)
      out << ", \"weight_bytes_per_token\": " << json_number(r.weight_bytes_per_token)
          << ", \"weight_gb_per_second\": " << json_number(r.weight_bytes_per_token * t.median / 1e9);
    out << '}';
  }
  out << "\n  ]\n}\n";
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  try {
    long long max_seq_len = options.depth;
    for (const long long n : options.prompt_lengths) max_seq_len = std::max(max_seq_len, n);
    for (const long long n : options.gen_lengths) max_seq_len = std::max(max_seq_len, options.depth + n);
    const ModelConfig config = shape_config(options.shape_name, max_seq_len);
    const double parameters = parameter_count(config, options.tied);
    std::fprintf(stderr, "building %s: %.3g parameters, %.3g GB of f32 weights%s ...\n",
                 options.shape_name.c_str(), parameters, parameters * sizeof(float) / 1e9,
                 options.tied ? " (tied head)" : "");
    llama2::LlamaModel<cpu> model(config, 1, options.tied);
    llama2::randomize(model, 42);
    llama2::pack_projections(model, options.weights);
    const double stream_bytes = decode_weight_bytes(model);
    Runner runner(model, 1234);

    const std::string date = utc_now();
    const std::string load_start = load_average();
    std::vector<Result> results;
    std::printf("| model | params | weights | threads | test | t/s median | t/s min-max | GB/s (weights) | GFLOP/s |\n");
    std::printf("| --- | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
    std::fflush(stdout);
    for (const long long threads : options.threads) {
      Context<cpu> ctx(static_cast<int>(threads));
      ctx.set_bf16_activations(options.bf16_activations);
      std::vector<std::pair<long long, long long>> tests;
      for (const long long n : options.prompt_lengths) tests.emplace_back(n, 0);
      for (const long long n : options.gen_lengths) tests.emplace_back(0, n);
      for (const auto& [n_prompt, n_gen] : tests) {
        results.push_back(
            run_test(runner, ctx, config, n_prompt, n_gen, options.depth, options.repetitions));
        // Decode reads the weights as stored: replace the float32 estimate by the model's bytes.
        if (results.back().weight_bytes_per_token > 0) results.back().weight_bytes_per_token = stream_bytes;
        const Result& r = results.back();
        const Stats& t = r.tokens_per_second;
        char bandwidth[32] = "";
        if (r.weight_bytes_per_token > 0)
          std::snprintf(bandwidth, sizeof bandwidth, "%.2f", r.weight_bytes_per_token * t.median / 1e9);
        std::printf("| %s | %.2f M | %s %.2f GB | %lld | %s | %.2f | %.2f-%.2f | %s | %.1f |\n",
                    options.shape_name.c_str(), parameters / 1e6, to_string(options.weights),
                    stream_bytes / 1e9,
                    r.threads, r.test.c_str(), t.median, t.min, t.max, bandwidth,
                    r.flop_per_token * t.median / 1e9);
        std::fflush(stdout);
      }
    }
    const std::string load_end = load_average();
    std::printf("\nload average (1, 5, 15 min): %s at start, %s at end\n", load_start.c_str(),
                load_end.c_str());
    if (!options.json_path.empty()) {
      std::ofstream out(options.json_path);
      if (!out) throw std::runtime_error("cannot write " + options.json_path);
      write_json(out, options, config, parameters, stream_bytes, results, date, load_start, load_end);
    }
  } catch (const std::exception& failure) {
    std::fprintf(stderr, "llama_bench: %s\n", failure.what());
    return 1;
  }
  return 0;
}
