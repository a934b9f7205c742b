// llama2::ChatTemplate (examples/llama2/chat_template.hpp): the format recognized from a GGUF
// tokenizer.chat_template, and the text of each turn, written out here by hand from the formats'
// published descriptions.
#include "../examples/llama2/chat_template.hpp"

#include <catch2/catch.hpp>

using llama2::ChatTemplate;

TEST_CASE("chat template: formats recognized from their Jinja source", "[chat]") {
  // Excerpts of the templates as shipped (SmolLM2-Instruct, LLaMA-3-Instruct, LLaMA-2-Chat).
  const auto chatml = ChatTemplate::detect(
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
      "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}");
  REQUIRE(chatml);
  CHECK(chatml->kind == ChatTemplate::Kind::chatml);
  const auto llama3 = ChatTemplate::detect(
      "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
      "message['content'] | trim + '<|eot_id|>' }}");
  REQUIRE(llama3);
  CHECK(llama3->kind == ChatTemplate::Kind::llama3);
  const auto llama2 = ChatTemplate::detect("{{ bos_token + '[INST] ' + content + ' [/INST]' }}");
  REQUIRE(llama2);
  CHECK(llama2->kind == ChatTemplate::Kind::llama2);
  CHECK_FALSE(ChatTemplate::detect("{{ '<start_of_turn>user\\n' + content }}"));
  CHECK_FALSE(ChatTemplate::detect(""));
}

TEST_CASE("chat template: turns rendered", "[chat]") {
  const ChatTemplate chatml{ChatTemplate::Kind::chatml};
  CHECK(chatml.render("Be brief.", "Hi", true) ==
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n");
  CHECK(chatml.render("", "Hi", true) == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  // A later turn follows the <|im_end|> of the reply: the template's newline comes first, and the
  // system part is not repeated.
  CHECK(chatml.render("Be brief.", "More", false) ==
        "\n<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n");
  CHECK(chatml.end_of_turn() == "<|im_end|>");
  CHECK_FALSE(chatml.bos_every_turn());

  const ChatTemplate llama3{ChatTemplate::Kind::llama3};
  CHECK(llama3.render("S", "U", true) ==
        "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
  CHECK(llama3.render("S", "U", false) ==
        "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
  CHECK(llama3.end_of_turn() == "<|eot_id|>");

  const ChatTemplate llama2{ChatTemplate::Kind::llama2};
  CHECK(llama2.render("S", "U", true) == "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]");
  CHECK(llama2.render("S", "U", false) == "[INST] U [/INST]");
  CHECK(llama2.end_of_turn().empty());
  CHECK(llama2.bos_every_turn());
}
