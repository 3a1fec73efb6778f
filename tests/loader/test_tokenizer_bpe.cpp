// Byte-level BPE from tokenizer.json. Expected ids come from make_expected.py (a hand-written
// pre-tokenizer scanner and the classic BPE loop in Python); expected pre-tokenizer pieces
// are written out by hand from the Qwen2 / GPT-2 regexes.
#include <doctest/doctest.h>

#include "loader/error.h"
#include "loader/tokenizer/byte_level.h"
#include "loader/tokenizer/pretokenizer.h"
#include "tokenizer_fixtures.h"

using megrez::Error;
using megrez::PreTokenizer;
using megrez::Tokenizer;
using namespace tokenizer_test;

namespace {

std::vector<std::string> split(const PreTokenizer& pre, std::string_view text) {
  std::vector<std::string> out;
  for (auto piece : pre.split(text)) out.emplace_back(piece);
  return out;
}

using Pieces = std::vector<std::string>;

}  // namespace

TEST_CASE("byte-level alphabet: GPT-2's mapping and its inverse") {
  using namespace megrez::byte_level;
  CHECK(byte_to_codepoint(' ') == U'\u0120');   // "Ġ"
  CHECK(byte_to_codepoint('\n') == U'\u010A');  // "Ċ"
  CHECK(byte_to_codepoint('A') == U'A');
  CHECK(byte_to_codepoint(0x00) == U'\u0100');
  CHECK(byte_to_codepoint(0xAD) == U'\u0143');  // the last of the 68 remapped bytes
  CHECK(byte_to_codepoint(0xA0) == U'\u0142');  // "ł", as in "你" = E4 BD A0 -> "ä½ł"
  for (int b = 0; b < 256; ++b)
    CHECK(codepoint_to_byte(byte_to_codepoint(uint8_t(b))) == uint8_t(b));
  CHECK_FALSE(codepoint_to_byte(U'\u0144').has_value());
  CHECK_FALSE(codepoint_to_byte(U' ').has_value());
  CHECK(encode_bytes("a b\n") ==
        "a\xC4\xA0"
        "b\xC4\x8A");
  CHECK(decode_to_bytes("a\xC4\xA0"
                        "b\xC4\x8A") == "a b\n");
}

TEST_CASE("Qwen2 pre-tokenizer splits exactly as the regex does") {
  PreTokenizer pre({std::string(megrez::kQwen2Pattern)});
  CHECK(split(pre, "Hello world") == Pieces{"Hello", " world"});
  CHECK(split(pre, "I'll DON'T") == Pieces{"I", "'ll", " DON", "'T"});
  CHECK(split(pre, "'s'S 're") == Pieces{"'s", "'S", " '", "re"});
  CHECK(split(pre, "a  \n\n  b") == Pieces{"a", "  \n\n", " ", " b"});
  CHECK(split(pre, "12345") == Pieces{"1", "2", "3", "4", "5"});
  CHECK(split(pre, "x   ") == Pieces{"x", "   "});
  CHECK(split(pre, "1.5 + 2.25!?") == Pieces{"1", ".", "5", " +", " ", "2", ".", "2", "5", "!?"});
  CHECK(split(pre, "你好世界") == Pieces{"你好世界"});
  CHECK(split(pre, "hello\r\n\r\nworld") == Pieces{"hello", "\r\n\r\n", "world"});
  CHECK(split(pre, " ...\n\nx") == Pieces{" ...\n\n", "x"});
  CHECK(split(pre, "\tindent") == Pieces{"\tindent"});
  CHECK(split(pre, "a\u3000b") == Pieces{"a", "\u3000b"});  // U+3000 is \s and not a letter
  CHECK(split(pre, "caf\u00e9s") == Pieces{"caf\u00e9s"});
  CHECK(split(pre,
              "a\xFF"
              "b") == Pieces{"a", "\xFF", "b"});  // invalid UTF-8 falls between matches
  CHECK(split(pre, "").empty());
}

