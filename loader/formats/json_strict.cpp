#include "loader/formats/json_strict.h"

#include <set>
#include <vector>

#include "loader/error.h"

namespace megrez {

nlohmann::json parse_json_strict(std::string_view text, const std::string& source) {
  using nlohmann::json;
  // One set of seen keys per object currently open; the parser reports events in order.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto watch = [&](int depth, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::array_start:
      case json::parse_event_t::object_start:
        // depth counts the containers already open around this one.
        if (depth >= kMaxJsonDepth)
          throw Error(source + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string() &&
            !open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty())
          duplicate = parsed.get<std::string>();
        break;
      default: break;
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text.begin(), text.end(), watch);
  } catch (const json::exception& e) {
    throw Error(source + ": not valid JSON (" + e.what() + ")");
  }
  if (!duplicate.empty()) throw Error(source + ": key \"" + duplicate + "\" appears twice in one JSON object");
  return root;
}

std::string json_preview(const nlohmann::json& value, size_t max_chars) {
  using nlohmann::json;
  if (value.is_array()) return "an array of " + std::to_string(value.size()) + " elements";
  if (value.is_object()) return "an object with " + std::to_string(value.size()) + " keys";
  // A string is cut before it is dumped (dumping a 100 MB string only to cut it is work a
  // hostile file chooses); other scalars dump to a few dozen characters.
  const bool long_string = value.is_string() && value.get_ref<const std::string&>().size() > max_chars;
  const json shown = long_string ? json(value.get_ref<const std::string&>().substr(0, max_chars)) : value;
  std::string text = shown.dump(-1, ' ', false, json::error_handler_t::replace);
  const bool cut = long_string || text.size() > max_chars + 2;  // + 2: the quotes
  if (text.size() > max_chars + 2) text.resize(max_chars + 2);
  return cut ? text + "..." : text;
}

}  // namespace megrez
