// The tiny model in every weight format the engine runs (the bf16 HF directory as shipped,
// and GGUF files written by loader/formats/gguf_export.h as f32, f16, bf16, q8_0 and q4_0): logits
// against the CPU reference on the very same file, and the greedy continuation of a fixed
// prompt. The GPU decodes quantized blocks to exactly the values the reference decodes, so
// the 1e-3 tolerance of the f32 tests holds for every format and the greedy tokens must be
// identical to the reference's. Where the format stores the bf16 weights exactly (f32, bf16)
// the tokens must also be the golden ones the PyTorch trainer wrote (golden/golden.json).
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "common/gpu_fixture.h"
#include "engine/engine_test_util.h"
#include "loader/formats/gguf_export.h"
#include "loader/reference/reference_forward.h"
#include "runtime/engine/device_weights.h"
#include "runtime/engine/sampler.h"
#include "tests/loader/test_reference_fixture.h"

using namespace megrez;
using namespace megrez::test;

namespace {

constexpr double kTolerance = 1e-3;
constexpr size_t kGreedyTokens = 16;

// Greedy continuation by the reference: argmax of the last logits, fed back.
std::vector<int32_t> reference_greedy(ReferenceForward& ref, const std::vector<int32_t>& prompt, size_t n,
                                      size_t vocab) {
  std::vector<float> logits = ref.forward(prompt);
  std::vector<int32_t> out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(argmax(std::span<const float>(logits).last(vocab)));
    logits = ref.append(out.back());
  }
  return out;
}

// Greedy continuation by the engine, through the GPU argmax after the first token.
std::vector<int32_t> engine_greedy(Engine& engine, const std::vector<int32_t>& prompt, size_t n) {
  std::vector<int32_t> out = {argmax(engine.prefill(prompt))};
  while (out.size() < n) out.push_back(engine.decode_greedy(out.back()));
  return out;
}

}  // namespace

TEST_CASE_FIXTURE(GpuTest, "tiny model in every weight format: logits match the reference, greedy text is golden") {
  const nlohmann::json golden =
      nlohmann::json::parse(reference_test::read_text(kTinyModelDir + "/golden/golden.json"));
  const nlohmann::json& first = golden.at("prompts").at(0);
  const std::string prompt_text = first.at("prompt").get<std::string>();
  const std::vector<int32_t> golden_ids = first.at("greedy_ids").get<std::vector<int32_t>>();
  REQUIRE(golden_ids.size() >= kGreedyTokens);

  auto source = Model::open(kTinyModelDir);
  REQUIRE(source->tokenizer() != nullptr);
  TempDir tmp("formats");
  struct Case {
    std::string name;
    std::string path;
    bool exact_bf16;  // stores the shipped bf16 values exactly
    bool fused_qkv = true;  // wq, wk, wv share a format: one matrix, one product
  };
  std::vector<Case> cases = {{"hf bf16", kTinyModelDir, true}};
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0}) {
    GgufExportOptions options;
    options.matrix_type = t;
    const std::string path = tmp.path(std::string("tiny-") + dtype_name(t) + ".gguf");
    export_gguf(source->config(), source->weights(), &source->tokenizer()->data(), path, options);
    cases.push_back({std::string("gguf ") + dtype_name(t), path, t == DType::F32 || t == DType::BF16});
  }
  {  // q8_0 with every attn_k in f16: q, k and v come from three products into the qkv rows
    GgufExportOptions options;
    options.matrix_type = DType::Q8_0;
    for (int64_t i = 0; i < source->config().num_hidden_layers; ++i) {
      options.tensor_types["blk." + std::to_string(i) + ".attn_k.weight"] = DType::F16;
    }
    const std::string path = tmp.path("tiny-q8_0-k-f16.gguf");
    export_gguf(source->config(), source->weights(), &source->tokenizer()->data(), path, options);
    cases.push_back({"gguf q8_0, attn_k f16", path, false, false});
  }

  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto model = Model::open(c.path);
    const size_t V = size_t(model->config().vocab_size);
    ReferenceForward ref(model->config(), model->weights());
    CHECK(DeviceWeights(ctx, model->config(), model->weights()).layers[0].wqkv.has_value() == c.fused_qkv);
    auto engine = load_engine(c.path, engine_options(128, KvCacheType::F32, 8));

    // The prompt through the tokenizer the file carries (GGUF embeds it).
    const std::vector<int32_t> prompt = engine->tokenize(prompt_text);
    CHECK(prompt == first.at("ids").get<std::vector<int32_t>>());

    const LogitComparison logits = compare_logits(engine->prefill(prompt, true), ref.forward(prompt), V);
    CHECK(logits.relative() <= kTolerance);
    CHECK(logits.argmax_mismatches == 0);

    engine->reset();
    const std::vector<int32_t> got = engine_greedy(*engine, prompt, kGreedyTokens);
    CHECK(got == reference_greedy(ref, prompt, kGreedyTokens, V));
    if (c.exact_bf16) CHECK(got == std::vector<int32_t>(golden_ids.begin(), golden_ids.begin() + kGreedyTokens));
    MESSAGE(c.name << ": relative max |diff| " << logits.relative() << ", greedy text \"" << engine->detokenize(got)
                   << "\"");
  }
}
