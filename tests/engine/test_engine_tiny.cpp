// The Vulkan engine on the bundled tiny model (models/megrez2-tiny, bf16 weights) against the
// CPU reference forward (loader/reference_forward.h), which decodes the same bf16 bytes
// exactly and accumulates in fp64. The engine keeps activations and sums in fp32, so the
// logits agree to ~1e-5 of the largest logit; the suite allows 1e-3 and requires the same
// argmax at every position.
#include <doctest/doctest.h>

#include "common/gpu_fixture.h"
#include "engine/engine_test_util.h"
#include "loader/reference_forward.h"

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
