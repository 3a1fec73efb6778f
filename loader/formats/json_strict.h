#pragma once
// JSON parsing for untrusted model files: nlohmann::json silently keeps the last of two
// equal keys, which would let a hostile header describe one tensor twice. This parser
// rejects duplicate keys at any depth and turns every parse failure into megrez::Error.
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace megrez {

// `source` names the file in messages.
nlohmann::json parse_json_strict(std::string_view text, const std::string& source);

}  // namespace megrez