TEST_CASE("GPT-2 and Llama-3 pre-tokenizers") {
  PreTokenizer gpt2({std::string(megrez::kGpt2Pattern)});
  CHECK(split(gpt2, "Hello  world's") == Pieces{"Hello", " ", " world", "'s"});
  CHECK(split(gpt2, "DON'T 12345") == Pieces{"DON", "'", "T", " 12345"});
  CHECK(split(gpt2, "a\n\nb") == Pieces{"a", "\n", "\n", "b"});
  PreTokenizer llama3({std::string(megrez::kLlama3Pattern)});
  CHECK(split(llama3, "1234567") == Pieces{"123", "456", "7"});
  CHECK(split(llama3, "DON'T") == Pieces{"DON", "'T"});
}

TEST_CASE("pre-tokenizer names round-trip to patterns") {
  CHECK(megrez::pre_tokenizer_name({std::string(megrez::kQwen2Pattern)}) == "qwen2");
  CHECK(megrez::pre_tokenizer_name({std::string(megrez::kLlama3Pattern)}) == "llama-bpe");
  CHECK(megrez::pre_tokenizer_name({"x+"}).empty());
  CHECK(megrez::pre_tokenizer_patterns("default") ==
        std::vector<std::string>{std::string(megrez::kGpt2Pattern)});
  CHECK(megrez::pre_tokenizer_patterns("megrez") ==
        std::vector<std::string>{std::string(megrez::kQwen2Pattern)});
  CHECK_THROWS_AS(megrez::pre_tokenizer_patterns("falcon"), Error);
  CHECK_THROWS_AS(PreTokenizer({"(unclosed"}), Error);
}

TEST_CASE("BPE fixture: exact ids for the Qwen2 and GPT-2 pre-tokenizers") {
  nlohmann::json expected = read_json(kDir + "bpe_expected.json");
  for (const char* flavour : {"qwen2", "gpt2"}) {
    auto tok = std::string(flavour) == "qwen2" ? qwen2_bpe() : gpt2_bpe();
    for (const auto& c : expected[flavour]) {
      std::string text = c["text"];
      bool allow = c["allow_special"];
      INFO(flavour << " text=\"" << text << "\" allow_special=" << allow);
      auto ids = tok->encode(text, allow);
      CHECK(ids == ids_of(c["ids"]));
      CHECK(tok->decode(ids) == text);
    }
  }
}

TEST_CASE("BPE: hand-checked encodings") {
  auto tok = qwen2_bpe();
  // "aaaa" is made from two "aa": 1001 a's are 250 x "aaaa" and one "a".
  auto ids = tok->encode(std::string(1001, 'a'));
  REQUIRE(ids.size() == 251);
  CHECK(ids[0] == *tok->token_id("aaaa"));
  CHECK(ids[249] == *tok->token_id("aaaa"));
  CHECK(ids[250] == 'a');  // byte tokens are ids 0..255 in byte order
  // "abc": merge "b c" ranks before "a b", so the result is a + bc, not ab + c.
  CHECK(tok->encode("abc") == std::vector<int32_t>{'a', *tok->token_id("bc")});
  CHECK(tok->encode("你好") ==
        std::vector<int32_t>{*tok->token_id("\xC3\xA4\xC2\xBD\xC5\x82\xC3\xA5\xC2\xA5\xC2\xBD")});
}

TEST_CASE("BPE: special tokens are single ids only when allowed") {
  auto tok = qwen2_bpe();
  CHECK(tok->encode("<|turn_end|>") == std::vector<int32_t>{405});
  CHECK(tok->encode("<|eos|><|role_start|>") == std::vector<int32_t>{400, 403});
  auto plain = tok->encode("<|turn_end|>", false);
  CHECK(plain.size() > 1);
  for (int32_t id : plain) CHECK(id < 300);
  CHECK(tok->decode(plain) == "<|turn_end|>");
  // A non-special added token is matched either way.
  CHECK(tok->encode("<|note|>", false) == std::vector<int32_t>{406});
  CHECK(tok->is_special(405));
  CHECK_FALSE(tok->is_special(406));
  CHECK_FALSE(tok->is_special(258));
  CHECK(tok->token_text(405) == "<|turn_end|>");
  CHECK(tok->token_text(*tok->token_id("\xC4\xA0world")) == " world");
  CHECK(tok->token_text(0xE4) == "\xE4");  // half a character: streaming code joins bytes
  CHECK(tok->token_id("<|role_end|>") == 404);
  CHECK_FALSE(tok->token_id("[PAD350]").has_value());  // placeholders of holes are not tokens
}

