// libFuzzer target for the tokenizers, the tokenizer.json / SentencePiece parsers and the
// chat template renderer. The first input byte picks what to fuzz, the rest is the payload:
//   0  encode/decode with the BPE fixture: decode(encode(s)) == s for every input (byte-level
//      BPE represents any bytes), decode of arbitrary ids never crashes
//   1  the same with the SentencePiece fixture: the round trip must hold for valid UTF-8
//   2  Tokenizer::from_hf_json on arbitrary text: loads or throws megrez::Error; a tokenizer
//      that loads round-trips a few strings, and so does its from_data copy
//   3  SentencePiece model bytes: spm_proto::parse and Tokenizer::from_sentencepiece
//   4  chat template text: parse and render, or throw jinja::Unsupported / megrez::Error
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "loader/chat/chat_template.h"
#include "loader/error.h"
#include "loader/tokenizer/byte_level.h"
#include "loader/tokenizer/spm_proto.h"
#include "loader/tokenizer/tokenizer.h"

namespace {

const megrez::Tokenizer& spm() {
  static auto t = megrez::Tokenizer::from_sentencepiece(fuzz::read_fixture("spm_kjv.model"));
  return *t;
}

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_tokenizer: %s\n", what);
    std::abort();
  }
}

// Decodes the payload read as little-endian ids (folded into the vocabulary).
void decode_arbitrary_ids(const megrez::Tokenizer& t, std::string_view payload) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i + 4 <= payload.size(); i += 4) {
    uint32_t v = uint32_t(uint8_t(payload[i])) | uint32_t(uint8_t(payload[i + 1])) << 8 |
                 uint32_t(uint8_t(payload[i + 2])) << 16 | uint32_t(uint8_t(payload[i + 3])) << 24;
    ids.push_back(int32_t(v % uint32_t(t.vocab_size())));
  }
  (void)t.decode(ids);
  for (int32_t id : ids) (void)t.token_text(id);
}

void round_trip(const megrez::Tokenizer& t, std::string_view text, bool must_hold) {
  for (bool allow_special : {true, false}) {
    std::string back = t.decode(t.encode(text, allow_special));
    if (must_hold) check(back == text, "decode(encode(s)) != s");
  }
}

void fuzz_hf_json(std::string_view payload) {
  std::unique_ptr<megrez::Tokenizer> t;
  try {
    t = megrez::Tokenizer::from_hf_json(payload);
  } catch (const megrez::Error&) {
    return;
  }
  for (const char* s :
       {"Hello world", "a  \n\n  b 12345", "<|turn_end|>x", "\xE4\xBD\xA0\xF0\x9F\x99\x82"})
    round_trip(*t, s, true);
  if (t->data().pre.empty()) return;
  auto copy = megrez::Tokenizer::from_data(t->data());
  check(copy->encode("Hello <|eos|> world") == t->encode("Hello <|eos|> world"),
        "from_data changed encoding");
}

void fuzz_spm_model(std::string_view payload) {
  try {
    (void)megrez::spm_proto::parse(payload);
    (void)megrez::spm_proto::with_user_defined_unused(payload);
  } catch (const megrez::Error&) {
  }
  try {
    auto t = megrez::Tokenizer::from_sentencepiece(payload);
    round_trip(*t, "In the beginning", false);
  } catch (const megrez::Error&) {
  }
}

void fuzz_template(std::string_view payload) {
  using namespace megrez::jinja;
  Object message = {{"role", Value("user")}, {"content", Value("Hi {{ x }}")}};
  Object context = {{"messages", Value(Array{Value(message), Value(message)})},
                    {"add_generation_prompt", Value(true)},
                    {"bos_token", Value("<s>")}};
  try {
    Template(payload).render(context);
  } catch (const Unsupported&) {
  } catch (const megrez::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view payload(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0:
      round_trip(fuzz::bpe_fixture(), payload, true);
      decode_arbitrary_ids(fuzz::bpe_fixture(), payload);
      break;
    case 1:
      // SentencePiece round-trips valid UTF-8 except NUL and its own whitespace meta-symbol
      // U+2581 "\xE2\x96\x81", which libsentencepiece always decodes back to a space.
      round_trip(spm(), payload,
                 megrez::utf8::is_valid(payload) && payload.find('\0') == std::string_view::npos &&
                     payload.find("\xE2\x96\x81") == std::string_view::npos);
      decode_arbitrary_ids(spm(), payload);
      break;
    case 2:
      fuzz_hf_json(payload);
      break;
    case 3:
      fuzz_spm_model(payload);
      break;
    case 4:
      fuzz_template(payload);
      break;
  }
  return 0;
}
