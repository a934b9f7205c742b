// llama2: text generation with a LLaMA-2 model assembled from llamablocks, a drop-in for llama2.c's
// `run` on its checkpoints (same flags, same sampler, same output).
//
//   llama2 MODEL.bin [-t TEMPERATURE] [-p TOP_P] [-s SEED] [-n STEPS] [-i PROMPT] [-z TOKENIZER]
//                    [-m generate|chat] [-y SYSTEM_PROMPT] [--top-k K] [--threads N]
//                    [--device cpu|cuda] [--print-ids]
//   llama2 MODEL.gguf [--ctx N] [same options, but -z: the GGUF carries its tokenizer]
//   llama2 HF_FOLDER [--ctx N] -z tokenizer.bin|VOCAB.gguf [same options]
//   llama2 random --shape stories15M|stories110M|tinyllama|DIM,LAYERS,HEADS,KV_HEADS,FFN,VOCAB
//                    [--prompt-tokens N] [same options]
//
// Generation follows run.c: the prompt is encoded with BOS, `steps` counts positions including the
// prompt, generation stops early when the model emits BOS (1), and each token is printed as
// decode(previous, token), skipping single unprintable bytes (an EOS prints its piece and does not
// stop, as in run.c). The differences are the speed-ups: the prompt runs as one batched prefill,
// and the products run on several threads. The sampler reproduces run.c's random draws
// (RandomSource::xorshift_runc), so e.g. -t 1.0 -p 0.9 -s 42 gives run.c's text.
// The last line, on stderr, gives the prefill and decode tokens/s.
//
// A MODEL ending in .gguf is a GGUF file of architecture "llama" (gguf_loader.hpp): the weights
// (F32 borrowed, F16/BF16/Q8_0/Q4_0/Q4_1 dequantized) and the tokenizer (byte-level BPE for
// tokenizer.ggml.model "gpt2", SentencePiece for "llama") come from it. The prompt starts with BOS
// only when tokenizer.ggml.add_bos_token says so, and generation stops at the file's EOS or BOS.
// max_seq_len is min(context_length, --ctx), --ctx defaulting to 2048, to keep the KV caches small.
// -m chat speaks the format of the file's tokenizer.chat_template (chat_template.hpp: chatml,
// llama3 or llama2), each reply ending at the format's end-of-turn token.
//
// A MODEL that is a folder is a Hugging Face checkpoint (hf_loader.hpp: config.json + safetensors,
// F32/F16/BF16, half_split RoPE). Its tokenizer is given with -z: a llama2.c tokenizer.bin, or a
// GGUF file whose vocabulary is used (as for a GGUF model); --ctx caps max_seq_len as for GGUF.
//
// The random mode builds a model of a named shape with random weights (no checkpoint, no
// tokenizer unless -z is given: the prompt is then --prompt-tokens random ids) to measure speed.
#include "chat_template.hpp"
#include "gguf_loader.hpp"
#include "hf_loader.hpp"
#include "llama2c_loader.hpp"
#include "llama_model.hpp"
#include "runner.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace llamablocks;

struct Options {
  std::string model_path;  // "random" for a random-weight model of --shape
  std::string shape_name;
  std::string tokenizer_path = "tokenizer.bin";
  bool tokenizer_given = false;
  std::string prompt;
  std::string mode = "generate";
  std::optional<std::string> system_prompt;
  std::string device = "cpu";
  float temperature = 1.0f;
  float top_p = 0.9f;
  std::int32_t top_k = 0;
  std::uint64_t seed = 0;  // 0: the time, as in run.c
  std::int64_t steps = 256;
  index_t prompt_tokens = 32;
  int threads = Context<cpu>::default_num_threads();
  bool print_ids = false;
  std::optional<WeightType> weights;  // --weights; unset: GGUF as stored, others float32
  std::int64_t ctx = 0;  // GGUF, HF: cap on max_seq_len; 0 = the default, 2048
  bool bf16_activations = false;  // --bf16-activations: Context<cpu>::set_bf16_activations
};

