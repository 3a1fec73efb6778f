// The Vulkan engine on the bundled tiny model (models/megrez2-tiny, bf16 weights) against the
// CPU reference forward (loader/reference/reference_forward.h), which decodes the same bf16 bytes
// exactly and accumulates in fp64. The engine keeps activations and sums in fp32, so the
// logits agree to ~1e-5 of the largest logit; the suite allows 1e-3 and requires the same
// argmax at every position.
#include <doctest/doctest.h>

#include "common/gpu_fixture.h"
#include "engine/engine_test_util.h"
#include "loader/reference/reference_forward.h"

using namespace megrez;
using namespace megrez::test;

namespace {

constexpr double kTolerance = 1e-3;  // max |engine - reference| / max |reference logit|
const std::vector<int32_t> kPrompt = {1027, 264, 2037, 397, 2824, 273, 264, 636, 4042, 353, 734};

}  // namespace

TEST_CASE_FIXTURE(GpuTest, "engine decode matches the reference forward on the tiny model, token by token") {
  auto model = Model::open(kTinyModelDir);
  ReferenceForward ref(model->config(), model->weights());
  const std::vector<float> want = ref.forward(kPrompt);
  const size_t V = size_t(model->config().vocab_size);

  for (KvCacheType kv : {KvCacheType::F32, KvCacheType::F16}) {
    CAPTURE(int(kv));
    auto engine = load_engine(kTinyModelDir, engine_options(64, kv));
    std::vector<float> got;
    for (int32_t id : kPrompt) {
      const std::vector<float> logits = engine->decode(id);
      got.insert(got.end(), logits.begin(), logits.end());
    }
    CHECK(engine->position() == kPrompt.size());
    const LogitComparison c = compare_logits(got, want, V);
    MESSAGE("decode, kv " << (kv == KvCacheType::F16 ? "f16" : "f32") << ": max |diff| " << c.max_abs_diff
                          << " of max |logit| " << c.max_abs_logit << " (relative " << c.relative() << ")");
    CHECK(c.relative() <= kTolerance);
    CHECK(c.argmax_mismatches == 0);
  }
}

TEST_CASE_FIXTURE(GpuTest, "engine prefill matches the reference: all at once, in chunks, and token by token") {
  auto model = Model::open(kTinyModelDir);
  ReferenceForward ref(model->config(), model->weights());
  const std::vector<float> want = ref.forward(kPrompt);
  const size_t V = size_t(model->config().vocab_size);

  // One pass for the whole prompt, every position's logits.
  auto whole = load_engine(kTinyModelDir, engine_options(64, KvCacheType::F32, 16));
  const std::vector<float> all = whole->prefill(kPrompt, true);
  const LogitComparison c = compare_logits(all, want, V);
  MESSAGE("prefill (one pass): max |diff| " << c.max_abs_diff << ", relative " << c.relative());
  CHECK(c.relative() <= kTolerance);
  CHECK(c.argmax_mismatches == 0);

  // Chunks of 4 (passes of 4, 4, 3 tokens) and of 3 (..., 2): the causal attention over the
  // cache of earlier chunks must give the same logits.
  for (uint32_t chunk : {4u, 3u}) {
    CAPTURE(chunk);
    auto chunked = load_engine(kTinyModelDir, engine_options(64, KvCacheType::F32, chunk));
    const std::vector<float> got = chunked->prefill(kPrompt, true);
    const LogitComparison vs_whole = compare_logits(got, all, V);
    CHECK(vs_whole.relative() <= 1e-5);
    CHECK(vs_whole.argmax_mismatches == 0);
  }

  // Last-position logits only, and a prefill continued by decode.
  auto split = load_engine(kTinyModelDir, engine_options(64, KvCacheType::F32, 4));
  const std::span<const int32_t> prompt(kPrompt);
  const std::vector<float> last = split->prefill(prompt.first(7));
  CHECK(compare_logits(last, row(all, V, 6), V).relative() <= 1e-5);
  for (size_t t = 7; t < kPrompt.size(); ++t) {
    const std::vector<float> step = split->decode(kPrompt[t]);
    CHECK(compare_logits(step, row(all, V, t), V).relative() <= 1e-5);
  }
  CHECK(split->position() == kPrompt.size());
}
