// train_shakespeare: trains a character-level LLaMA (char_llama.hpp) on a text file, then saves a
// llama2.c checkpoint + tokenizer that examples/llama2 loads, and prints a sample.
//
//   train_shakespeare TEXT_FILE [--dim 128] [--layers 4] [--heads 8] [--kv-heads 4] [--ffn 344]
//       [--context 256] [--batch 8] [--accumulate 1] [--steps 2200] [--lr 3e-3] [--min-lr 3e-4]
//       [--warmup 100] [--seed 1337] [--threads 1] [--eval-every 100] [--eval-windows 64]
//       [--out char_llama] [--sample 200] [--tie]
//
// --tie: the output head is the token embedding (one matrix, one gradient; llama2.c's shared
// classifier). The defaults are the run of docs/training.md (with --threads 2: validation loss 1.75 or below
// within 15 minutes on a 2-core VM).
//
// The vocabulary is the text's characters (CharTokenizer) after three reserved ids, 0 <unk>,
// 1 <s> (BOS) and 2 </s>, which the llama2 program needs (it starts from BOS and stops at it): model
// id = character id + 3. The first 90% of the tokens train, the last 10% validate. Each training
// window starts with BOS and holds the next context − 1 characters of a random offset (seeded
// mt19937_64); the targets are the window shifted by one. So the model learns to start a text
// after BOS, as llama2 will ask it to. Validation uses --eval-windows fixed windows (drawn once);
// the final figure is the mean over every non-overlapping window of the validation split.
//
// Output: OUT.bin (llama2.c, untied head) and OUT.tokenizer.bin (llama2.c tokenizer: the three
// specials, then one piece per character, score 0, so no merges apply); run them with
//   llama2 OUT.bin -z OUT.tokenizer.bin -t 0 -n 200
#include "char_llama.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace llamablocks;
using char_llama::CharLlama;

constexpr std::int32_t n_specials = 3;  // <unk>, <s>, </s>
constexpr std::int32_t bos_id = 1;

struct Options {
  std::string text_path;
  index_t dim = 128, layers = 4, heads = 8, kv_heads = 4, ffn = 344, context = 256;
  index_t batch = 8, accumulate = 1, steps = 2200, warmup = 100;
  double lr = 3e-3, min_lr = 3e-4, weight_decay = 0.1, clip = 1.0;
  std::uint64_t seed = 1337;
  int threads = 1;
  index_t eval_every = 100, eval_windows = 64;
  std::string out = "char_llama";
  index_t sample = 200;
  bool tie = false;
};

[[noreturn]] void usage(const std::string& message) {
  std::fprintf(stderr,
               "error: %s\nusage: train_shakespeare TEXT_FILE [--dim N] [--layers N] [--heads N] "
               "[--kv-heads N] [--ffn N] [--context N] [--batch N] [--accumulate N] [--steps N] "
               "[--lr X] [--min-lr X] [--warmup N] [--weight-decay X] [--clip X] [--seed N] "
               "[--threads N] [--eval-every N] [--eval-windows N] [--out PREFIX] [--sample N] [--tie]\n",
               message.c_str());
  std::exit(2);
}

template <class Number>
Number parse_number(const std::string& flag, const std::string& text) {
  std::istringstream in(text);
  Number value{};
  if (!(in >> value) || !in.eof()) usage("cannot parse the value '" + text + "' of " + flag);
  return value;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag.empty() || flag[0] != '-') {
      if (!o.text_path.empty()) usage("two text files given");
      o.text_path = flag;
      continue;
    }
    if (flag == "--tie") {
      o.tie = true;
      continue;
    }
    if (i + 1 >= argc) usage("missing value for " + flag);
    const std::string value = argv[++i];
    const auto index = [&] { return parse_number<index_t>(flag, value); };
    if (flag == "--dim") o.dim = index();
    else if (flag == "--layers") o.layers = index();
    else if (flag == "--heads") o.heads = index();
    else if (flag == "--kv-heads") o.kv_heads = index();
    else if (flag == "--ffn") o.ffn = index();
    else if (flag == "--context") o.context = index();
    else if (flag == "--batch") o.batch = index();
    else if (flag == "--accumulate") o.accumulate = index();
    else if (flag == "--steps") o.steps = index();
    else if (flag == "--warmup") o.warmup = index();
    else if (flag == "--lr") o.lr = parse_number<double>(flag, value);
    else if (flag == "--min-lr") o.min_lr = parse_number<double>(flag, value);
    else if (flag == "--weight-decay") o.weight_decay = parse_number<double>(flag, value);
    else if (flag == "--clip") o.clip = parse_number<double>(flag, value);
    else if (flag == "--seed") o.seed = parse_number<std::uint64_t>(flag, value);
    else if (flag == "--threads") o.threads = parse_number<int>(flag, value);
    else if (flag == "--eval-every") o.eval_every = index();
    else if (flag == "--eval-windows") o.eval_windows = index();
    else if (flag == "--out") o.out = value;
    else if (flag == "--sample") o.sample = index();
    else usage("unknown flag " + flag);
  }
  if (o.text_path.empty()) usage("no TEXT_FILE given");
  if (o.context < 2) usage("--context must be >= 2");
  if (o.batch < 1 || o.accumulate < 1 || o.steps < 1 || o.eval_every < 1 || o.eval_windows < 1 ||
      o.threads < 1 || o.sample < 0)
    usage("--batch, --accumulate, --steps, --eval-every, --eval-windows, --threads must be >= 1");
  if (o.warmup < 0 || o.warmup >= o.steps) usage("--warmup must be in [0, --steps)");
  return o;
}