bool is_gguf(const std::string& path) {
  static const std::string suffix = ".gguf";
  return path.size() >= suffix.size() &&
         path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void print_usage() {
  std::fputs(
      "usage: llama2 MODEL.bin [options]\n"
      "       llama2 MODEL.gguf [--ctx N] [options]\n"
      "       llama2 HF_FOLDER -z tokenizer.bin|VOCAB.gguf [--ctx N] [options]\n"
      "       llama2 random --shape stories15M|stories110M|tinyllama|DIM,LAYERS,HEADS,KV_HEADS,FFN,VOCAB\n"
      "              [--prompt-tokens N] [options]\n"
      "options (as llama2.c's run, plus the long ones):\n"
      "  -t <float>   temperature in [0, inf), default 1.0; 0 = greedy\n"
      "  -p <float>   top-p (nucleus) in [0, 1], default 0.9; 0 or 1 = off\n"
      "  -s <int>     random seed, default: the time\n"
      "  -n <int>     positions to run, prompt included, default 256; 0 = max_seq_len\n"
      "  -i <string>  prompt\n"
      "  -z <string>  tokenizer.bin of llama2.c (default tokenizer.bin), or for a Hugging Face\n"
      "               folder also a GGUF file whose vocabulary to use\n"
      "  -m <string>  generate|chat, default generate (chat: LLaMA-2-Chat turns for llama2.c;\n"
      "               the format of tokenizer.chat_template for GGUF: chatml, llama3, llama2)\n"
      "  -y <string>  system prompt in chat mode (else asked on stdin)\n"
      "  --top-k <int>        keep the k most probable tokens, default 0 = off\n"
      "  --threads <int>      threads, default all\n"
      "  --device cpu|cuda    default cpu\n"
      "  --print-ids          print token ids instead of text\n"
      "  --ctx <int>          GGUF, HF: max_seq_len = min(context length, N), default 2048\n"
      "  --weights <type>     f32|f16|bf16|q8_0: store the projections so (default: GGUF as\n"
      "                       stored where f16/bf16/q8_0, else f32)\n"
      "  --prompt-tokens <int> random mode without -z: random prompt length, default 32\n"
      "  --bf16-activations   cpu, bf16 weights: let the prompt's products round x to bfloat16\n"
      "                       (AMX-BF16 tiles or vdpbf16ps where the CPU has them; off: exact)\n",
      stderr);
}

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  print_usage();
  std::exit(2);
}

template <class Number>
Number parse_number(const std::string& flag, const std::string& text) {
  std::istringstream in(text);
  Number value{};
  if (!(in >> value) || !in.eof()) usage("cannot parse the value '" + text + "' of " + flag);
  return value;
}

WeightType parse_weight_type(const std::string& name) {
  for (WeightType type : {WeightType::f32, WeightType::f16, WeightType::bf16, WeightType::q8_0})
    if (name == to_string(type)) return type;
  usage("--weights must be f32, f16, bf16 or q8_0, got " + name);
}

