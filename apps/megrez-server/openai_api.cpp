#include "apps/megrez-server/openai_api.h"

#include <cmath>

namespace megrez::server {

using nlohmann::json;

namespace {

ApiError bad(const std::string& message, const std::string& param = "") {
  return ApiError{400, message, "invalid_request_error", "", param};
}

// A field that is absent or null counts as not given.
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& body, const char* name, double low, double high) {
  const json& v = *field(body, name);
  if (!v.is_number()) throw bad(std::string("'") + name + "' must be a number", name);
  const double x = v.get<double>();
  if (!(x >= low && x <= high)) {
    throw bad(std::string("'") + name + "' must be between " + json(low).dump() + " and " + json(high).dump() +
                  ", got " + v.dump(), name);
  }
  return x;
}

int64_t integer(const json& body, const char* name, int64_t low, int64_t high) {
  const json& v = *field(body, name);
  if (!v.is_number_integer()) throw bad(std::string("'") + name + "' must be an integer", name);
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) {
    throw bad(std::string("'") + name + "' is out of range", name);
  }
  const int64_t x = v.get<int64_t>();
  if (x < low || x > high) {
    throw bad(std::string("'") + name + "' must be between " + std::to_string(low) + " and " + std::to_string(high) +
                  ", got " + std::to_string(x), name);
  }
  return x;
}

bool boolean(const json& body, const char* name) {
  const json& v = *field(body, name);
  if (!v.is_boolean()) throw bad(std::string("'") + name + "' must be true or false", name);
  return v.get<bool>();
}

// Message content: a string, or a list of parts of which only text parts are supported.
std::string content_text(const json& message, size_t index, bool may_be_null) {
  const std::string param = "messages[" + std::to_string(index) + "].content";
  const json* content = field(message, "content");
  if (!content) {
    if (may_be_null) return "";
    throw bad("'" + param + "' is missing", param);
  }
  if (content->is_string()) return content->get<std::string>();
  if (!content->is_array()) throw bad("'" + param + "' must be a string or a list of text parts", param);
  std::string text;
  for (const json& part : *content) {
    const json* type = part.is_object() ? field(part, "type") : nullptr;
    const json* part_text = part.is_object() ? field(part, "text") : nullptr;
    if (!type || !type->is_string() || type->get<std::string>() != "text" || !part_text || !part_text->is_string()) {
      throw bad("'" + param + "': only parts {\"type\": \"text\", \"text\": \"...\"} are supported", param);
    }
    text += part_text->get<std::string>();
  }
  return text;
}

std::vector<ChatMessage> parse_messages(const json& body) {
  const json* messages = field(body, "messages");
  if (!messages) throw bad("'messages' is required", "messages");
  if (!messages->is_array() || messages->empty()) throw bad("'messages' must be a non-empty list", "messages");
  std::vector<ChatMessage> out;
  for (size_t i = 0; i < messages->size(); ++i) {
    const json& m = (*messages)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw bad("'" + param + "' must be an object", param);
    const json* role = field(m, "role");
    if (!role || !role->is_string()) throw bad("'" + param + ".role' must be a string", param + ".role");
    std::string r = role->get<std::string>();
    if (r == "developer") r = "system";  // OpenAI's newer name for the system role
    if (r != "system" && r != "user" && r != "assistant") {
      throw bad("'" + param + ".role' must be system, developer, user or assistant, got " + role->dump(),
                param + ".role");
    }
    out.push_back({r, content_text(m, i, r == "assistant")});
  }
  return out;
}

std::vector<std::string> parse_stop(const json& body) {
  const json* stop = field(body, "stop");
  if (!stop) return {};
  std::vector<std::string> out;
  if (stop->is_string()) {
    out.push_back(stop->get<std::string>());
  } else if (stop->is_array()) {
    for (const json& s : *stop) {
      if (!s.is_string()) throw bad("'stop' must be a string or a list of strings", "stop");
      out.push_back(s.get<std::string>());
    }
  } else {
    throw bad("'stop' must be a string or a list of strings", "stop");
  }
  if (out.size() > kMaxStopSequences) {
    throw bad("'stop' has " + std::to_string(out.size()) + " sequences; at most " + std::to_string(kMaxStopSequences),
              "stop");
  }
  for (const std::string& s : out) {
    if (s.empty() || s.size() > kMaxStopSequenceBytes) {
      throw bad("each stop sequence must have 1 to " + std::to_string(kMaxStopSequenceBytes) + " bytes", "stop");
    }
  }
  return out;
}

