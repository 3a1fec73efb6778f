// SentencePiece tokenizer. Expected ids come from the python sentencepiece module
// (make_expected.py), an independent front end over the same model file.
#include <doctest/doctest.h>

#include <filesystem>

#include "loader/error.h"
#include "loader/tokenizer/spm_proto.h"
#include "tokenizer_fixtures.h"

using megrez::Error;
using megrez::Tokenizer;
using namespace tokenizer_test;

TEST_CASE("SPM fixture: exact ids from python sentencepiece, exact round trips") {
  auto tok = kjv_spm();
  for (const auto& c : read_json(kDir + "spm_expected.json")) {
    std::string text = c["text"];
    INFO("text=\"" << text << "\"");
    auto ids = tok->encode(text);
    CHECK(ids == ids_of(c["ids"]));
    CHECK(tok->decode(ids) == text);
    // The pieces python printed are the vocabulary strings of those ids.
    auto pieces = c["pieces"].get<std::vector<std::string>>();
    REQUIRE(pieces.size() == ids.size());
    for (size_t i = 0; i < ids.size(); ++i) CHECK(tok->data().tokens[ids[i]] == pieces[i]);
  }
}

TEST_CASE("SPM: TokenizerData of the fixture") {
  auto tok = kjv_spm();
  const auto& d = tok->data();
  CHECK(d.model == "llama");
  REQUIRE(d.tokens.size() == 1200);
  CHECK(d.scores.size() == 1200);
  CHECK(d.spm_model == read_file(kDir + "spm_kjv.model"));
  // make_spm.py: 0 <unk>, 1 <s>, 2 </s>, 3..6 the Megrez specials, 7..262 the bytes.
  CHECK(d.tokens[0] == "<unk>");
  CHECK(d.token_types[0] == 2);
  CHECK(d.token_types[1] == 3);
  CHECK(d.token_types[2] == 3);
  CHECK(d.tokens[6] == "<|turn_end|>");
  for (int id = 3; id <= 6; ++id) CHECK(d.token_types[id] == 4);
  CHECK(d.tokens[7] == "<0x00>");
  for (int id = 7; id <= 262; ++id) CHECK(d.token_types[id] == 6);
  CHECK(d.token_types[263] == 1);
  CHECK(d.unk_id == 0);
  CHECK(d.bos_id == 1);
  CHECK(d.eos_id == 3);  // the "<|eos|>" piece, not SentencePiece's </s>
  CHECK(d.pad_id == -1);
  CHECK(tok->eos_id() == 3);
}

TEST_CASE("SPM: specials are single ids when allowed, plain text otherwise") {
  auto tok = kjv_spm();
  for (int id = 3; id <= 6; ++id) {
    std::string special = tok->data().tokens[id];
    auto ids = tok->encode("x" + special + "y");
    CHECK(std::count(ids.begin(), ids.end(), id) == 1);
    auto plain = tok->encode("x" + special + "y", false);
    for (int32_t p : plain) CHECK((p < 3 || p > 6));
    CHECK(tok->decode(plain) == "x" + special + "y");
    CHECK(tok->is_special(id));
  }
  // Control pieces: SentencePiece itself never matches them, the tokenizer does.
  auto ids = tok->encode("a</s>b<s>");
  CHECK(std::count(ids.begin(), ids.end(), 2) == 1);
  CHECK(ids.back() == 1);
  CHECK(tok->decode(ids) == "a</s>b<s>");
  // After a control piece no dummy-prefix space is added: "b" encodes as in the middle of text.
  auto b_alone = tok->encode("</s>b");
  CHECK(b_alone.front() == 2);
  CHECK(tok->data().tokens[b_alone[1]].rfind("\xE2\x96\x81", 0) != 0);
  auto no_special = tok->encode("a</s>b", false);
  CHECK(std::count(no_special.begin(), no_special.end(), 2) == 0);
  CHECK(tok->is_special(1));
  CHECK_FALSE(tok->is_special(0));
  CHECK_FALSE(tok->is_special(300));
}

TEST_CASE("SPM: streaming text of single tokens") {
  auto tok = kjv_spm();
  CHECK(tok->token_text(*tok->token_id("\xE2\x96\x81the")) == " the");
  CHECK(tok->token_text(7 + 0xE4) == "\xE4");
  CHECK(tok->token_text(6) == "<|turn_end|>");
  CHECK(tok->token_text(0) == " \xE2\x81\x87 ");
  std::string text = "And God said, 你好 🙂";
  std::string streamed;
  for (int32_t id : tok->encode(text)) streamed += tok->token_text(id);
  CHECK(streamed == " " + text);  // the dummy prefix shows in streamed text
  CHECK_THROWS_AS(tok->token_text(1200), Error);
}

