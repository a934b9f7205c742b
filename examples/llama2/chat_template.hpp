// The chat formats the llama2 program can speak with a GGUF model, recognized from the file's
// tokenizer.chat_template (a Jinja template, which is not executed: its marker tokens identify
// which of the known formats it is, as llama.cpp's template detection does).
//
//   chatml  (SmolLM2, Qwen, ...)   <|im_start|>system\nSYSTEM<|im_end|>\n
//                                  <|im_start|>user\nUSER<|im_end|>\n<|im_start|>assistant\n
//                                  ends a reply with <|im_end|>
//   llama3                         <|start_header_id|>system<|end_header_id|>\n\nSYSTEM<|eot_id|>
//                                  <|start_header_id|>user<|end_header_id|>\n\nUSER<|eot_id|>
//                                  <|start_header_id|>assistant<|end_header_id|>\n\n
//                                  ends a reply with <|eot_id|>
//   llama2  (LLaMA-2-Chat)         [BOS][INST] <<SYS>>\nSYSTEM\n<</SYS>>\n\nUSER [/INST]
//                                  ends a reply with EOS; every turn starts with BOS
// The system part is rendered in the first turn only, and only when not empty. The end-of-turn
// token is fed back into the cache after a reply, so the next turn continues the same context.
#pragma once

#include <optional>
#include <string>

namespace llama2 {

struct ChatTemplate {
  enum class Kind { chatml, llama3, llama2 };
  Kind kind = Kind::chatml;

  /// The format `jinja` (tokenizer.chat_template) is written for, or nullopt when it is none of
  /// the known ones.
  static std::optional<ChatTemplate> detect(const std::string& jinja) {
    if (jinja.find("<|im_start|>") != std::string::npos) return ChatTemplate{Kind::chatml};
    if (jinja.find("<|start_header_id|>") != std::string::npos) return ChatTemplate{Kind::llama3};
    if (jinja.find("[INST]") != std::string::npos) return ChatTemplate{Kind::llama2};
    return std::nullopt;
  }

  const char* name() const {
    switch (kind) {
      case Kind::chatml: return "chatml";
      case Kind::llama3: return "llama3";
      case Kind::llama2: return "llama2";
    }
    return "?";
  }

  /// The text of the special token that ends an assistant turn; empty: the tokenizer's EOS.
  std::string end_of_turn() const {
    switch (kind) {
      case Kind::chatml: return "<|im_end|>";
      case Kind::llama3: return "<|eot_id|>";
      case Kind::llama2: return "";
    }
    return "";
  }

  /// Whether each turn (not only the first) starts with BOS.
  bool bos_every_turn() const { return kind == Kind::llama2; }

  /// The text of one user turn and the assistant header that follows it. `first` = the first turn
  /// of the conversation (the only one with a system part). Later turns follow the end-of-turn
  /// token of the previous reply.
  std::string render(const std::string& system, const std::string& user, bool first) const {
    const bool with_system = first && !system.empty();
    switch (kind) {
      case Kind::chatml:
        return std::string(first ? "" : "\n") +
               (with_system ? "<|im_start|>system\n" + system + "<|im_end|>\n" : "") +
               "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
      case Kind::llama3:
        return (with_system ? "<|start_header_id|>system<|end_header_id|>\n\n" + system + "<|eot_id|>"
                            : std::string()) +
               "<|start_header_id|>user<|end_header_id|>\n\n" + user +
               "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
      case Kind::llama2:
        return with_system ? "[INST] <<SYS>>\n" + system + "\n<</SYS>>\n\n" + user + " [/INST]"
                           : "[INST] " + user + " [/INST]";
    }
    return user;
  }
};

}  // namespace llama2
