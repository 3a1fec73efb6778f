// Text that a user or a model file hands the loader and that once crashed it or stalled it:
// JSON nested 300,000 deep (config.json, safetensors headers, tokenizer.json, device
// profiles), chat templates whose expressions chain 100,000 operators, and templates that
// copy large strings in every step. Each must end in one clear error, quickly.
#include <doctest/doctest.h>

#include <chrono>

#include <algorithm>

#include "loader/chat/chat.h"
#include "loader/chat/chat_template.h"
#include "loader/formats/hf_config.h"
#include "loader/formats/json_strict.h"
#include "loader/formats/safetensors.h"
#include "loader/synthetic/synthetic.h"
#include "loader/tokenizer/tokenizer.h"
#include "test_formats_util.h"

using namespace megrez;
using formats_test::error_of;

namespace {

std::string nested_arrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// A template expression of `links` chained operators, e.g. {{ x or x or ... x }}.
std::string chain(const std::string& first, const std::string& link, size_t links) {
  std::string source = "{{ " + first;
  for (size_t i = 0; i < links; ++i) source += link;
  return source + " }}";
}

}  // namespace

TEST_CASE("JSON nested deeper than kMaxJsonDepth is refused before anything walks it") {
  const std::string deep = nested_arrays(300000);
  CHECK(contains(error_of([&] { parse_json_strict(deep, "x.json"); }), "x.json: JSON nested deeper than 64 levels"));
  CHECK(contains(error_of([&] { parse_json_strict("{\"a\": " + deep + "}", "x.json"); }), "nested deeper"));
  // The limit itself: 64 levels parse, 65 do not.
  CHECK(parse_json_strict(nested_arrays(kMaxJsonDepth), "ok.json").is_array());
  CHECK(contains(error_of([&] { parse_json_strict(nested_arrays(kMaxJsonDepth + 1), "x.json"); }), "nested deeper"));

  // Every reader of untrusted JSON goes through it.
  const std::string config = "{\"hidden_size\": " + deep + "}";
  CHECK(contains(error_of([&] { parse_hf_config(config, "config.json", {}, nullptr); }), "config.json: JSON nested"));
  const std::string header = "{\"w\": " + deep + "}";
  std::vector<uint8_t> file(8 + header.size());
  const uint64_t length = header.size();
  std::memcpy(file.data(), &length, 8);
  std::memcpy(file.data() + 8, header.data(), header.size());
  CHECK(contains(error_of([&] { parse_safetensors(file, "h.safetensors"); }), "nested deeper"));
  CHECK(contains(error_of([&] { Tokenizer::from_hf_json("{\"model\": " + deep + "}"); }), "nested deeper"));
  CHECK(contains(error_of([&] { chat_template_from_config("{\"chat_template\": " + deep + "}"); }), "nested deeper"));
}

TEST_CASE("error messages show a bounded preview of an untrusted value, never the value") {
  using nlohmann::json;
  CHECK(json_preview(json(7)) == "7");
  CHECK(json_preview(json("abc")) == "\"abc\"");
  CHECK(json_preview(json(std::string(1000, 'x')), 5) == "\"xxxxx\"...");
  CHECK(json_preview(json::array({1, 2, 3})) == "an array of 3 elements");
  CHECK(json_preview(json::object({{"a", 1}})) == "an object with 1 keys");
  CHECK(json_preview(json(nullptr)) == "null");
  // A 10 MB string in a wrong-type error costs its preview, not a dump of it.
  const std::string big = "{\"hidden_size\": \"" + std::string(10u << 20, 'y') + "\"}";
  const std::string message = error_of([&] { parse_hf_config(big, "config.json", {}, nullptr); });
  CHECK(contains(message, "hidden_size must be"));
  CHECK(message.size() < 300);
}

TEST_CASE("tokenizer.json: pre_tokenizer Sequences nested past the bound are refused") {
  std::string node = R"({"type": "ByteLevel", "add_prefix_space": false})";
  for (int i = 0; i < 6; ++i) node = R"({"type": "Sequence", "pretokenizers": [)" + node + "]}";
  const std::string text = R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": )" + node + "}";
  CHECK(contains(error_of([&] { Tokenizer::from_hf_json(text); }), "pre_tokenizer Sequences nested more than 4 deep"));
}

