// tokenizer.json files that are broken, inconsistent or use what is not supported must fail
// with megrez::Error, never crash or load half a tokenizer.
#include <doctest/doctest.h>

#include "loader/error.h"
#include "tokenizer_fixtures.h"

using megrez::Error;
using megrez::Tokenizer;
using nlohmann::json;
using namespace tokenizer_test;

namespace {

json fixture() { return read_json(kDir + "bpe_qwen2.tokenizer.json"); }

// Loads `j`; returns the error message, or "" when it loaded.
std::string load_error(const json& j, const std::string& config = "") {
  try {
    Tokenizer::from_hf_json(j.dump(), config);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool mentions(const std::string& message, const std::string& part) {
  return message.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("tokenizer.json: not JSON, not an object, no model") {
  CHECK_THROWS_AS(Tokenizer::from_hf_json("{\"model\": "), Error);
  CHECK_THROWS_AS(Tokenizer::from_hf_json(""), Error);
  CHECK_THROWS_AS(Tokenizer::from_hf_json("[1, 2]"), Error);
  CHECK_THROWS_AS(Tokenizer::from_hf_json("{}"), Error);
  CHECK_THROWS_AS(
      Tokenizer::from_hf_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"a\": 1}}}"),
      Error);
  CHECK(load_error(fixture()).empty());
}

TEST_CASE("tokenizer.json: inconsistent vocabulary") {
  SUBCASE("merge of unknown tokens") {
    json j = fixture();
    j["model"]["merges"].push_back("x\xC4\xA0y zz");
    CHECK(mentions(load_error(j), "not in the vocabulary"));
  }
  SUBCASE("duplicate merge") {
    json j = fixture();
    j["model"]["merges"].push_back(j["model"]["merges"][0]);
    CHECK(mentions(load_error(j), "twice"));
  }
  SUBCASE("merge without a space") {
    json j = fixture();
    j["model"]["merges"].push_back("ab");
    CHECK(mentions(load_error(j), "one space"));
  }
  SUBCASE("array merge of three") {
    json j = fixture();
    j["model"]["merges"].push_back(json::array({"a", "b", "c"}));
    CHECK_FALSE(load_error(j).empty());
  }
  SUBCASE("missing byte symbol") {
    json j = fixture();
    j["model"]["vocab"].erase("!");
    CHECK(mentions(load_error(j), "0x21"));
  }
  SUBCASE("two pieces with one id") {
    json j = fixture();
    j["model"]["vocab"]["zzz"] = 5;
    CHECK(mentions(load_error(j), "id 5"));
  }
  SUBCASE("added token clashing with a vocab id") {
    json j = fixture();
    j["added_tokens"][0]["id"] = 97;
    CHECK_FALSE(load_error(j).empty());
  }
  SUBCASE("same piece at two ids") {
    json j = fixture();
    j["added_tokens"][1]["content"] = "<|eos|>";
    CHECK(mentions(load_error(j), "twice"));
  }
  SUBCASE("negative, huge and non-integer ids") {
    json j = fixture();
    j["model"]["vocab"]["zzz"] = -3;
    CHECK_FALSE(load_error(j).empty());
    j["model"]["vocab"]["zzz"] = 2000000000;
    CHECK(mentions(load_error(j), "far beyond"));
    j["model"]["vocab"]["zzz"] = "7";
    CHECK_FALSE(load_error(j).empty());
  }
}

TEST_CASE("tokenizer.json: unsupported features are refused by name") {
  auto with = [](const char* pointer, json value) {
    json j = fixture();
    j[json::json_pointer(pointer)] = std::move(value);
    return load_error(j);
  };
  CHECK(mentions(with("/model/type", "WordPiece"), "model.type"));
  CHECK(mentions(with("/model/dropout", 0.1), "dropout"));
  CHECK(mentions(with("/model/byte_fallback", true), "byte_fallback"));
  CHECK(mentions(with("/model/continuing_subword_prefix", "##"), "continuing_subword_prefix"));
  CHECK(mentions(with("/normalizer", json{{"type", "Lowercase"}}), "normalizer"));
  CHECK(with("/normalizer", json{{"type", "NFC"}}).empty());
  CHECK(mentions(with("/pre_tokenizer", json{{"type", "Metaspace"}}), "Metaspace"));
  CHECK(mentions(with("/pre_tokenizer", nullptr), "ByteLevel"));
  CHECK(mentions(with("/pre_tokenizer/pretokenizers/0/behavior", "Removed"), "Isolated"));
  CHECK(mentions(with("/pre_tokenizer/pretokenizers/0/pattern", json{{"Regex", "(("}}), "compile"));
  CHECK(
      mentions(with("/pre_tokenizer/pretokenizers/1/add_prefix_space", true), "add_prefix_space"));
  CHECK(mentions(with("/decoder", json{{"type", "Metaspace"}}), "decoder"));
  CHECK(mentions(with("/added_tokens/0/lstrip", true), "lstrip"));
}

TEST_CASE("tokenizer.json: a custom Split regex works but cannot be named in TokenizerData") {
  json j = fixture();
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"] = json{{"String", " "}};
  auto tok = Tokenizer::from_hf_json(j.dump());
  CHECK(tok->data().pre.empty());
  // A literal " " split isolates each space: "a b" -> "a", " ", "b".
  CHECK(tok->encode("a b") == std::vector<int32_t>{'a', ' ', 'b'});
  CHECK(tok->decode(tok->encode("x  y.z")) == "x  y.z");
  CHECK_THROWS_AS(Tokenizer::from_data(tok->data()), Error);
}

TEST_CASE("tokenizer_config.json: specials resolve through the vocabulary") {
  json j = fixture();
  CHECK_THROWS_AS(Tokenizer::from_hf_json(j.dump(), "{\"eos_token\": \"<|nope|>\"}"), Error);
  CHECK_THROWS_AS(Tokenizer::from_hf_json(j.dump(), "{\"eos_token\": 5}"), Error);
  CHECK_THROWS_AS(Tokenizer::from_hf_json(j.dump(), "not json"), Error);
  CHECK_THROWS_AS(Tokenizer::from_hf_json(j.dump(), "{\"chat_template\": 3}"), Error);
  auto tok = Tokenizer::from_hf_json(
      j.dump(), R"({"eos_token": "<|turn_end|>", "bos_token": {"content": "<|role_start|>"},
      "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]})");
  CHECK(tok->eos_id() == 405);
  CHECK(tok->bos_id() == 403);
  CHECK(tok->data().chat_template == "D");
}

TEST_CASE("TokenizerData: inconsistent arrays are refused") {
  auto good = qwen2_bpe()->data();
  auto fails = [](megrez::TokenizerData d) {
    CHECK_THROWS_AS(Tokenizer::from_data(std::move(d)), Error);
  };
  {
    auto d = good;
    d.token_types.pop_back();
    fails(d);
  }
  {
    auto d = good;
    d.token_types[3] = 9;
    fails(d);
  }
  {
    auto d = good;
    d.eos_id = 407;
    fails(d);
  }
  {
    auto d = good;
    d.pre = "";
    fails(d);
  }
  {
    auto d = good;
    d.model = "bert";
    fails(d);
  }
  {
    auto d = good;
    d.merges.push_back("nope nope");
    fails(d);
  }
  {
    auto d = good;
    d.tokens.clear();
    d.token_types.clear();
    fails(d);
  }
  {
    auto d = good;
    d.scores = {1.0f};
    fails(d);
  }
}
