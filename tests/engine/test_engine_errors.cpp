// Errors a user can cause: each is a megrez::Error with a message that names the problem,
// and a failed call leaves the engine as it was (position unchanged, next calls work).
#include <doctest/doctest.h>

#include <cstring>
#include <fstream>

#include "common/gpu_fixture.h"
#include "engine/engine_test_util.h"
#include "loader/error.h"
#include "loader/formats/gguf_export.h"
#include "loader/formats/model.h"
#include "loader/formats/safetensors.h"
#include "loader/reference/reference_forward.h"
#include "loader/synthetic/synthetic.h"
#include "runtime/engine/generate.h"
#include "runtime/vk/context.h"

using namespace megrez;
using namespace megrez::test;

namespace {

// The message of the megrez::Error `f` throws ("" when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE_FIXTURE(GpuTest, "engine: a prompt longer than the context is an Error and changes nothing") {
  auto engine = load_engine(kTinyModelDir, engine_options(8));
  CHECK(engine->context_length() == 8);
  const std::vector<int32_t> nine(9, 5);
  const std::string message = error_of([&] { engine->prefill(nine); });
  CHECK(contains(message, "do not fit the context of 8 tokens"));
  CHECK(engine->position() == 0);

  // Filling the context exactly works; one more token does not.
  const std::vector<float> before = engine->prefill(std::vector<int32_t>(7, 5));
  CHECK(before.size() == size_t(engine->config().vocab_size));
  engine->decode(6);
  CHECK(engine->position() == 8);
  CHECK(contains(error_of([&] { engine->decode(6); }), "at position 8 do not fit the context of 8"));
  CHECK(contains(error_of([&] { engine->decode_greedy(6); }), "do not fit the context"));
  CHECK(engine->position() == 8);

  // reset() makes room again and gives the same logits as the first time.
  engine->reset();
  const std::vector<float> again = engine->prefill(std::vector<int32_t>(7, 5));
  CHECK(compare_logits(again, before, before.size()).max_abs_diff == 0.0);
}

TEST_CASE_FIXTURE(GpuTest, "engine: bad token ids, empty prompts, too long contexts, missing files") {
  auto engine = load_engine(kTinyModelDir, engine_options(16));
  const int32_t vocab = int32_t(engine->config().vocab_size);
  CHECK(contains(error_of([&] { engine->prefill(std::vector<int32_t>{1, vocab, 2}); }),
                 "token id " + std::to_string(vocab) + " is outside the vocabulary"));
  CHECK(contains(error_of([&] { engine->decode(-1); }), "token id -1 is outside the vocabulary"));
  CHECK(contains(error_of([&] { engine->prefill(std::vector<int32_t>{}); }), "prefill: no tokens"));
  CHECK(engine->position() == 0);

  const int64_t max_pos = engine->config().max_position_embeddings;
  CHECK(contains(error_of([&] { load_engine(kTinyModelDir, engine_options(uint32_t(max_pos + 1))); }),
                 "exceeds the model's max_position_embeddings"));
  CHECK(contains(error_of([&] { load_engine("/nonexistent/megrez-model", engine_options(16)); }),
                 "/nonexistent/megrez-model"));

  TempDir tmp("errors");
  std::ofstream(tmp.path("not-a-model.gguf")) << "this is not a GGUF file";
  CHECK_FALSE(error_of([&] { load_engine(tmp.path("not-a-model.gguf"), engine_options(16)); }).empty());
}

TEST_CASE_FIXTURE(GpuTest, "engine: a model larger than the device memory it may use is an Error before any upload") {
  EngineOptions options = engine_options(64);
  options.memory_limit = 1 << 20;  // 1 MiB: the tiny model's weights alone are ~16 MiB
  const std::string message = error_of([&] { load_engine(kTinyModelDir, options); });
  CHECK(contains(message, "of device memory (weights"));
  CHECK(contains(message, "the memory limit given"));
}

TEST_CASE_FIXTURE(GpuTest, "engine: models without a tokenizer run from ids and refuse text") {
  TempDir tmp("notok");
  write_synthetic_hf(tmp.path("m"), synthetic_config());
  auto engine = load_engine(tmp.path("m"), engine_options(16));
  CHECK_FALSE(engine->has_tokenizer());
  CHECK(contains(error_of([&] { engine->tokenize("hello"); }), "has no tokenizer"));
  CHECK(engine->prefill(std::vector<int32_t>{1, 2, 3}).size() == size_t(engine->config().vocab_size));
}

