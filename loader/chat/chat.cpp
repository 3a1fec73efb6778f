#include "loader/chat/chat.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "loader/formats/json_strict.h"
#include "loader/tokenizer/tokenizer_internal.h"

namespace megrez {

std::string format_megrez_chat(std::span<const ChatMessage> messages, bool add_generation_prompt) {
  std::string out;
  for (const ChatMessage& m : messages)
    out += "<|role_start|>" + m.role + "<|role_end|>" + m.content + "<|turn_end|>";
  if (add_generation_prompt) out += "<|role_start|>assistant<|role_end|>";
  return out;
}

std::string chat_template_from_config(std::string_view tokenizer_config_json) {
  auto config = parse_json_strict(tokenizer_config_json, "tokenizer_config.json");
  return detail::chat_template_of(config);
}

namespace {

std::string piece_text(const Tokenizer& tokenizer, int32_t id) {
  return id >= 0 && id < tokenizer.vocab_size() ? tokenizer.token_text(id) : "";
}

}  // namespace

ChatFormat::ChatFormat(const Tokenizer& tokenizer)
    : ChatFormat(tokenizer, tokenizer.data().chat_template) {}

ChatFormat::ChatFormat(const Tokenizer& tokenizer, std::string_view chat_template)
    : bos_text_(piece_text(tokenizer, tokenizer.bos_id())),
      eos_text_(piece_text(tokenizer, tokenizer.eos_id())) {
  if (!chat_template.empty()) {
    try {
      template_.emplace(chat_template);
    } catch (const jinja::Unsupported& e) {
      use_builtin_after(e.what());
    }
  }
  std::vector<int32_t> candidates;
  for (const char* piece : {"<|turn_end|>", "<|eos|>"})
    if (auto id = tokenizer.token_id(piece)) candidates.push_back(*id);
  if (tokenizer.eos_id() >= 0) candidates.push_back(tokenizer.eos_id());
  for (int32_t id : candidates)
    if (std::find(stop_ids_.begin(), stop_ids_.end(), id) == stop_ids_.end())
      stop_ids_.push_back(id);
}

void ChatFormat::use_builtin_after(const std::string& reason) const {
  template_failed_ = true;
  detail::warn_once(warned_, "the chat template is not supported (" + reason +
                                 "); using the built-in Megrez chat format instead");
}

std::string ChatFormat::render(std::span<const ChatMessage> messages,
                               bool add_generation_prompt) const {
  if (uses_template()) {
    jinja::Array list;
    for (const ChatMessage& m : messages)
      list.push_back(jinja::Value(
          jinja::Object{{"role", jinja::Value(m.role)}, {"content", jinja::Value(m.content)}}));
    jinja::Object context = {{"messages", jinja::Value(std::move(list))},
                             {"add_generation_prompt", jinja::Value(add_generation_prompt)},
                             {"bos_token", jinja::Value(bos_text_)},
                             {"eos_token", jinja::Value(eos_text_)}};
    try {
      return template_->render(context);
    } catch (const jinja::Unsupported& e) {
      use_builtin_after(e.what());
    }
  }
  return format_megrez_chat(messages, add_generation_prompt);
}

std::optional<std::string> ChatFormat::render_new_turns(std::span<const ChatMessage> previous,
                                                        std::span<const ChatMessage> added,
                                                        bool add_generation_prompt) const {
  std::vector<ChatMessage> all(previous.begin(), previous.end());
  all.insert(all.end(), added.begin(), added.end());
  std::string before = render(previous, false);
  std::string after = render(all, add_generation_prompt);
  if (!after.starts_with(before)) return std::nullopt;
  return after.substr(before.size());
}

bool ChatFormat::is_stop(int32_t id) const {
  return std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end();
}

}  // namespace megrez