TEST_CASE("SPM: round trips and from_data") {
  auto tok = kjv_spm();
  auto rebuilt = Tokenizer::from_data(tok->data());
  for (const auto& text : kRoundTripTexts) {
    INFO("text=\"" << text << "\"");
    auto ids = tok->encode(text);
    CHECK(tok->decode(ids) == text);
    CHECK(tok->decode(tok->encode(text, false)) == text);
    CHECK(rebuilt->encode(text) == ids);
    CHECK(rebuilt->encode(text, false) == tok->encode(text, false));
  }
  for (std::string bad : {"\xFF",
                          "a\x80"
                          "b",
                          "\xF0\x9F\x99"})
    CHECK_NOTHROW(tok->encode(bad));
}

TEST_CASE("SPM: broken models and inconsistent data are refused") {
  CHECK_THROWS_AS(Tokenizer::from_sentencepiece(""), Error);
  CHECK_THROWS_AS(Tokenizer::from_sentencepiece("not a model"), Error);
  std::string model = read_file(kDir + "spm_kjv.model");
  CHECK_THROWS_AS(Tokenizer::from_sentencepiece(model.substr(0, model.size() / 2)), Error);
  auto good = kjv_spm()->data();
  auto fails = [](megrez::TokenizerData d) {
    CHECK_THROWS_AS(Tokenizer::from_data(std::move(d)), Error);
  };
  {
    auto d = good;
    d.spm_model.clear();
    fails(d);
  }
  {
    auto d = good;
    d.tokens[300] = "changed";
    fails(d);
  }
  {
    auto d = good;
    d.token_types[5] = 1;
    fails(d);
  }
  {
    auto d = good;
    d.tokens.pop_back();
    fails(d);
  }
  {
    auto d = good;
    d.eos_id = 5000;
    fails(d);
  }
}

TEST_CASE("SPM proto: the rewritten models differ only where intended") {
  std::string model = read_file(kDir + "spm_kjv.model");
  auto original = megrez::spm_proto::parse(model);
  CHECK(original.add_dummy_prefix);
  CHECK_FALSE(original.remove_extra_whitespaces);
  auto no_prefix = megrez::spm_proto::parse(megrez::spm_proto::without_dummy_prefix(model));
  CHECK_FALSE(no_prefix.add_dummy_prefix);
  CHECK(no_prefix.pieces.size() == original.pieces.size());
  auto plain = megrez::spm_proto::parse(megrez::spm_proto::with_user_defined_unused(model));
  REQUIRE(plain.pieces.size() == original.pieces.size());
  for (size_t i = 0; i < plain.pieces.size(); ++i) {
    CHECK(plain.pieces[i].piece == original.pieces[i].piece);
    CHECK(plain.pieces[i].score == original.pieces[i].score);
    CHECK(plain.pieces[i].type == (original.pieces[i].type == 4 ? 5 : original.pieces[i].type));
  }
  CHECK_THROWS_AS(megrez::spm_proto::parse("\x0A\x05"
                                           "ab"),
                  Error);  // length past the end
  CHECK_THROWS_AS(megrez::spm_proto::parse("\x08\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x01"),
                  Error);
}

TEST_CASE("tiny model tokenizer: specials are single tokens, round trips hold") {
  std::string path = kTinyModelDir + "tokenizer.model";
  REQUIRE_MESSAGE(std::filesystem::exists(path), "the bundled tiny model ships " << path);
  auto tok = Tokenizer::from_sentencepiece(read_file(path));
  const auto& d = tok->data();
  CHECK(d.bos_id == -1);
  REQUIRE(tok->token_id("<|eos|>").has_value());
  CHECK(tok->eos_id() == *tok->token_id("<|eos|>"));
  for (const char* special :
       {"<|eos|>", "<|pad|>", "<|role_start|>", "<|role_end|>", "<|turn_end|>"}) {
    INFO(special);
    auto id = tok->token_id(special);
    REQUIRE(id.has_value());
    CHECK(tok->is_special(*id));
    CHECK(tok->encode(special) == std::vector<int32_t>{*id});
    CHECK(tok->encode(std::string("Amen.") + special + "\nAnd") == [&] {
      auto v = tok->encode("Amen.");
      v.push_back(*id);
      auto rest = tok->encode("\nAnd");
      v.insert(v.end(), rest.begin(), rest.end());
      return v;
    }());
    auto plain = tok->encode(special, false);
    CHECK(std::find(plain.begin(), plain.end(), *id) == plain.end());
    CHECK(tok->decode(plain) == special);
  }
  std::string heldout = read_file(kTinyModelDir + "heldout.txt");
  CHECK(tok->decode(tok->encode(heldout)) == heldout);
  for (const auto& text : kRoundTripTexts) {
    INFO("text=\"" << text << "\"");
    CHECK(tok->decode(tok->encode(text)) == text);
  }
}