TEST_CASE_FIXTURE(GpuTest, "engine: ids past the tokenizer's vocabulary (a padded embedding) are never chosen") {
  // A model whose embedding and lm_head have 64 rows more than its tokenizer defines (as
  // Megrez2's 128,880 rows do), with those rows' logits made the largest.
  TempDir tmp("padded");
  const std::string dir = tmp.path("m");
  ModelConfig cfg = synthetic_config();
  const int32_t tokenizer_vocab = synthetic_bpe_vocab_size();
  cfg.vocab_size = tokenizer_vocab + 64;
  cfg.tie_word_embeddings = false;
  write_synthetic_hf(dir, cfg, {.tokenizer = true});
  std::vector<SyntheticTensor> tensors = synthetic_tensors(cfg, 1);
  std::vector<std::vector<uint8_t>> bytes;
  std::vector<SafetensorsEntry> entries;
  for (SyntheticTensor& t : tensors) {
    if (t.name == "lm_head.weight")
      for (size_t i = size_t(tokenizer_vocab) * cfg.hidden_size; i < t.values.size(); ++i) t.values[i] *= 50.0f;
    bytes.emplace_back(t.values.size() * 4);
    std::memcpy(bytes.back().data(), t.values.data(), bytes.back().size());
  }
  for (size_t i = 0; i < tensors.size(); ++i) entries.push_back({tensors[i].name, DType::F32, tensors[i].shape, bytes[i]});
  write_safetensors(dir + "/model.safetensors", entries);

  auto engine = load_engine(dir, engine_options(64));
  REQUIRE(engine->tokenizer().vocab_size() == tokenizer_vocab);
  const std::vector<int32_t> prompt = engine->tokenize("In the beginning");
  std::vector<float> logits = engine->prefill(prompt);
  // The premise: the largest logit is a padded id.
  REQUIRE(std::max_element(logits.begin(), logits.end()) - logits.begin() >= tokenizer_vocab);
  for (int i = 0; i < 200; ++i) {
    SamplerOptions hot;
    hot.temperature = 5.0f;
    hot.seed = uint64_t(i);
    CHECK(engine->sample(logits, hot, prompt) < tokenizer_vocab);
  }
  CHECK(engine->sample(logits, SamplerOptions{.temperature = 0.0f}, prompt) < tokenizer_vocab);
  // The GPU greedy path, and generation through to text.
  CHECK(engine->decode_greedy(prompt.back()) < tokenizer_vocab);
  engine->reset();
  GenerateOptions options;
  options.sampler.temperature = 3.0f;
  options.max_tokens = 24;
  std::vector<int32_t> history = prompt;
  const std::vector<int32_t> out = generate(*engine, engine->prefill(prompt), options, history);
  for (int32_t id : out) CHECK(id < tokenizer_vocab);
  CHECK_NOTHROW(engine->detokenize(out));
}

TEST_CASE("engine: a failed logits allocation leaves the old logits buffers in use") {
  // Staged read-back (as on a discrete GPU) and allocations capped at 3 MiB: the weights and
  // one row of logits fit, a prefill that returns 256 rows (4 MiB) cannot allocate them.
  TempDir tmp("small-allocations");
  std::ofstream(tmp.path("p.json")) << R"({"name": "small-allocations", "unified_memory": false, "max_allocation_size": 3145728})";
  ContextOptions options = validated_options();
  options.profile = tmp.path("p.json");
  Context ctx(options);
  auto engine = Engine::load(kTinyModelDir, engine_options(512, KvCacheType::F32, 256), ctx);
  const std::vector<int32_t> ids(256, 1027);
  CHECK(contains(error_of([&] { engine->prefill(ids, true); }), "maxMemoryAllocationSize"));
  // The engine still reads its logits back correctly.
  auto model = Model::open(kTinyModelDir);
  ReferenceForward ref(model->config(), model->weights());
  const std::vector<int32_t> prompt = {1027, 264, 2037};
  const std::vector<float> want = ref.forward(prompt);
  engine->reset();
  const std::vector<float> got = engine->prefill(prompt);
  const size_t V = size_t(model->config().vocab_size);
  const LogitComparison c = compare_logits(got, std::vector<float>(want.end() - std::ptrdiff_t(V), want.end()), V);
  CHECK(c.relative() <= 1e-3);
  engine = nullptr;
  check_no_validation_messages(ctx, 0);
}

