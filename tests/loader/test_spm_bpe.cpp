// The native SentencePiece BPE encoder (loader/tokenizer/spm_bpe.cpp, what builds without
// libsentencepiece use, e.g. Android) against libsentencepiece on the tiny model's tokenizer:
// the same ids for held-out text, every special-token mode, odd whitespace, CJK, emoji and
// invalid UTF-8.
#include <doctest/doctest.h>

#include <sstream>

#include "loader/error.h"
#include "loader/tokenizer/spm_encoder.h"
#include "tokenizer_fixtures.h"

using namespace tokenizer_test;
using megrez::detail::make_native_spm_encoder;
using megrez::detail::make_spm_encoder;

namespace {

std::vector<std::string> held_out_lines(size_t limit) {
  std::istringstream in(read_file(kTinyModelDir + "heldout.txt"));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line) && lines.size() < limit;) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("native SentencePiece BPE encodes exactly as libsentencepiece (tiny model)") {
  const std::string model = read_file(kTinyModelDir + "tokenizer.model");
  const megrez::spm_proto::Model proto = megrez::spm_proto::parse(model);
  REQUIRE(proto.model_type == 2);
  CHECK(proto.byte_fallback);
  CHECK(proto.normalizer_name == "identity");
  const auto native = make_native_spm_encoder(proto);
  const auto library = make_spm_encoder(model, proto);  // this build links libsentencepiece

  std::vector<std::string> texts = held_out_lines(400);
  REQUIRE(texts.size() == 400);
  for (const char* text : {"", " ", "   ", "a", "  leading and trailing  ", "tab\there\nnew line\r\n",
                           "In the beginning God created the heaven and the earth.",
                           "\xe4\xbd\xa0\xe5\xa5\xbd\xef\xbc\x8c\xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x99\x82",  // 你好，世界 🙂
                           "<|role_start|>user<|role_end|>hi<|turn_end|>", "<|turn_end|><|turn_end|>x<|turn_",
                           "<|eos|> and <|unk|> <0x41>", "digits 1234567890 3.14",
                           "\xff\xfe broken \xc3 utf-8 \xe4\xbd", "\xed\xa0\x80 surrogate, \xc0\xaf overlong",
                           "\x01\x02\x7f control", "\xe2\x96\x81 the space symbol itself"}) {
    texts.emplace_back(text);
  }
  std::string long_text;
  for (const std::string& t : held_out_lines(40)) long_text += t + "\n";
  texts.push_back(long_text);

  size_t compared = 0;
  for (const std::string& text : texts) {
    for (bool starts_input : {true, false}) {
      for (bool plain : {true, false}) {
        CAPTURE(text);
        CAPTURE(starts_input);
        CAPTURE(plain);
        std::vector<int32_t> want, got;
        library->encode(text, starts_input, plain, want);
        native->encode(text, starts_input, plain, got);
        CHECK(got == want);
        ++compared;
      }
    }
  }
  CHECK(compared == texts.size() * 4);
}

TEST_CASE("native SentencePiece encoder refuses what it does not implement") {
  const std::string unigram = read_file(kDir + "spm_kjv.model");  // model_type unigram
  try {
    make_native_spm_encoder(megrez::spm_proto::parse(unigram));
    FAIL("a unigram model was accepted");
  } catch (const megrez::Error& e) {
    CHECK(std::string(e.what()).find("a unigram model") != std::string::npos);
    CHECK(e.kind() == megrez::ErrorKind::Model);
  }
}
