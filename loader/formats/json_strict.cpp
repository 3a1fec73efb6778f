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
  auto watch = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start: open_objects.emplace_back(); break;
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

}  // namespace megrez
