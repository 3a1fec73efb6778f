#pragma once
// Fixture files of tests/data/tokenizers/ (written by make_spm.py and make_expected.py,
// independent of the C++ tokenizers) and helpers shared by the tokenizer and chat tests.
#include <doctest/doctest.h>

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "loader/tokenizer/tokenizer.h"

namespace tokenizer_test {

inline const std::string kDir = std::string(MEGREZ_SOURCE_DIR) + "/tests/data/tokenizers/";
inline const std::string kTinyModelDir = std::string(MEGREZ_SOURCE_DIR) + "/models/megrez2-tiny/";

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing fixture " << path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline nlohmann::json read_json(const std::string& path) {
  return nlohmann::json::parse(read_file(path));
}

inline std::unique_ptr<megrez::Tokenizer> qwen2_bpe() {
  return megrez::Tokenizer::from_hf_json(read_file(kDir + "bpe_qwen2.tokenizer.json"),
                                         read_file(kDir + "bpe_qwen2.tokenizer_config.json"));
}

inline std::unique_ptr<megrez::Tokenizer> gpt2_bpe() {
  return megrez::Tokenizer::from_hf_json(read_file(kDir + "bpe_gpt2.tokenizer.json"));
}

inline std::unique_ptr<megrez::Tokenizer> kjv_spm() {
  return megrez::Tokenizer::from_sentencepiece(read_file(kDir + "spm_kjv.model"));
}

inline std::vector<int32_t> ids_of(const nlohmann::json& array) {
  return array.get<std::vector<int32_t>>();
}

// Strings every tokenizer must round-trip byte for byte (decode(encode(s)) == s).
inline const std::vector<std::string> kRoundTripTexts = {
    "",
    " ",
    "  ",
    "\n",
    "\r\n",
    "\t",
    "a",
    "Hello world",
    "  leading and trailing  ",
    "In the beginning God created the heaven and the earth.",
    "你好，世界",
    "日本語のテキスト",
    "한국어 텍스트",
    "🙂🙃👍🏽 emoji",
    "👨‍👩‍👧 family",
    "naïve café Ünïcödé",
    "e\xCC\x81 combining",
    "Привет, мир!",
    "مرحبا بالعالم",
    "x = f(y) + 3.14159 * z[2];\n\tif (a != b) { return; }",
    "12345678901234567890",
    "I'll say DON'T we're they've you'd",
    "a  \n\n  b",
    "mixed\u00A0nbsp\u3000ideographic",
    "<|role_start|>user<|role_end|>hi<|turn_end|>",
    "<|eos|>",
    "<|turn_end",
    std::string("nul\0byte", 8),
    "tabs\t\t\tand\n\n\nnewlines\r\r"};

}  // namespace tokenizer_test