ModelConfig shape_config(const std::string& name) {
  std::int64_t dim = 0, layers = 0, heads = 0, kv_heads = 0, ffn = 0, vocab = 0;
  if (name == "stories15M") {
    dim = 288, layers = 6, heads = 6, kv_heads = 6, ffn = 768, vocab = 32000;
  } else if (name == "stories110M") {
    dim = 768, layers = 12, heads = 12, kv_heads = 12, ffn = 2048, vocab = 32000;
  } else if (name == "tinyllama") {
    dim = 2048, layers = 22, heads = 32, kv_heads = 4, ffn = 5632, vocab = 32000;
  } else {
    char comma[5];
    std::istringstream in(name);
    if (!(in >> dim >> comma[0] >> layers >> comma[1] >> heads >> comma[2] >> kv_heads >>
          comma[3] >> ffn >> comma[4] >> vocab) ||
        !in.eof() || std::count(comma, comma + 5, ',') != 5)
      usage("cannot parse --shape " + name);
  }
  ModelConfig config;
  config.dim = dim;
  config.n_layers = layers;
  config.n_heads = heads;
  config.n_kv_heads = kv_heads;
  config.head_dim = heads > 0 ? dim / heads : 0;
  config.ffn_hidden_dim = ffn;
  config.vocab_size = vocab;
  config.norm_eps = 1e-5;
  config.rope_theta = 10000;
  config.max_seq_len = 2048;
  try {
    config.validate();
  } catch (const config_error& e) {
    usage(std::string("--shape ") + name + ": " + e.what());
  }
  return config;
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag.empty() || flag[0] != '-') {
      if (!options.model_path.empty()) usage("two models given: " + options.model_path + ", " + flag);
      options.model_path = flag;
      continue;
    }
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage("missing value for " + flag);
      return argv[++i];
    };
    if (flag == "-t") options.temperature = parse_number<float>(flag, value());
    else if (flag == "-p") options.top_p = parse_number<float>(flag, value());
    else if (flag == "-s") options.seed = static_cast<std::uint64_t>(parse_number<long long>(flag, value()));
    else if (flag == "-n") options.steps = parse_number<std::int64_t>(flag, value());
    else if (flag == "-i") options.prompt = value();
    else if (flag == "-z") options.tokenizer_path = value(), options.tokenizer_given = true;
    else if (flag == "-m") options.mode = value();
    else if (flag == "-y") options.system_prompt = value();
    else if (flag == "--top-k") options.top_k = parse_number<std::int32_t>(flag, value());
    else if (flag == "--threads") options.threads = parse_number<int>(flag, value());
    else if (flag == "--device") options.device = value();
    else if (flag == "--print-ids") options.print_ids = true;
    else if (flag == "--ctx") options.ctx = parse_number<std::int64_t>(flag, value());
    else if (flag == "--weights") options.weights = parse_weight_type(value());
    else if (flag == "--shape") options.shape_name = value();
    else if (flag == "--prompt-tokens") options.prompt_tokens = parse_number<index_t>(flag, value());
    else if (flag == "--bf16-activations") options.bf16_activations = true;
    else usage("unknown flag " + flag);
  }
  // A bare --shape (the first version's interface) means the random mode.
  if (options.model_path.empty() && !options.shape_name.empty()) options.model_path = "random";
  if (options.model_path.empty()) usage("no model given");
  if (options.model_path == "random" && options.shape_name.empty())
    usage("the random model needs --shape");
  if (options.model_path != "random" && !options.shape_name.empty())
    usage("--shape is only for the random model");
  if (options.mode != "generate" && options.mode != "chat") usage("unknown mode " + options.mode);
  if (options.device != "cpu" && options.device != "cuda") usage("unknown device " + options.device);
  if (options.threads < 1) usage("--threads must be >= 1");
  if (options.top_k < 0) usage("--top-k must be >= 0");
  if (options.prompt_tokens < 1) usage("--prompt-tokens must be >= 1");
  if (options.ctx < 0) usage("--ctx must be >= 1");
  if (options.ctx > 0 && !is_gguf(options.model_path) &&
      !std::filesystem::is_directory(options.model_path))
    usage("--ctx is only for GGUF models and Hugging Face folders");
  if (!std::isfinite(options.temperature) || !std::isfinite(options.top_p))
    usage("-t and -p must be finite");
  // run.c's overrides: negative temperature = greedy, top-p outside [0, 1] = 0.9, and top-p 0 or 1
  // = no nucleus; seed 0 = the time; steps <= 0 or beyond the context = max_seq_len (see main).
  if (options.temperature < 0) options.temperature = 0;
  if (options.top_p < 0 || options.top_p > 1) options.top_p = 0.9f;
  if (options.top_p == 0) options.top_p = 1;
  if (options.seed == 0) options.seed = static_cast<std::uint64_t>(std::time(nullptr));
  return options;
}

/// run.c's safe_printf: a piece of one byte is printed only when printable or white space.
void print_piece(const std::string& piece) {
  if (piece.empty()) return;
  if (piece.size() == 1) {
    const auto byte = static_cast<unsigned char>(piece[0]);
    if (!(std::isprint(byte) || std::isspace(byte))) return;
  }
  std::fputs(piece.c_str(), stdout);
}