TEST_CASE("chat templates: operator chains of any length end in one error, not a crash") {
  using jinja::Template;
  using jinja::Unsupported;
  for (const auto& [first, link] : std::vector<std::pair<std::string, std::string>>{
           {"x", " or x"}, {"x", " and x"}, {"x", ".y"}, {"x", "[0]"}, {"x", " ~ x"}, {"x", " + x"},
           {"x", " == x"}, {"x", " | length"}, {"x", " is defined"}, {"x", ".strip()"}}) {
    CAPTURE(link);
    CHECK_THROWS_WITH_AS(Template(chain(first, link, 100000)), doctest::Contains("nests too deeply"), Unsupported);
    // Short chains are fine.
    CHECK_NOTHROW(Template(chain(first, link, 20)));
  }
  // Through the files a user hands the apps: tokenizer_config.json and its chat_template.
  const std::string config = "{\"chat_template\": \"" + chain("x", " or x", 100000) + "\"}";
  CHECK_THROWS_AS(jinja::Template(chat_template_from_config(config)), Unsupported);
}

TEST_CASE("chat templates: the bytes a render copies are bounded, not only its steps") {
  using namespace jinja;
  // 10,000 steps, each building a 2 MiB string: 20 GB of copying under a step count alone.
  const std::string source =
      "{% for a in [1,2,3,4,5,6,7,8,9,10] %}{% for b in [1,2,3,4,5,6,7,8,9,10] %}"
      "{% for c in [1,2,3,4,5,6,7,8,9,10] %}{% for d in [1,2,3,4,5,6,7,8,9,10] %}"
      "{% if (s ~ s) == '' %}x{% endif %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}";
  const Object context = {{"s", Value(std::string(1u << 20, 'z'))}};
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_WITH_AS(Template(source).render(context), doctest::Contains("too much data"), Unsupported);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  // Reading members of a large context copies nothing: 10,000 reads of messages[0].content
  // in a 2 MiB conversation stay within the budget.
  Array messages;
  for (int i = 0; i < 2; ++i) messages.push_back(Object{{"role", Value("user")}, {"content", Value(std::string(1u << 20, 'm'))}});
  const std::string reads =
      "{% for a in [1,2,3,4,5,6,7,8,9,10] %}{% for b in [1,2,3,4,5,6,7,8,9,10] %}"
      "{% for c in [1,2,3,4,5,6,7,8,9,10] %}{% for d in [1,2,3,4,5,6,7,8,9,10] %}"
      "{% if messages[0].role == 'user' and messages | length == 2 %}{% endif %}"
      "{% endfor %}{% endfor %}{% endfor %}{% endfor %}ok";
  CHECK(Template(reads).render({{"messages", Value(messages)}}) == "ok");
}

TEST_CASE("special-token matching costs the longest match per byte, not the number of specials") {
  // 50,000 specials that all start with "<|s", and 4 MB of text that keeps starting them: a
  // scan over every special at each '<' took ~90 s here; the trie takes well under 1 s.
  nlohmann::json tokenizer = nlohmann::json::parse(synthetic_bpe_tokenizer_json());
  int32_t next_id = synthetic_bpe_vocab_size();
  for (int i = 0; i < 50000; ++i)
    tokenizer["added_tokens"].push_back(
        {{"id", next_id++}, {"content", "<|s" + std::to_string(i) + "|>"}, {"special", true}, {"normalized", false}});
  const auto bpe = Tokenizer::from_hf_json(tokenizer.dump());
  std::string text;
  while (text.size() < (4u << 20)) text += "<|s<|s1|><|s19999|>x";
  const auto start = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = bpe->encode(text);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(20));
  // Matches are exact: "<|s1|>" and "<|s19999|>" are specials, "<|s" alone is text.
  const int32_t s1 = *bpe->token_id("<|s1|>"), s19999 = *bpe->token_id("<|s19999|>");
  const int64_t repeats = int64_t(text.size() / std::string("<|s<|s1|><|s19999|>x").size());
  CHECK(std::count(ids.begin(), ids.end(), s1) == repeats);
  CHECK(std::count(ids.begin(), ids.end(), s19999) == repeats);
  CHECK(bpe->decode(ids) == text);
}
