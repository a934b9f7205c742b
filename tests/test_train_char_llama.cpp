// The whole training model of examples/train_shakespeare (char_llama.hpp) against PyTorch autograd
// (tests/golden/train_char_llama.lbg, written by make_train_golden.py in float64): a tiny character
// LLaMA with fixed weights (vocab 11, dim 16, 2 layers, 4 heads over 2 kv heads, ffn 24, batch
// 2 × 6) gives the logits, the loss and the gradient of every parameter, and ten steps of
// clip_grad_norm + AdamW on the same batch give torch's losses and norms.
//
// The model runs in float, torch in float64, so the tolerances are float's: NMSE ≤ 1e-10 for the
// logits and each gradient (a float computation is ~1e-14 to 1e-12; a wrong term is O(1)), 1e-6
// relative for the loss and 1e-5 for the AdamW losses and norms (the step's rounding compounds).
// Over the ten AdamW steps (losses 3.17 down to 0.54) measured ≤ 1.4e-7 absolute / 1.3e-7
// relative on the losses and ≤ 1.5e-6 absolute / 1.1e-6 relative on the norms (step 5).
// Last, the checkpoint it saves (tied head or not) must give the llama2 example the logits the
// training forward gives.
#include "../examples/llama2/llama2c_loader.hpp"
#include "../examples/train_shakespeare/char_llama.hpp"
#include "support/golden_file.hpp"
#include "support/temp_dir.hpp"
#include "support/tolerance.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

using namespace llamablocks;
using char_llama::CharLlama;

namespace {

/// Every parameter of `model` with the name make_train_golden.py gives it.
template <class Visit>
void for_each_parameter(CharLlama& model, Visit&& visit) {
  visit("embedding", model.token_embedding().weight());
  for (std::size_t l = 0; l < model.layers().size(); ++l) {
    auto& block = model.layers()[l];
    const std::string prefix = "layers." + std::to_string(l) + ".";
    visit(prefix + "attention_norm", block.attention_norm().weight());
    visit(prefix + "wq", block.attention().wq());
    visit(prefix + "wk", block.attention().wk());
    visit(prefix + "wv", block.attention().wv());
    visit(prefix + "wo", block.attention().wo());
    visit(prefix + "ffn_norm", block.ffn_norm().weight());
    visit(prefix + "w1", block.feed_forward().w1());
    visit(prefix + "w2", block.feed_forward().w2());
    visit(prefix + "w3", block.feed_forward().w3());
  }
  visit("final_norm", model.final_norm().weight());
  visit("output", model.output().weight());
}

struct Fixture {
  test::GoldenFile golden{test::golden_path("train_char_llama.lbg")};
  ModelConfig config = char_llama::make_char_config(11, 16, 2, 4, 2, 24, 6);
  CharLlama model{config};
  Tensor<std::int32_t, 2> tokens{{2, 6}}, targets{{2, 6}};

  Fixture() {
    for_each_parameter(model, [&](const std::string& name, auto& parameter) {
      const std::vector<double>& values = golden.entry("weight." + name).f64;
      auto view = parameter.view();
      REQUIRE(values.size() == static_cast<std::size_t>(view.size()));
      for (index_t i = 0; i < view.size(); ++i) view.data()[i] = static_cast<float>(values[static_cast<std::size_t>(i)]);
    });
    const auto& token_values = golden.entry("tokens").f64;
    const auto& target_values = golden.entry("targets").f64;
    for (index_t i = 0; i < tokens.size(); ++i) {
      tokens.data()[i] = static_cast<std::int32_t>(token_values[static_cast<std::size_t>(i)]);
      targets.data()[i] = static_cast<std::int32_t>(target_values[static_cast<std::size_t>(i)]);
    }
    model.enable_grad();
  }
};

}  // namespace