/// Positions to run: -n, or max_seq_len when -n is <= 0 or beyond it (as run.c).
std::int64_t positions(const Options& options, const ModelConfig& config) {
  return options.steps <= 0 || options.steps > config.max_seq_len ? config.max_seq_len
                                                                   : options.steps;
}

/// The sampler of the flags -t, -p, --top-k and -s, drawing run.c's xorshift random numbers.
Sampler make_sampler(const Options& options, const ModelConfig& config) {
  SamplerOptions sampler_options;
  sampler_options.temperature = options.temperature;
  sampler_options.top_p = options.top_p;
  sampler_options.top_k = options.top_k;
  sampler_options.seed = options.seed;
  sampler_options.random = RandomSource::xorshift_runc;
  return Sampler(static_cast<std::int32_t>(config.vocab_size), sampler_options);
}

/// Prefill the prompt, then sample and decode one token at a time, printing as run.c does.
/// Generation stops when a token of `stop_ids` is sampled ({1}, BOS, for llama2.c; the file's BOS
/// and EOS for GGUF) and a `prompt_stop_id` inside the prompt ends it. Returns the exit status.
template <class Tokenizer>
int generate(const Options& options, llama2::Runner& model,
             const Tokenizer* tokenizer, const std::vector<std::int32_t>& prompt,
             const std::vector<std::int32_t>& stop_ids, std::int32_t prompt_stop_id) {
  const ModelConfig& config = model.config();
  const std::int64_t steps = positions(options, config);
  Sampler sampler = make_sampler(options, config);

  const auto emit = [&](std::int32_t previous, std::int32_t token) {
    if (options.print_ids) std::printf("%d ", token);
    // Like run.c, an EOS does not stop generation and prints its piece ("\n</s>\n" in LLaMA-2's
    // tokenizer.bin), where the tokenizer's decode() gives "".
    else if (token == tokenizer->eos_id()) print_piece(tokenizer->piece(token));
    else print_piece(tokenizer->decode(previous, token));
    std::fflush(stdout);
  };
  if (options.print_ids) std::printf("%d ", prompt.front());
  // A prompt without BOS (GGUF add_bos_token false) prints its first token too.
  else if (tokenizer && prompt.front() != tokenizer->bos_id())
    print_piece(tokenizer->decode(std::vector<std::int32_t>{prompt.front()}));

  // run.c forwards positions 0 .. steps-1; while pos < prompt length - 1 the next token is forced
  // to the prompt's, so when steps < prompt length only the prompt's first tokens are printed.
  const auto prompt_length = static_cast<std::int64_t>(prompt.size());
  using clock = std::chrono::steady_clock;
  double prefill_seconds = 0, decode_seconds = 0;
  std::int64_t prefill_tokens = 0, decode_tokens = 0;
  // The prompt's own tokens are printed as they are forced; a BOS inside it ends the sequence.
  bool stopped = false;
  for (std::int64_t pos = 1; pos < prompt_length && pos <= steps && !stopped; ++pos) {
    stopped = prompt[static_cast<std::size_t>(pos)] == prompt_stop_id;
    if (!stopped) emit(prompt[static_cast<std::size_t>(pos - 1)], prompt[static_cast<std::size_t>(pos)]);
  }
  if (!stopped && steps >= prompt_length) {
    Tensor<float, 2> logits({1, config.vocab_size});
    // The id that follows `tokens` at `start_pos`: at temperature 0 the runner picks it where the
    // logits are (on a GPU only the id comes back), otherwise the sampler draws from the logits.
    const auto advance = [&](const TensorView<const std::int32_t, 2>& tokens,
                             std::int64_t start_pos) {
      if (options.temperature == 0) {
        std::int32_t next = 0;
        model.forward_greedy(tokens, start_pos, TensorView<std::int32_t, 1>(&next, {1}));
        return next;
      }
      model.forward(tokens, start_pos, logits.view());
      return sampler.sample(logits.data());
    };
    const auto prefill_start = clock::now();
    std::int32_t next =
        advance(TensorView<const std::int32_t, 2>(prompt.data(), {1, prompt_length}), 0);
    prefill_seconds = std::chrono::duration<double>(clock::now() - prefill_start).count();
    prefill_tokens = prompt_length;
    std::int32_t token = prompt.back();
    std::int64_t pos = prompt_length;  // positions in the cache
    const auto decode_start = clock::now();
    for (;;) {
      // BOS delimits sequences (and a GGUF's EOS ends one)
      if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
      emit(token, next);
      token = next;
      if (pos >= steps) break;
      next = advance(TensorView<const std::int32_t, 2>(&token, {1, 1}), pos);
      ++pos;
      ++decode_tokens;
    }
    decode_seconds = std::chrono::duration<double>(clock::now() - decode_start).count();
  }
  std::printf("\n");
  std::fflush(stdout);
  std::fprintf(stderr, "prefill: %lld tokens at %.1f tokens/s; decode: %lld tokens at %.1f tokens/s\n",
               static_cast<long long>(prefill_tokens),
               prefill_seconds > 0 ? static_cast<double>(prefill_tokens) / prefill_seconds : 0.0,
               static_cast<long long>(decode_tokens),
               decode_seconds > 0 ? static_cast<double>(decode_tokens) / decode_seconds : 0.0);
  return 0;
}

