#pragma once
// OpenAI's chat and completions API as JSON: request bodies in (checked field by field, since
// they come from anyone who can reach the port), responses, stream chunks and errors out.
// https://platform.openai.com/docs/api-reference/chat
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "loader/chat/chat.h"
#include "runtime/engine/generate.h"

namespace megrez::server {

// An error answered as {"error": {"message", "type", "param", "code"}} with an HTTP status.
struct ApiError {
  ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string code = "",
           std::string param = "")
      : status(status), message(std::move(message)), type(std::move(type)), code(std::move(code)), param(std::move(param)) {}
  int status;
  std::string message;
  std::string type;
  std::string code;   // "" -> null
  std::string param;  // "" -> null
};
nlohmann::json error_body(const ApiError& error);

// What a request asks for, before tokenization.
struct GenerationRequest {
  bool chat = false;
  std::vector<ChatMessage> messages;  // chat
  std::string prompt;                 // completions
  SamplerOptions sampler;
  std::optional<uint32_t> max_tokens; // nullopt: until the end of the turn or the context
  std::vector<std::string> stop;
  std::optional<uint64_t> seed;
  bool stream = false;
  bool include_usage = false;         // stream_options.include_usage
};

// Parses a /v1/chat/completions (chat = true) or /v1/completions body. Throws ApiError (400)
// for malformed JSON, a wrong type or a value out of range; unknown fields are ignored.
GenerationRequest parse_generation_request(const std::string& body, bool chat);

const char* openai_finish_reason(FinishReason reason);  // "stop" or "length"

// Response pieces. `id` is the request's ("chatcmpl-..." / "cmpl-..."), `created` Unix seconds.
struct ResponseHead {
  std::string id, model;
  int64_t created = 0;
  bool chat = false;
};
nlohmann::json usage_json(const TextResult& result);
nlohmann::json full_response(const ResponseHead& head, const TextResult& result);
// A stream chunk with `text` (chat: the first chunk also carries the role), or the final one
// with the finish reason when `finish` is given.
nlohmann::json stream_chunk(const ResponseHead& head, const std::string& text, bool first,
                            std::optional<FinishReason> finish);
nlohmann::json usage_chunk(const ResponseHead& head, const TextResult& result);  // choices: []

}  // namespace megrez::server