TEST_CASE("engine: a device that cannot compile f16 conversions refuses f16 KV caches and f16/q8_0 weights up front") {
  // The quirk of Mesa's llvmpipe on AArch64 (LLVM 15 aborts the process compiling them),
  // reproduced here by a profile; the message names the device limitation and the way out.
  TempDir dir("half");
  const std::string profile = dir.path("no-half.json");
  std::ofstream(profile) << R"({"name": "no-half", "half_conversions": false})";
  ContextOptions context_options = validated_options();
  context_options.profile = profile;
  Context ctx(context_options);
  CHECK_FALSE(ctx.caps().half_conversions);

  EngineOptions options = engine_options(32, KvCacheType::F16);
  try {
    Engine::load(kTinyModelDir, options, ctx);
    FAIL("an f16 KV cache loaded");
  } catch (const Error& e) {
    CHECK(e.kind() == ErrorKind::Device);
    CHECK(contains(e.what(), "cannot compile f16 conversions"));
    CHECK(contains(e.what(), "--kv f32"));
  }
  const std::string q8 = dir.path("tiny-q8_0.gguf");
  {
    const std::unique_ptr<Model> model = Model::open(kTinyModelDir);
    GgufExportOptions gguf;
    gguf.matrix_type = DType::Q8_0;
    const TokenizerData tokenizer = model->tokenizer()->data();
    export_gguf(model->config(), model->weights(), &tokenizer, q8, gguf);
  }
  options.kv_type = KvCacheType::F32;
  CHECK(contains(error_of([&] { Engine::load(q8, options, ctx); }), "stores q8_0 weights; convert it to f32 or bf16"));

  // bf16 weights with an f32 KV cache run, and give what the suite's device gives (which may
  // run under another profile, so other kernel variants: equal up to rounding).
  auto engine = Engine::load(kTinyModelDir, options, ctx);
  auto reference = load_engine(kTinyModelDir, options);
  const std::vector<int32_t> prompt = engine->tokenize("In the beginning");
  const LogitComparison diff =
      compare_logits(engine->prefill(prompt), reference->prefill(prompt), size_t(engine->config().vocab_size));
  CHECK(diff.relative() < 1e-4);
  CHECK(diff.argmax_mismatches == 0);
  check_no_validation_messages(ctx, 0);
}

TEST_CASE_FIXTURE(GpuTest, "engine: sequences have their own KV caches; rewind keeps a prefix") {
  auto engine = load_engine(kTinyModelDir, engine_options(32));
  const std::vector<int32_t> a = engine->tokenize("In the beginning God");
  const std::vector<int32_t> b = engine->tokenize("And Moses said");
  const std::vector<float> a_alone = engine->prefill(a);
  const std::vector<float> a_next = engine->decode(7);
  engine->reset();

  // Interleaved: a on sequence 0, b on a new one, then a's next token.
  CHECK(engine->prefill(a) == a_alone);
  const Engine::SequenceId other = engine->add_sequence();
  CHECK(other != 0);
  engine->select_sequence(other);
  CHECK(engine->position() == 0);
  const std::vector<float> b_logits = engine->prefill(b);
  engine->select_sequence(0);
  CHECK(engine->position() == a.size());
  CHECK(engine->decode(7) == a_next);  // b's tokens did not touch a's cache
  const uint64_t two_caches = engine->stats().kv_cache_bytes;

  // rewind: drop the last token and feed it again: the same logits.
  engine->rewind(uint32_t(a.size()));
  CHECK(engine->decode(7) == a_next);
  CHECK(contains(error_of([&] { engine->rewind(1000); }), "cannot rewind to position 1000"));

  engine->remove_sequence(other);
  CHECK(engine->stats().kv_cache_bytes < two_caches);
  CHECK(contains(error_of([&] { engine->select_sequence(other); }), "no sequence"));
  CHECK(contains(error_of([&] { engine->remove_sequence(0); }), "cannot be removed"));
  const Engine::SequenceId reused = engine->add_sequence();  // the freed id is reused
  CHECK(reused == other);
  engine->select_sequence(reused);
  CHECK(engine->position() == 0);
  CHECK(engine->prefill(b) == b_logits);
}
