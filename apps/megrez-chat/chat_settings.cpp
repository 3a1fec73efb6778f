#include "apps/megrez-chat/chat_settings.h"

#include <algorithm>
#include <cmath>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace megrez::chat {

std::string ChatSettings::to_json() const {
  return nlohmann::json{{"system_prompt", system_prompt}, {"temperature", temperature}, {"top_k", top_k},
                        {"top_p", top_p}, {"repeat_penalty", repeat_penalty}, {"seed", seed},
                        {"max_tokens", max_tokens}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

ChatSettings ChatSettings::from_json(const std::string& text, const ChatSettings& defaults) {
  ChatSettings s = defaults;
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return s;
  // A number is taken as a double, clamped to its field's range, then converted: a hand-edited
  // or hostile 1e300 never reaches an int conversion out of range.
  auto number = [&](const char* key, auto& field, double lo, double hi) {
    const auto it = j.find(key);
    if (it == j.end() || !it->is_number()) return;
    const double v = it->get<double>();
    if (std::isfinite(v)) field = static_cast<std::decay_t<decltype(field)>>(std::clamp(v, lo, hi));
  };
  if (const auto it = j.find("system_prompt"); it != j.end() && it->is_string()) s.system_prompt = it->get<std::string>();
  number("temperature", s.temperature, 0, 5);
  number("top_k", s.top_k, 0, 1000);
  number("top_p", s.top_p, 0, 1);
  number("repeat_penalty", s.repeat_penalty, 1, 3);
  number("seed", s.seed, -1, 9.0e15);  // exactly representable as a double
  number("max_tokens", s.max_tokens, 1, 32768);
  return s;
}

}  // namespace megrez::chat