TEST_CASE("BPE: round trips, including bytes that are not valid UTF-8") {
  auto tok = qwen2_bpe();
  std::vector<std::string> texts = kRoundTripTexts;
  for (std::string bad : {"\xFF", "\xC3",
                          "a\x80"
                          "b",
                          "\xED\xA0\x80", "\xF0\x9F\x99", "\xC0\xAF"})
    texts.push_back(bad);
  for (const auto& text : texts) {
    INFO("text=\"" << text << "\"");
    CHECK(tok->decode(tok->encode(text)) == text);
    CHECK(tok->decode(tok->encode(text, false)) == text);
    std::string streamed;
    for (int32_t id : tok->encode(text)) streamed += tok->token_text(id);
    CHECK(streamed == text);
  }
}

TEST_CASE("BPE: TokenizerData describes the fixture and from_data rebuilds it") {
  auto tok = qwen2_bpe();
  const auto& d = tok->data();
  CHECK(d.model == "gpt2");
  CHECK(d.pre == "qwen2");
  REQUIRE(d.tokens.size() == 407);
  CHECK(tok->vocab_size() == 407);
  CHECK(d.tokens[400] == "<|eos|>");
  CHECK(d.token_types[400] == 3);
  CHECK(d.token_types[406] == 4);
  CHECK(d.token_types[32] == 1);
  CHECK(d.tokens[350] == "[PAD350]");
  CHECK(d.token_types[350] == 5);
  CHECK(d.scores.empty());
  CHECK(d.merges.front() == "\xC4\xA0 t");
  CHECK(d.eos_id == 400);
  CHECK(d.unk_id == 401);
  CHECK(d.pad_id == 402);
  CHECK(d.bos_id == -1);
  CHECK(d.chat_template.find("<|role_start|>") != std::string::npos);
  CHECK(tok->decode(std::vector<int32_t>{350}).empty());

  auto rebuilt = Tokenizer::from_data(d);
  nlohmann::json expected = read_json(kDir + "bpe_expected.json");
  for (const auto& c : expected["qwen2"])
    CHECK(rebuilt->encode(c["text"].get<std::string>(), c["allow_special"]) == ids_of(c["ids"]));
  CHECK(gpt2_bpe()->data().pre == "gpt2");
  CHECK(gpt2_bpe()->data().eos_id == 400);  // no config: "<|eos|>" by name
}

TEST_CASE("BPE: decode rejects ids outside the vocabulary") {
  auto tok = qwen2_bpe();
  CHECK_THROWS_AS(tok->decode(std::vector<int32_t>{407}), Error);
  CHECK_THROWS_AS(tok->decode(std::vector<int32_t>{-1}), Error);
  CHECK_THROWS_AS(tok->token_text(100000), Error);
}

TEST_CASE("BPE: ignore_merges takes a pre-token that is itself in the vocabulary") {
  nlohmann::json j = read_json(kDir + "bpe_qwen2.tokenizer.json");
  j["model"]["vocab"]["abc"] = 407;  // merges alone make "abc" -> a + bc
  const int32_t bc = 286;            // the id of "bc" in the fixture
  CHECK(Tokenizer::from_hf_json(j.dump())->encode("abc") == std::vector<int32_t>{'a', bc});
  j["model"]["ignore_merges"] = true;
  auto tok = Tokenizer::from_hf_json(j.dump());
  CHECK(tok->encode("abc") == std::vector<int32_t>{407});
  CHECK(tok->encode("abcd") ==
        std::vector<int32_t>{'a', bc, 'd'});  // "abcd" is not: merged as usual
  // from_data cannot carry the flag except through the Llama-3 pre-tokenizer, which implies it.
  auto data = tok->data();
  data.pre = "llama-bpe";
  CHECK(Tokenizer::from_data(data)->encode("abc") == std::vector<int32_t>{407});
}
