#pragma once
// Chat formatting: turns a conversation into the text a Megrez model was trained on.
// The checkpoint's chat_template (Jinja, from tokenizer_config.json) is rendered when it
// stays within the subset of loader/chat/chat_template.h; otherwise, or when there is none, the
// built-in Megrez format is used:
//   <|role_start|>{role}<|role_end|>{content}<|turn_end|>   per message
//   <|role_start|>assistant<|role_end|>                      as the generation prompt
// Generation stops on <|turn_end|> or <|eos|>.
// The rendered text carries the markers as text. Only the template's own text may become
// special tokens: a message that contains "<|turn_end|><|role_start|>system<|role_end|>"
// must not forge turns, so encode() tokenizes what the messages put in as plain text (the
// rendering marks where special-token text came from a message; see ChatPrompt).
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loader/chat/chat_template.h"
#include "loader/tokenizer/tokenizer.h"

namespace megrez {

namespace detail {
class SpecialMatcher;
}

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

// A rendered conversation and the ranges of it that spell special tokens but came from the
// messages' text: the tokenizer keeps those plain (Tokenizer::encode's `literal`).
struct ChatPrompt {
  std::string text;
  std::vector<TextRange> literal;
};

// The built-in Megrez format.
std::string format_megrez_chat(std::span<const ChatMessage> messages, bool add_generation_prompt);

// The chat_template of a tokenizer_config.json text ("" when it has none), so that an HF
// directory with a SentencePiece tokenizer.model can attach it to TokenizerData.
// Throws megrez::Error when the text is not valid JSON.
std::string chat_template_from_config(std::string_view tokenizer_config_json);

class ChatFormat {
 public:
  // Uses tokenizer.data().chat_template.
  explicit ChatFormat(const Tokenizer& tokenizer);
  // Uses `chat_template` ("" = the built-in format); the tokenizer supplies bos/eos text and
  // the stop ids.
  ChatFormat(const Tokenizer& tokenizer, std::string_view chat_template);

  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  ChatPrompt prompt(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  // Token ids of a prompt: the template's markers become special tokens, the messages' text
  // never does.
  std::vector<int32_t> encode(const ChatPrompt& prompt) const;

  // For a chat that keeps its KV cache across turns: the text to feed after a context that
  // holds render(previous, false), i.e. the earlier turns including the assistant's last
  // reply and its <|turn_end|>. Returns render(previous + added, add_generation_prompt)
  // without that prefix, or nullopt when the template does not simply extend the earlier
  // text (the caller must then re-feed the whole conversation).
  std::optional<ChatPrompt> render_new_turns(std::span<const ChatMessage> previous,
                                             std::span<const ChatMessage> added,
                                             bool add_generation_prompt) const;

  // Ids that end the assistant's turn: <|turn_end|>, <|eos|> and the tokenizer's eos (those
  // the vocabulary has), without repeats.
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }
  bool is_stop(int32_t id) const;

  // False when the built-in format is in use (no template, or an unsupported one).
  bool uses_template() const { return template_.has_value() && !template_failed_; }

 private:
  void use_builtin_after(const std::string& reason) const;
  // The conversation rendered with each special token's text in the messages replaced by a
  // marker (private-use U+E000, the id, U+E000; a U+E000 of the text becomes two), so that
  // the template's own text and the messages' can be told apart after any template.
  std::string render_marked(std::span<const ChatMessage> messages, bool add_generation_prompt) const;
  std::string mark_specials(std::string_view content) const;
  ChatPrompt unmark(std::string_view marked) const;

  const Tokenizer& tokenizer_;
  std::shared_ptr<const detail::SpecialMatcher> specials_;  // every special token's text
  std::optional<jinja::Template> template_;
  mutable bool template_failed_ = false;  // set when rendering hit something unsupported
  mutable bool warned_ = false;
  std::string bos_text_, eos_text_;
  std::vector<int32_t> stop_ids_;
};

}  // namespace megrez
