// libFuzzer target for chat templates, parse and render: the input is a template, a NUL, then
// message contents separated by NULs (roles alternate user / assistant). The template renders
// through ChatFormat with the BPE fixture's tokenizer, as the apps do: it renders, or falls
// back to the built-in format with a warning; either way the prompt encodes, the messages'
// special-token text stays plain, and the render's work is bounded (a hang is a finding).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "loader/chat/chat.h"
#include "loader/chat/chat_template.h"
#include "loader/error.h"
#include "loader/tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t end = std::min(input.find('\0'), input.size());
  const std::string_view source = input.substr(0, end);
  std::vector<megrez::ChatMessage> messages;
  for (size_t pos = end + 1; pos <= input.size() && end < input.size();) {
    const size_t next = std::min(input.find('\0', pos), input.size());
    messages.push_back({messages.size() % 2 ? "assistant" : "user", std::string(input.substr(pos, next - pos))});
    pos = next + 1;
  }
  try {
    (void)megrez::jinja::Template(source);  // parse alone: Unsupported or a program
  } catch (const megrez::jinja::Unsupported&) {
  }
  try {
    const megrez::ChatFormat chat(fuzz::bpe_fixture(), source);
    const megrez::ChatPrompt prompt = chat.prompt(messages, true);
    for (size_t i = 1; i < prompt.literal.size(); ++i)
      if (prompt.literal[i].begin < prompt.literal[i - 1].end) std::abort();  // sorted, disjoint
    (void)chat.encode(prompt);
    (void)chat.render_new_turns(messages, messages, false);
  } catch (const megrez::Error&) {  // raise_exception() in the template
  }
  return 0;
}