/// Windows of the token stream `ids`: tokens = BOS + ids[start .. start + context − 1), targets =
/// ids[start .. start + context).
struct Batch {
  Tensor<std::int32_t, 2> tokens, targets;
  Batch(index_t batch, index_t context) : tokens({batch, context}), targets({batch, context}) {}
  void fill(index_t row, const std::vector<std::int32_t>& ids, std::size_t start) {
    const index_t context = tokens.shape(1);
    tokens.view()(row, 0) = bos_id;
    for (index_t t = 0; t < context; ++t) {
      const std::int32_t id = ids[start + static_cast<std::size_t>(t)];
      targets.view()(row, t) = id;
      if (t + 1 < context) tokens.view()(row, t + 1) = id;
    }
  }
};

void write_tokenizer(const std::string& path, const CharTokenizer& chars) {
  std::vector<std::string> pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};  // as llama2.c's file
  for (const auto& symbol : chars.symbols()) pieces.push_back(symbol);
  std::int32_t max_length = 0;
  for (const auto& piece : pieces) max_length = std::max(max_length, static_cast<std::int32_t>(piece.size()));
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(&max_length), sizeof max_length);
  for (const auto& piece : pieces) {
    const float score = 0.0f;
    const auto length = static_cast<std::int32_t>(piece.size());
    out.write(reinterpret_cast<const char*>(&score), sizeof score);
    out.write(reinterpret_cast<const char*>(&length), sizeof length);
    out.write(piece.data(), length);
  }
  if (!out.flush()) throw std::runtime_error("writing " + path + " failed");
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  try {
    std::ifstream in(o.text_path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + o.text_path);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const CharTokenizer chars = CharTokenizer::from_corpus(text);
    std::vector<std::int32_t> ids = chars.encode(text);
    for (auto& id : ids) id += n_specials;
    const std::size_t split = ids.size() * 9 / 10;
    const std::vector<std::int32_t> train(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(split));
    const std::vector<std::int32_t> val(ids.begin() + static_cast<std::ptrdiff_t>(split), ids.end());
    const auto context = static_cast<std::size_t>(o.context);
    if (train.size() <= context || val.size() <= context)
      throw std::runtime_error("the text is too short for --context " + std::to_string(o.context));

    const index_t vocab_size = chars.vocab_size() + n_specials;
    const ModelConfig config = char_llama::make_char_config(vocab_size, o.dim, o.layers, o.heads,
                                                            o.kv_heads, o.ffn, o.context);
    CharLlama model(config, o.tie);
    model.init(o.seed);
    model.enable_grad();
    AdamWConfig adamw;
    adamw.lr = o.lr;
    adamw.beta2 = 0.95;
    adamw.weight_decay = o.weight_decay;
    AdamW<float> optimizer(adamw);
    model.add_parameters(optimizer);
    const WarmupCosineSchedule schedule(o.lr, o.min_lr, o.warmup, o.steps);
    Context<cpu> ctx(o.threads);

    std::mt19937_64 rng(o.seed);
    const auto random_start = [&](std::size_t size) {
      return std::uniform_int_distribution<std::size_t>(0, size - context)(rng);
    };
    Batch val_batch(o.eval_windows, o.context);
    for (index_t row = 0; row < o.eval_windows; ++row) val_batch.fill(row, val, random_start(val.size()));
    const auto val_loss = [&] {
      double sum = 0;  // one window at a time: the activations stay the training batch's size
      for (index_t row = 0; row < o.eval_windows; ++row)
        sum += model.loss(ctx, TensorView<const std::int32_t, 2>(&val_batch.tokens.view()(row, 0), {1, o.context}),
                          TensorView<const std::int32_t, 2>(&val_batch.targets.view()(row, 0), {1, o.context}));
      return sum / static_cast<double>(o.eval_windows);
    };

    std::printf("text %s: %zu characters, vocabulary %d (+3 specials), train %zu, val %zu tokens\n",
                o.text_path.c_str(), ids.size(), chars.vocab_size(), train.size(), val.size());
    std::printf("model: dim %lld, %lld layers, %lld heads / %lld kv heads, ffn %lld, context %lld, "
                "%s head; "
                "batch %lld x %lld accumulated, %lld steps, lr %g -> %g (warmup %lld), seed %llu, "
                "%d thread(s); ln(vocab) = %.3f\n",
                (long long)o.dim, (long long)o.layers, (long long)o.heads, (long long)o.kv_heads,
                (long long)o.ffn, (long long)o.context, o.tie ? "tied" : "untied",
                (long long)o.batch, (long long)o.accumulate,
                (long long)o.steps, o.lr, o.min_lr, (long long)o.warmup,
                (unsigned long long)o.seed, o.threads, std::log(static_cast<double>(vocab_size)));
    std::printf("step 0: val loss %.4f\n", val_loss());
    std::fflush(stdout);

    Batch batch(o.batch, o.context);
    using clock = std::chrono::steady_clock;
    const auto seconds_since = [](clock::time_point start) {
      return std::chrono::duration<double>(clock::now() - start).count();
    };
    const auto started = clock::now();
    // tokens/s counts the training steps only (batch.fill to optimizer.step), not the evaluations,
    // so that it compares with torch_baseline.py's; "elapsed" is the wall time of everything.
    double tokens_done = 0, step_seconds = 0, last_val = 0;
    for (index_t step = 0; step < o.steps; ++step) {
      const auto step_started = clock::now();
      optimizer.zero_grad();
      double train_loss = 0;
      for (index_t micro = 0; micro < o.accumulate; ++micro) {
        for (index_t row = 0; row < o.batch; ++row) batch.fill(row, train, random_start(train.size()));
        train_loss += model.forward_backward(ctx, batch.tokens.cview(), batch.targets.cview(),
                                             1.0f / static_cast<float>(o.accumulate));
      }
      train_loss /= static_cast<double>(o.accumulate);
      const double norm = optimizer.clip_grad_norm(o.clip);
      optimizer.set_lr(schedule.lr(step));
      if (std::isfinite(norm)) optimizer.step();
      step_seconds += seconds_since(step_started);
      tokens_done += static_cast<double>(o.batch * o.accumulate * o.context);
      if ((step + 1) % o.eval_every == 0 || step + 1 == o.steps) {
        last_val = val_loss();
        const double elapsed = seconds_since(started);
        std::printf("step %lld: train loss %.4f, val loss %.4f, lr %.2e, grad norm %.3f, "
                    "%.0f tokens/s, %.1f s\n",
                    (long long)(step + 1), train_loss, last_val, schedule.lr(step), norm,
                    tokens_done / step_seconds, elapsed);
        std::fflush(stdout);
      }
    }
    std::printf("val loss at the last step %.4f (%lld sampled windows)\n", last_val,
                (long long)o.eval_windows);
    {
      // The final figure: the mean loss over every non-overlapping window of the validation split,
      // not a sample of it (the windows are laid out as in training: BOS, then context − 1 tokens).
      Batch window(1, o.context);
      double sum = 0;
      index_t windows = 0;
      for (std::size_t start = 0; start + context <= val.size(); start += context, ++windows) {
        window.fill(0, val, start);
        sum += model.loss(ctx, window.tokens.cview(), window.targets.cview());
      }
      std::printf("final val loss %.4f over the whole validation split (%lld windows of %lld), "
                  "%.1f s\n", sum / static_cast<double>(windows), (long long)windows,
                  (long long)o.context, seconds_since(started));
    }

    model.save_llama2c(o.out + ".bin");
    write_tokenizer(o.out + ".tokenizer.bin", chars);
    std::printf("saved %s.bin and %s.tokenizer.bin (run: llama2 %s.bin -z %s.tokenizer.bin)\n",
                o.out.c_str(), o.out.c_str(), o.out.c_str(), o.out.c_str());

    if (o.sample > 0) {
      // Each token reruns the training forward over the last context tokens: slow, but it needs
      // nothing beyond the training model.
      SamplerOptions sampling;
      sampling.temperature = 0.8f;
      sampling.seed = o.seed;
      Sampler sampler(static_cast<std::int32_t>(vocab_size), sampling);
      std::vector<std::int32_t> sequence = {bos_id};
      std::string sample;
      for (index_t i = 0; i < o.sample; ++i) {
        const index_t start = std::max<index_t>(0, static_cast<index_t>(sequence.size()) - o.context);
        const index_t count = static_cast<index_t>(sequence.size()) - start;
        const auto logits = model.forward(
            ctx, TensorView<const std::int32_t, 2>(sequence.data() + start, {1, count}));
        const std::int32_t next = sampler.sample(&logits(0, count - 1, 0));
        sequence.push_back(next);
        if (next >= n_specials) sample += chars.decode(next - n_specials);
      }
      std::printf("sample (temperature 0.8):\n%s\n", sample.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