std::string parse_prompt(const json& body) {
  const json* prompt = field(body, "prompt");
  if (!prompt) throw bad("'prompt' is required", "prompt");
  if (prompt->is_string()) return prompt->get<std::string>();
  if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) return (*prompt)[0].get<std::string>();
  throw bad("'prompt' must be a string (or a list of one string)", "prompt");
}

}  // namespace

json error_body(const ApiError& e) {
  return {{"error",
           {{"message", e.message},
            {"type", e.type},
            {"param", e.param.empty() ? json(nullptr) : json(e.param)},
            {"code", e.code.empty() ? json(nullptr) : json(e.code)}}}};
}

GenerationRequest parse_generation_request(const std::string& text, bool chat) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::exception& e) {
    throw bad(std::string("the body is not valid JSON: ") + e.what());
  }
  if (!body.is_object()) throw bad("the body must be a JSON object");

  GenerationRequest r;
  r.chat = chat;
  if (chat) r.messages = parse_messages(body);
  else r.prompt = parse_prompt(body);
  // OpenAI's defaults: temperature 1, top_p 1.
  r.sampler.temperature = field(body, "temperature") ? float(number(body, "temperature", 0, 2)) : 1.0f;
  if (field(body, "top_p")) r.sampler.top_p = float(number(body, "top_p", 0, 1));
  if (r.sampler.top_p <= 0) throw bad("'top_p' must be above 0", "top_p");
  if (field(body, "top_k")) r.sampler.top_k = int32_t(integer(body, "top_k", 0, INT32_MAX));
  if (field(body, "repeat_penalty")) r.sampler.repeat_penalty = float(number(body, "repeat_penalty", 1e-3, 100));
  if (field(body, "frequency_penalty")) r.sampler.frequency_penalty = float(number(body, "frequency_penalty", -2, 2));
  if (field(body, "presence_penalty")) r.sampler.presence_penalty = float(number(body, "presence_penalty", -2, 2));
  if (field(body, "seed")) r.seed = uint64_t(integer(body, "seed", INT64_MIN, INT64_MAX));
  for (const char* name : {"max_tokens", "max_completion_tokens"}) {
    if (field(body, name)) r.max_tokens = uint32_t(integer(body, name, 1, 1 << 30));
  }
  if (field(body, "n") && integer(body, "n", 1, INT32_MAX) != 1) throw bad("only n = 1 is supported", "n");
  r.stop = parse_stop(body);
  if (field(body, "stream")) r.stream = boolean(body, "stream");
  if (const json* options = field(body, "stream_options")) {
    if (!options->is_object()) throw bad("'stream_options' must be an object", "stream_options");
    if (field(*options, "include_usage")) r.include_usage = boolean(*options, "include_usage");
  }
  return r;
}

const char* openai_finish_reason(FinishReason reason) {
  return reason == FinishReason::Length || reason == FinishReason::Context ? "length" : "stop";
}

json usage_json(const TextResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", r.prompt_tokens - r.prompt_tokens_fed}}}};
}

namespace {

json envelope(const ResponseHead& head, bool chunk) {
  return {{"id", head.id},
          {"object", head.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"},
          {"created", head.created},
          {"model", head.model}};
}

}  // namespace

json full_response(const ResponseHead& head, const TextResult& r) {
  json out = envelope(head, false);
  json choice = {{"index", 0}, {"finish_reason", openai_finish_reason(r.finish)}};
  if (head.chat) choice["message"] = {{"role", "assistant"}, {"content", r.text}};
  else choice["text"] = r.text, choice["logprobs"] = nullptr;
  out["choices"] = json::array({choice});
  out["usage"] = usage_json(r);
  return out;
}

json stream_chunk(const ResponseHead& head, const std::string& text, bool first, std::optional<FinishReason> finish) {
  json out = envelope(head, true);
  json choice = {{"index", 0}, {"finish_reason", finish ? json(openai_finish_reason(*finish)) : json(nullptr)}};
  if (head.chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!finish) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  out["choices"] = json::array({choice});
  return out;
}

json usage_chunk(const ResponseHead& head, const TextResult& r) {
  json out = envelope(head, true);
  out["choices"] = json::array();
  out["usage"] = usage_json(r);
  return out;
}

}  // namespace megrez::server
