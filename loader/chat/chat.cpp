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
    : tokenizer_(tokenizer),
      bos_text_(piece_text(tokenizer, tokenizer.bos_id())),
      eos_text_(piece_text(tokenizer, tokenizer.eos_id())) {
  auto specials = std::make_shared<detail::SpecialMatcher>();
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id)
    if (tokenizer.is_special(id)) specials->add(tokenizer.token_text(id), id, /*always=*/false);
  specials_ = std::move(specials);
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

namespace {

constexpr std::string_view kMark = "\xEE\x80\x80";  // U+E000, a private-use character

}  // namespace

std::string ChatFormat::mark_specials(std::string_view content) const {
  std::string out;
  out.reserve(content.size());
  for (const detail::TextFragment& fragment : specials_->split(content, true)) {
    if (fragment.special_id >= 0) {
      out.append(kMark).append(std::to_string(fragment.special_id)).append(kMark);
      continue;
    }
    for (size_t pos = 0; pos < fragment.text.size();) {
      const size_t mark = std::min(fragment.text.find(kMark, pos), fragment.text.size());
      out.append(fragment.text.substr(pos, mark - pos));
      if (mark < fragment.text.size()) out.append(kMark).append(kMark);
      pos = mark + kMark.size();
    }
  }
  return out;
}

ChatPrompt ChatFormat::unmark(std::string_view marked) const {
  ChatPrompt prompt;
  prompt.text.reserve(marked.size());
  for (size_t pos = 0; pos < marked.size();) {
    if (!marked.substr(pos).starts_with(kMark)) {
      prompt.text += marked[pos++];
      continue;
    }
    const size_t digits = pos + kMark.size();
    size_t end = digits;
    while (end < marked.size() && end - digits < 10 && marked[end] >= '0' && marked[end] <= '9') ++end;
    if (!marked.substr(end).starts_with(kMark)) {  // not a marker: the template's own text
      prompt.text.append(kMark);
      pos = digits;
      continue;
    }
    if (end == digits) {
      prompt.text.append(kMark);  // an escaped U+E000 of a message
    } else {
      const int64_t id = std::stoll(std::string(marked.substr(digits, end - digits)));
      const std::string text = id < tokenizer_.vocab_size() ? tokenizer_.token_text(int32_t(id)) : "";
      prompt.literal.push_back({prompt.text.size(), prompt.text.size() + text.size()});
      prompt.text += text;
    }
    pos = end + kMark.size();
  }
  return prompt;
}

std::string ChatFormat::render(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  return prompt(messages, add_generation_prompt).text;
}

ChatPrompt ChatFormat::prompt(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  return unmark(render_marked(messages, add_generation_prompt));
}

std::vector<int32_t> ChatFormat::encode(const ChatPrompt& prompt) const {
  return tokenizer_.encode(prompt.text, true, prompt.literal);
}

std::string ChatFormat::render_marked(std::span<const ChatMessage> messages, bool add_generation_prompt) const {
  std::vector<ChatMessage> marked(messages.begin(), messages.end());
  for (ChatMessage& m : marked) m.content = mark_specials(m.content);
  messages = marked;
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

std::optional<ChatPrompt> ChatFormat::render_new_turns(std::span<const ChatMessage> previous,
                                                       std::span<const ChatMessage> added,
                                                       bool add_generation_prompt) const {
  std::vector<ChatMessage> all(previous.begin(), previous.end());
  all.insert(all.end(), added.begin(), added.end());
  const std::string before = render_marked(previous, false);
  const std::string after = render_marked(all, add_generation_prompt);
  if (!after.starts_with(before)) return std::nullopt;
  return unmark(std::string_view(after).substr(before.size()));
}

bool ChatFormat::is_stop(int32_t id) const {
  return std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end();
}

}  // namespace megrez
