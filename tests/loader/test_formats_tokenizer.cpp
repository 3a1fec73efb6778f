// Tokenizers through Model::open: tokenizer.model (SentencePiece) or tokenizer.json +
// tokenizer_config.json in an HF directory, and their round trip through GGUF metadata.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "loader/formats/gguf_export.h"
#include "loader/formats/model.h"
#include "loader/synthetic/synthetic.h"
#include "test_formats_util.h"

using namespace megrez;
using formats_test::error_of;
using formats_test::TempDir;

namespace {

const std::string kSample = "hello the world, in the beginning\nGod created";

void check_same_tokenizer(const Tokenizer& a, const Tokenizer& b) {
  const TokenizerData &x = a.data(), &y = b.data();
  CHECK(x.model == y.model);
  CHECK(x.pre == y.pre);
  CHECK(x.tokens == y.tokens);
  CHECK(x.scores == y.scores);
  CHECK(x.token_types == y.token_types);
  CHECK(x.merges == y.merges);
  CHECK(x.spm_model == y.spm_model);
  CHECK(x.bos_id == y.bos_id);
  CHECK(x.eos_id == y.eos_id);
  CHECK(x.unk_id == y.unk_id);
  CHECK(x.pad_id == y.pad_id);
  CHECK(x.chat_template == y.chat_template);
  CHECK(a.encode(kSample) == b.encode(kSample));
  CHECK(a.encode("<|role_start|>user<|role_end|>hi<|turn_end|>") ==
        b.encode("<|role_start|>user<|role_end|>hi<|turn_end|>"));
}

std::unique_ptr<Model> via_gguf(const Model& m, const std::string& path) {
  GgufExportOptions opt;
  opt.matrix_type = DType::F16;
  export_gguf(m.config(), m.weights(), &m.tokenizer()->data(), path, opt);
  return Model::open(path);
}

}  // namespace

TEST_CASE("HF tokenizer.json: loaded with its chat template, and kept through GGUF") {
  TempDir dir;
  SyntheticOptions opt;
  opt.tokenizer = true;
  write_synthetic_hf(dir / "hf", synthetic_config(), opt);
  const auto hf = Model::open(dir / "hf");
  REQUIRE(hf->tokenizer());
  const Tokenizer& tok = *hf->tokenizer();
  CHECK(tok.vocab_size() == synthetic_bpe_vocab_size());
  CHECK(tok.data().model == "gpt2");
  CHECK(tok.data().chat_template.find("<|role_start|>") != std::string::npos);
  CHECK(tok.token_id("<|turn_end|>") == synthetic_bpe_vocab_size() - 1);
  CHECK(tok.token_id("Ġthe").has_value());
  const std::vector<int32_t> ids = tok.encode(kSample);
  CHECK(tok.decode(ids) == kSample);
  CHECK(ids.size() < kSample.size());  // the merges apply

  const auto gg = via_gguf(*hf, dir / "m.gguf");
  REQUIRE(gg->tokenizer());
  check_same_tokenizer(tok, *gg->tokenizer());

  write_synthetic_gguf(dir / "direct.gguf", synthetic_config(), DType::F16, opt);
  const auto direct = Model::open(dir / "direct.gguf");
  REQUIRE(direct->tokenizer());
  check_same_tokenizer(tok, *direct->tokenizer());
}

TEST_CASE("HF tokenizer.model: SentencePiece bytes and the config's chat template, kept through GGUF") {
  TempDir dir;
  ModelConfig cfg = synthetic_config();
  cfg.vocab_size = 1200;  // spm_kjv.model's vocabulary
  write_synthetic_hf(dir / "hf", cfg);
  const std::string spm_path = std::string(MEGREZ_SOURCE_DIR) + "/tests/data/tokenizers/spm_kjv.model";
  const auto spm = formats_test::read_bytes(spm_path);
  formats_test::write_bytes(dir / "hf/tokenizer.model", spm);
  const std::string chat = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}";
  formats_test::write_text(dir / "hf/tokenizer_config.json", nlohmann::json{{"chat_template", chat}}.dump());
  const auto hf = Model::open(dir / "hf");
  REQUIRE(hf->tokenizer());
  const TokenizerData& data = hf->tokenizer()->data();
  CHECK(data.model == "llama");
  CHECK(data.spm_model == std::string(spm.begin(), spm.end()));
  CHECK(data.chat_template == chat);
  CHECK(hf->tokenizer()->decode(hf->tokenizer()->encode(kSample)) == kSample);

  const auto gg = via_gguf(*hf, dir / "m.gguf");
  REQUIRE(gg->tokenizer());
  check_same_tokenizer(*hf->tokenizer(), *gg->tokenizer());

  // A chat template given as HF's list of named templates.
  const nlohmann::json named = {
      {"chat_template", {{{"name", "tool_use"}, {"template", "x"}}, {{"name", "default"}, {"template", chat}}}}};
  formats_test::write_text(dir / "hf/tokenizer_config.json", named.dump());
  CHECK(Model::open(dir / "hf")->tokenizer()->data().chat_template == chat);
  formats_test::write_text(dir / "hf/tokenizer_config.json", R"({"chat_template": 5})");
  CHECK(error_of([&] { Model::open(dir / "hf"); }).find("chat_template must be a string") != std::string::npos);
}

TEST_CASE("tokenizer errors name the file; a tokenizer larger than the vocabulary is refused") {
  TempDir dir;
  SyntheticOptions opt;
  opt.tokenizer = true;
  write_synthetic_hf(dir.path(), synthetic_config(), opt);
  formats_test::write_text(dir / "tokenizer.json", "{\"model\": ");
  CHECK(error_of([&] { Model::open(dir.path()); }).find(dir / "tokenizer.json") == 0);

  ModelConfig small = synthetic_config();
  small.vocab_size = 200;
  small.eos_token_id = -1;
  TempDir dir2;
  write_synthetic_hf(dir2.path(), small);
  formats_test::write_text(dir2 / "tokenizer.json", synthetic_bpe_tokenizer_json());
  CHECK(error_of([&] { Model::open(dir2.path()); }) ==
        dir2.path() + ": the tokenizer has 276 tokens but the model's vocab_size is 200");
}
