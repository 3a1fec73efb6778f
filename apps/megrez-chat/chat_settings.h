#pragma once
#include <cstdint>
#include <string>

namespace megrez::chat {

// A conversation's generation settings, kept with it (JSON in the database).
struct ChatSettings {
  std::string system_prompt;
  float temperature = 0.7f;   // 0: greedy
  int top_k = 40;             // 0: all
  float top_p = 0.9f;
  float repeat_penalty = 1.1f;
  int64_t seed = -1;          // -1: a new one each reply
  int max_tokens = 512;

  std::string to_json() const;
  // Missing or malformed fields keep `defaults`' values (the file is the user's).
  static ChatSettings from_json(const std::string& text, const ChatSettings& defaults);
};

}  // namespace megrez::chat
