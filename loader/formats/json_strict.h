#pragma once
// JSON parsing for untrusted model files: nlohmann::json silently keeps the last of two
// equal keys, which would let a hostile header describe one tensor twice. This parser
// rejects duplicate keys at any depth and nesting deeper than kMaxJsonDepth, and turns every
// parse failure into megrez::Error.
#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace megrez {

// Model files nest 4 levels at most. The cap keeps every recursive walk of a parsed value
// (nlohmann's dump and comparisons, our readers) far from the stack's end: 300,000 nested
// '[' crashed the apps before any check when this was unbounded.
inline constexpr int kMaxJsonDepth = 64;

// `source` names the file in messages.
nlohmann::json parse_json_strict(std::string_view text, const std::string& source);

// A short description of an untrusted value for error messages, never the value whole:
// a scalar as JSON text cut to `max_chars` (with "..."), an array or object by its size.
std::string json_preview(const nlohmann::json& value, size_t max_chars = 40);

}  // namespace megrez