TEST_CASE("CharLlama logits, loss and every gradient match PyTorch autograd", "[train][char_llama]") {
  const int threads = GENERATE(1, 2);
  Context<cpu> ctx(threads);
  Fixture f;
  const auto logits = f.model.forward(ctx, f.tokens.cview());
  test::require_close("logits", logits.data(), f.golden.entry("logits").f64.data(),
                      static_cast<std::size_t>(logits.size()), 1e-10);
  const double loss = f.model.forward_backward(ctx, f.tokens.cview(), f.targets.cview());
  const double expected = f.golden.entry("loss").f64.at(0);
  CHECK(std::fabs(loss - expected) <= 1e-6 * std::fabs(expected));
  for_each_parameter(f.model, [&](const std::string& name, auto& parameter) {
    INFO("gradient of " << name);
    test::require_close(name.c_str(), parameter.grad().data(),
                        f.golden.entry("grad." + name).f64.data(),
                        static_cast<std::size_t>(parameter.size()), 1e-10);
  });
}

TEST_CASE("CharLlama accumulates scaled micro-batch gradients", "[train][char_llama]") {
  Context<cpu> ctx(1);
  Fixture f;
  // Two micro-batches scaled by 1/2 each (the program's --accumulate 2) give the one-batch gradient.
  f.model.forward_backward(ctx, f.tokens.cview(), f.targets.cview(), 0.5f);
  f.model.forward_backward(ctx, f.tokens.cview(), f.targets.cview(), 0.5f);
  for_each_parameter(f.model, [&](const std::string& name, auto& parameter) {
    INFO("gradient of " << name);
    test::require_close(name.c_str(), parameter.grad().data(),
                        f.golden.entry("grad." + name).f64.data(),
                        static_cast<std::size_t>(parameter.size()), 1e-10);
  });
}

TEST_CASE("CharLlama + clip_grad_norm + AdamW follow PyTorch's losses", "[train][char_llama]") {
  Context<cpu> ctx(1);
  Fixture f;
  AdamWConfig config;
  config.lr = 1e-2;
  config.beta2 = 0.95;
  config.weight_decay = 0.1;
  AdamW<float> optimizer(config);
  f.model.add_parameters(optimizer);
  const auto& losses = f.golden.entry("adamw.loss").f64;
  const auto& norms = f.golden.entry("adamw.norm").f64;
  REQUIRE(losses.size() == 10);
  REQUIRE(norms.size() == 10);
  for (std::size_t step = 0; step < losses.size(); ++step) {
    INFO("step " << step + 1);
    optimizer.zero_grad();
    const double loss = f.model.forward_backward(ctx, f.tokens.cview(), f.targets.cview());
    const double norm = optimizer.clip_grad_norm(1.0);
    optimizer.step();
    CHECK(std::fabs(loss - losses[step]) <= 1e-5 * std::fabs(losses[step]));
    CHECK(std::fabs(norm - norms[step]) <= 1e-5 * std::fabs(norms[step]));
  }
  CHECK(losses.back() < losses.front());  // the fixture does train: a check that can fail
}

TEST_CASE("A saved CharLlama gives the llama2 example its own logits, tied head or not",
          "[train][char_llama][llama2c]") {
  const bool tied = GENERATE(false, true);
  INFO((tied ? "tied head" : "untied head"));
  const Context<cpu> ctx(2);
  const ModelConfig config = char_llama::make_char_config(11, 16, 2, 4, 2, 24, 6);
  CharLlama model(config, tied);
  model.init(5, 0.3);  // larger than 0.02, so the logits differ well beyond rounding
  model.enable_grad();
  CHECK(model.output().weight().shares_grad_with(model.token_embedding().weight()) == tied);
  const std::vector<std::int32_t> ids{1, 4, 7, 2, 9, 3};
  const TensorView<const std::int32_t, 2> tokens(ids.data(), {1, 6});
  const auto trained_logits = model.forward(ctx, tokens);

  test::TempDir dir("llamablocks_char_llama_");
  model.save_llama2c(dir.file("model.bin"));
  const auto checkpoint = Llama2cCheckpoint::read(dir.file("model.bin"));
  CHECK(checkpoint.tied_output() == tied);
  auto loaded = llama2::load_llama2c_model<cpu>(checkpoint);
  Tensor<float, 2> logits({1, config.vocab_size});
  loaded->forward(ctx, tokens, 0, logits.view());  // the logits of the last position
  test::require_close("llama2 logits against the training forward", logits.data(),
                      &trained_logits(0, 5, 0), static_cast<std::size_t>(config.vocab_size),
                      test::tolerance<float>::nmse);
}