/// run.c's read_stdin: prints `guide`, reads one line without its newline; false at end of input.
bool read_line(const char* guide, std::string& line) {
  std::fputs(guide, stdout);
  std::fflush(stdout);
  line.clear();
  for (int c; (c = std::getchar()) != EOF;) {
    if (c == '\n') return true;
    line += static_cast<char>(c);
  }
  return !line.empty();
}

/// run.c's chat: LLaMA-2-Chat turns "[INST] <<SYS>>\nSYSTEM\n<</SYS>>\n\nUSER [/INST]" (the system
/// part in the first turn only), each user turn prefilled in one batch, the assistant's reply
/// sampled until EOS (2) or `steps` positions. Same ids and text as run.c for a given seed; the
/// departures: the conversation ends at the end of stdin (run.c re-sends its last buffer), lines
/// are not cut at 511 bytes, and since the turn is one batched prefill there are no logits for the
/// prompt's inner positions, so run.c's stray newline when it samples (and discards) EOS there is
/// not printed.
int chat(const Options& options, llama2::Runner& model,
         const SentencePieceTokenizer& tokenizer) {
  const ModelConfig& config = model.config();
  const std::int64_t steps = positions(options, config);
  Sampler sampler = make_sampler(options, config);
  Tensor<float, 2> logits({1, config.vocab_size});
  const auto reply = [&](std::int32_t token, std::int32_t next) {
    if (next == 2) {
      std::printf("\n");
    } else {
      print_piece(tokenizer.decode(token, next));
    }
    std::fflush(stdout);
  };

  std::string system_prompt = options.system_prompt.value_or("");
  std::string user_prompt;
  std::int64_t pos = 0;
  std::int32_t next = 0;
  bool user_turn = true;
  while (pos < steps) {
    if (user_turn) {
      if (pos == 0 && !options.system_prompt &&
          !read_line("Enter system prompt (optional): ", system_prompt))
        break;
      if (pos == 0 && !options.prompt.empty()) {
        user_prompt = options.prompt;
      } else if (!read_line("User: ", user_prompt)) {
        break;
      }
      const std::string rendered =
          pos == 0 && !system_prompt.empty()
              ? "[INST] <<SYS>>\n" + system_prompt + "\n<</SYS>>\n\n" + user_prompt + " [/INST]"
              : "[INST] " + user_prompt + " [/INST]";
      const std::vector<std::int32_t> prompt = tokenizer.encode(rendered, true, false);
      user_turn = false;
      std::printf("Assistant: ");
      const std::int64_t count =
          std::min<std::int64_t>(static_cast<std::int64_t>(prompt.size()), steps - pos);
      model.forward(TensorView<const std::int32_t, 2>(prompt.data(), {1, count}), pos,
                    logits.view());
      pos += count;
      // run.c samples after every prompt token and ignores all but the last sample; drawing as
      // many times keeps the random stream, hence the replies, the same for a given seed.
      for (std::int64_t i = 0; i + 1 < count; ++i) (void)sampler.sample(logits.data());
      next = sampler.sample(logits.data());
      if (count < static_cast<std::int64_t>(prompt.size())) break;  // out of positions
      reply(prompt.back(), next);
      continue;
    }
    const std::int32_t token = next;
    if (token == 2) user_turn = true;  // EOS ends the assistant's turn (after one more step)
    model.forward(TensorView<const std::int32_t, 2>(&token, {1, 1}), pos, logits.view());
    ++pos;
    next = sampler.sample(logits.data());
    reply(token, next);
  }
  std::printf("\n");
  return 0;
}

