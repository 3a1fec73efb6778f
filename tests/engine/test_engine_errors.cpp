// Errors a user can cause: each is a megrez::Error with a message that names the problem,
// and a failed call leaves the engine as it was (position unchanged, next calls work).
#include <doctest/doctest.h>

#include <fstream>

#include "common/gpu_fixture.h"
#include "engine/engine_test_util.h"
#include "loader/error.h"
#include "loader/synthetic/synthetic.h"

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
