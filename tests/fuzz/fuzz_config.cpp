// libFuzzer target for the JSON files of a Hugging Face model directory other than the
// weights: config.json (parse_hf_config), tokenizer_config.json (chat_template_from_config,
// and with the BPE fixture's tokenizer.json, Tokenizer::from_hf_json), and the strict JSON
// parser and json_preview under them. The first input byte picks the file; the rest is its
// text. Each either loads or throws megrez::Error, never crashes, at any nesting depth.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "fuzz_common.h"
#include "loader/chat/chat.h"
#include "loader/chat/chat_template.h"
#include "loader/error.h"
#include "loader/formats/hf_config.h"
#include "loader/formats/json_strict.h"
#include "loader/tokenizer/tokenizer.h"

namespace {

void fuzz_json(std::string_view text) {
  try {
    const nlohmann::json j = megrez::parse_json_strict(text, "fuzz.json");
    const std::string preview = megrez::json_preview(j);
    if (preview.size() > 200) std::abort();  // a preview is short whatever the value
    (void)j.dump();                          // the depth cap keeps every walk shallow
  } catch (const megrez::Error&) {
  }
}

void fuzz_hf_config(std::string_view text) {
  try {
    (void)megrez::parse_hf_config(text, "config.json", std::nullopt, nullptr);
  } catch (const megrez::Error&) {
  }
}

void fuzz_tokenizer_config(std::string_view text) {
  static const std::string tokenizer_json = fuzz::read_fixture("bpe_qwen2.tokenizer.json");
  try {
    const std::string chat_template = megrez::chat_template_from_config(text);
    if (!chat_template.empty()) (void)megrez::jinja::Template(chat_template);
  } catch (const megrez::Error&) {
  } catch (const megrez::jinja::Unsupported&) {
  }
  try {
    auto tokenizer = megrez::Tokenizer::from_hf_json(tokenizer_json, text);
    const megrez::ChatFormat chat(*tokenizer);
    const std::vector<megrez::ChatMessage> messages = {{"user", "Hi <|turn_end|>"}, {"assistant", "Hello"}};
    (void)chat.encode(chat.prompt(messages, true));
  } catch (const megrez::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: fuzz_json(payload); break;
    case 1: fuzz_hf_config(payload); break;
    case 2: fuzz_tokenizer_config(payload); break;
  }
  return 0;
}