/// Chat with a GGUF vocabulary in the format of the file's tokenizer.chat_template
/// (chat_template.hpp): each user turn is rendered, encoded (special tokens included) and
/// prefilled in one batch; the reply is sampled until the format's end-of-turn token, the EOS, or
/// `steps` positions. The end-of-turn token is fed to the model so the next turn follows it.
int template_chat(const Options& options, llama2::Runner& model, const llama2::GgufTokenizer& tokenizer,
                  const llama2::ChatTemplate& format) {
  const ModelConfig& config = model.config();
  const std::int64_t steps = positions(options, config);
  std::int32_t end_of_turn = tokenizer.eos_id();
  if (!format.end_of_turn().empty()) {
    const auto ids = tokenizer.encode(format.end_of_turn(), false, false);
    if (ids.size() != 1)
      throw config_error(detail::concat("chat format ", format.name(), ": the vocabulary has no ",
                                        "single token ", format.end_of_turn()));
    end_of_turn = ids.front();
  }
  Sampler sampler = make_sampler(options, config);
  Tensor<float, 2> logits({1, config.vocab_size});
  std::fprintf(stderr, "chat format: %s\n", format.name());

  std::string system_prompt = options.system_prompt.value_or("");
  std::string user_prompt;
  std::int64_t pos = 0;
  bool first = true;
  while (pos < steps) {
    if (first && !options.system_prompt &&
        !read_line("Enter system prompt (optional): ", system_prompt))
      break;
    if (first && !options.prompt.empty()) {
      user_prompt = options.prompt;
    } else if (!read_line("User: ", user_prompt)) {
      break;
    }
    const bool with_bos = tokenizer.add_bos() && (first || format.bos_every_turn());
    const std::vector<std::int32_t> turn =
        tokenizer.encode(format.render(system_prompt, user_prompt, first), with_bos, false);
    first = false;
    const auto length = static_cast<std::int64_t>(turn.size());
    if (pos + length >= steps) {
      std::fprintf(stderr, "llama2: the conversation has reached %lld positions (-n)\n",
                   static_cast<long long>(steps));
      break;
    }
    model.forward(TensorView<const std::int32_t, 2>(turn.data(), {1, length}), pos,
                  logits.view());
    pos += length;
    std::fputs("Assistant: ", stdout);
    std::int32_t previous = turn.back();
    for (;;) {
      const std::int32_t token = sampler.sample(logits.data());
      const bool stop = token == end_of_turn || token == tokenizer.eos_id();
      if (!stop) print_piece(tokenizer.decode(previous, token));
      std::fflush(stdout);
      // The end-of-turn token goes into the cache too, as the template writes it after a reply.
      model.forward(TensorView<const std::int32_t, 2>(&token, {1, 1}), pos, logits.view());
      ++pos;
      previous = token;
      if (stop || pos >= steps) break;
    }
    std::printf("\n");
  }
  std::printf("\n");
  return 0;
}

