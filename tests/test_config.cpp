// ModelConfig validation and the SwiGLU width rule of Meta's model.py.
#include "support/helpers.hpp"

#include <catch2/catch.hpp>

using namespace llamablocks;
using Catch::Matchers::Contains;

TEST_CASE("llama_ffn_hidden_dim reproduces the published LLaMA widths", "[config]") {
  CHECK(llama_ffn_hidden_dim(4096, 256) == 11008);          // LLaMA-2-7B
  CHECK(llama_ffn_hidden_dim(5120, 256) == 13824);          // LLaMA-2-13B
  CHECK(llama_ffn_hidden_dim(4096, 1024, 1.3) == 14336);    // LLaMA-3-8B
  CHECK(llama_ffn_hidden_dim(8192, 4096, 1.3) == 28672);    // LLaMA-2-70B / LLaMA-3-70B
  CHECK(llama_ffn_hidden_dim(288, 32) == 768);              // llama2.c stories15M
  CHECK_THROWS_AS(llama_ffn_hidden_dim(4096, 0), config_error);
  CHECK_THROWS_WITH(llama_ffn_hidden_dim(4096, 256, -1.0), Contains("ffn_dim_multiplier"));
}

TEST_CASE("ModelConfig::validate names the invalid field and its value", "[config]") {
  const ModelConfig valid = test::make_config(64, 8, 2, 8, 172, 128);
  REQUIRE_NOTHROW(valid.validate());

  SECTION("n_heads not divisible by n_kv_heads") {
    ModelConfig config = valid;
    config.n_kv_heads = 3;
    CHECK_THROWS_AS(config.validate(), config_error);
    CHECK_THROWS_WITH(config.validate(), Contains("n_heads (8)") && Contains("n_kv_heads (3)"));
  }
  SECTION("odd head_dim") {
    ModelConfig config = valid;
    config.head_dim = 7;
    CHECK_THROWS_WITH(config.validate(), Contains("head_dim") && Contains("7"));
  }
  SECTION("eps <= 0 and non-finite eps") {
    ModelConfig config = valid;
    config.norm_eps = 0;
    CHECK_THROWS_WITH(config.validate(), Contains("norm_eps") && Contains("got 0"));
    config.norm_eps = -1e-5;
    CHECK_THROWS_WITH(config.validate(), Contains("norm_eps") && Contains("-1e-05"));
    config.norm_eps = std::nan("");
    CHECK_THROWS_AS(config.validate(), config_error);
  }
  SECTION("no silent defaults for the family-specific numerics") {
    ModelConfig config = valid;
    config.norm_eps = ModelConfig{}.norm_eps;
    CHECK_THROWS_WITH(config.validate(), Contains("norm_eps"));
    config = valid;
    config.rope_theta = ModelConfig{}.rope_theta;
    CHECK_THROWS_WITH(config.validate(), Contains("rope_theta"));
  }
  SECTION("every size must be positive") {
    for (auto field : {&ModelConfig::dim, &ModelConfig::n_layers, &ModelConfig::n_heads,
                       &ModelConfig::n_kv_heads, &ModelConfig::head_dim, &ModelConfig::vocab_size,
                       &ModelConfig::ffn_hidden_dim, &ModelConfig::max_seq_len}) {
      ModelConfig config = valid;
      config.*field = -4;
      CHECK_THROWS_WITH(config.validate(), Contains("must be > 0, got -4"));
    }
  }
  SECTION("rope scaling") {
    ModelConfig config = valid;
    config.rope_scaling = RopeScaling::llama3(8);
    CHECK_NOTHROW(config.validate());
    config.rope_scaling = RopeScaling::llama3(32);
    CHECK_NOTHROW(config.validate());
    config.rope_scaling = RopeScaling::llama3(8, 4.0, 1.0);
    CHECK_THROWS_WITH(config.validate(), Contains("high_freq_factor"));
    config.rope_scaling = RopeScaling::linear(0);
    CHECK_THROWS_WITH(config.validate(), Contains("factor"));
  }
  SECTION("errors derive from llamablocks::error") {
    ModelConfig config = valid;
    config.dim = 0;
    CHECK_THROWS_AS(config.validate(), llamablocks::error);
  }
}