/// LlamaModel<cpu> as a Runner: ids and logits are already in host memory.
class CpuRunner final : public llama2::Runner {
 public:
  CpuRunner(Context<cpu> ctx, llama2::LlamaModel<cpu>& model, int threads)
      : ctx_(std::move(ctx)), model_(model), threads_(threads) {}
  const ModelConfig& config() const override { return model_.config(); }
  std::string device() const override {
    return "cpu (" + std::to_string(threads_) + " threads" +
           (ctx_.bf16_activations() ? ", bf16 activations in the prompt's products" : "") + ")";
  }
  void forward(const TensorView<const std::int32_t, 2>& tokens, index_t start_pos,
               const TensorView<float, 2>& logits) override {
    model_.forward(ctx_, tokens, start_pos, logits);
  }
  void forward_greedy(const TensorView<const std::int32_t, 2>& tokens, index_t start_pos,
                      const TensorView<std::int32_t, 1>& ids) override {
    const index_t batch = tokens.shape(0);
    detail::expect_shape("CpuRunner::forward_greedy", "ids", ids, {batch});
    const auto logits = logits_.get<2>({batch, model_.config().vocab_size});
    model_.forward(ctx_, tokens, start_pos, logits);
    for (index_t b = 0; b < batch; ++b)
      ids(b) = detail::checked_argmax(&logits(b, 0), static_cast<std::int32_t>(logits.shape(1)));
  }

 private:
  Context<cpu> ctx_;
  Workspace<float, cpu> logits_;
  llama2::LlamaModel<cpu>& model_;
  int threads_;
};

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  if (options.device == "cuda") {
    if (!llama2::cuda_available()) {
      std::fprintf(stderr, "llama2: CUDA backend not built (this build has the cpu backend only)\n");
      return 1;
    }
    if (options.weights)
      usage("--weights packs the projections for the cpu kernels; the cuda backend runs float32");
    if (options.bf16_activations)
      usage("--bf16-activations is for the cpu kernels (Context<cuda>::set_tf32 is cuda's choice)");
  }
  try {
    Context<cpu> ctx(options.threads);
    ctx.set_bf16_activations(options.bf16_activations);
    std::unique_ptr<llama2::LlamaModel<cpu>> model;
    const bool gguf = is_gguf(options.model_path);
    const bool hf = !gguf && std::filesystem::is_directory(options.model_path);
    const std::int64_t ctx_cap = options.ctx > 0 ? options.ctx : 2048;
    std::optional<io::GgufFile> gguf_file;
    // A GGUF vocabulary: the model's own, or for a Hugging Face folder one named by -z.
    std::unique_ptr<llama2::GgufTokenizer> gguf_tokenizer;
    if (gguf) {
      if (options.tokenizer_given)
        std::fprintf(stderr, "llama2: -z ignored: the GGUF file carries its tokenizer\n");
      gguf_file = io::GgufFile::open(options.model_path);
      gguf_tokenizer = llama2::load_gguf_tokenizer(*gguf_file);
      model = llama2::load_gguf_model<cpu>(*gguf_file, ctx_cap, 1, /*keep_packed=*/!options.weights && options.device == "cpu");
    } else if (hf) {
      model = llama2::load_hf_model<cpu>(io::HfCheckpoint::open(options.model_path), ctx_cap);
      if (is_gguf(options.tokenizer_path)) {
        gguf_file = io::GgufFile::open(options.tokenizer_path);
        gguf_tokenizer = llama2::load_gguf_tokenizer(*gguf_file);
      }
    } else if (options.model_path == "random") {
      model = std::make_unique<llama2::LlamaModel<cpu>>(shape_config(options.shape_name), 1,
                                                        /*tie_output=*/false);
      llama2::randomize(*model, options.seed);
    } else {
      model = llama2::load_llama2c_model<cpu>(Llama2cCheckpoint::read(options.model_path));
    }
    if (options.weights) llama2::pack_projections(*model, *options.weights);
    std::unique_ptr<llama2::Runner> runner;
    if (options.device == "cuda")
      runner = llama2::make_cuda_runner(llama2::host_weights(*model), 1, 0);
    else
      runner = std::make_unique<CpuRunner>(std::move(ctx), *model, options.threads);
    const ModelConfig& config = model->config();
    std::fprintf(stderr,
                 "model %s: dim %lld, %lld layers, %lld/%lld heads, ffn %lld, vocab %lld, "
                 "max_seq_len %lld; %s; projections %s\n",
                 options.model_path == "random" ? options.shape_name.c_str() : options.model_path.c_str(),
                 static_cast<long long>(config.dim), static_cast<long long>(config.n_layers),
                 static_cast<long long>(config.n_heads), static_cast<long long>(config.n_kv_heads),
                 static_cast<long long>(config.ffn_hidden_dim),
                 static_cast<long long>(config.vocab_size),
                 static_cast<long long>(config.max_seq_len), runner->device().c_str(),
                 model->layers().front().feed_forward().w1().is_packed()
                     ? to_string(model->layers().front().feed_forward().w1().packed()->type)
                     : "f32");

    if (gguf_tokenizer) {
      if (gguf_tokenizer->vocab_size() != config.vocab_size)
        throw config_error(detail::concat("the tokenizer has ", gguf_tokenizer->vocab_size(),
                                          " tokens, the model ", config.vocab_size));
      std::vector<std::int32_t> prompt =
          gguf_tokenizer->encode(options.prompt, gguf_tokenizer->add_bos(), /*add_eos=*/false);
      if (options.mode == "chat") {
        const auto jinja = gguf_file->get_optional<std::string>("tokenizer.chat_template");
        const auto format = llama2::ChatTemplate::detect(jinja.value_or(""));
        if (!format)
          throw format_error(jinja ? "-m chat: tokenizer.chat_template is none of the known "
                                     "formats (chatml, llama3, llama2)"
                                   : "-m chat: the GGUF file has no tokenizer.chat_template");
        return template_chat(options, *runner, *gguf_tokenizer, *format);
      }
      if (prompt.empty()) prompt = {gguf_tokenizer->bos_id()};  // something to start from
      return generate(options, *runner, gguf_tokenizer.get(), prompt,
                      {gguf_tokenizer->bos_id(), gguf_tokenizer->eos_id()},
                      gguf_tokenizer->bos_id());
    }
    std::optional<SentencePieceTokenizer> tokenizer;
    std::vector<std::int32_t> prompt;
    // The tokenizer is needed for a prompt and for printing text; --print-ids alone starts from BOS
    // (or from random ids in the random mode) without one.
    const bool random = options.model_path == "random";
    if (options.tokenizer_given || !options.prompt.empty() || (!options.print_ids && !random)) {
      tokenizer = SentencePieceTokenizer::from_llama2c_file(
          options.tokenizer_path, static_cast<std::int32_t>(config.vocab_size));
      prompt = tokenizer->encode(options.prompt, /*add_bos=*/true, /*add_eos=*/false);
    } else if (random) {
      if (!options.print_ids) usage("the random mode needs --print-ids or a tokenizer (-z)");
      std::mt19937 generator(static_cast<unsigned>(options.seed + 1));
      prompt.resize(static_cast<std::size_t>(options.prompt_tokens));
      prompt[0] = 1;
      for (std::size_t i = 1; i < prompt.size(); ++i)
        prompt[i] = static_cast<std::int32_t>(
            2 + generator() % static_cast<unsigned>(std::max<std::int64_t>(config.vocab_size - 2, 1)));
    } else {
      prompt = {1};
    }
    if (options.mode == "chat") {
      if (!tokenizer) usage("-m chat needs a tokenizer");
      return chat(options, *runner, *tokenizer);
    }
    return generate(options, *runner, tokenizer ? &*tokenizer : nullptr, prompt, {1}, 1);
  } catch (const format_error& e) {  // a missing or malformed model or tokenizer file
    std::fprintf(stderr, "llama2: %s\n", e.what());
    print_usage();
    return 1;
  } catch (const llamablocks::error& e) {
    std::fprintf(stderr, "llama2: %s\n", e.what());
    return 1;
  }
}
