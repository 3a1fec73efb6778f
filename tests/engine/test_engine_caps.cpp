// The engine under device caps other than the test context's: a profile whose largest binding
// is 512 KiB forces every split path on the tiny model (lm_head and embedding in row parts,
// expert slot stores in several parts, the dense MLP's gate and up in separate bindings), and
// the Adreno profile (shared-memory reductions, 64-byte alignment). Logits must still match
// the reference to 1e-3 with the same argmax.
#include <doctest/doctest.h>

#include <fstream>

#include "common/gpu_fixture.h"
#include "engine/engine_test_util.h"
#include "loader/reference/reference_forward.h"
#include "runtime/engine/device_weights.h"

using namespace megrez;
using namespace megrez::test;

TEST_CASE("engine under small-binding and Adreno caps: split tensors, same logits") {
  TempDir tmp("caps");
  const std::string small = tmp.path("small-bindings.json");
  std::ofstream(small) << R"({"name": "small-bindings", "max_storage_range": 524288, "storage_offset_alignment": 256, "max_prefill_chunk": 8})";

  auto model = Model::open(kTinyModelDir);
  const std::vector<int32_t> ids = {1027, 264, 2037, 397, 2824, 273, 264};
  ReferenceForward ref(model->config(), model->weights());
  const std::vector<float> want = ref.forward(ids);
  const size_t V = size_t(model->config().vocab_size);

  for (const std::string& profile : {small, std::string("adreno-7xx")}) {
    CAPTURE(profile);
    ContextOptions options = validated_options();
    options.profile = profile;
    Context ctx(options);
    if (profile == small) {
      // The layout this test is about: everything that can split did.
      DeviceWeights device(ctx, model->config(), model->weights());
      CHECK(device.output.parts.size() == 4);       // 4096 x 256 bf16 = 2 MiB
      CHECK(device.token_embd.parts.size() == 4);
      CHECK(device.pools[0].slots.parts.size() > 1);
      CHECK_FALSE(device.layers[0].mlp.gate_up.has_value());  // 2 x 640 x 256 bf16 > 512 KiB
      CHECK(device.layers[1].mlp.gate_up.has_value());        // shared experts: 2 x 256 x 256 bf16
    }
    // The prefill-chunk quirk caps the default chunk (8 in the small profile, 32 on Adreno).
    CHECK(Engine::load(kTinyModelDir, engine_options(256), ctx)->prefill_chunk() == (profile == small ? 8u : 32u));
    auto engine = Engine::load(kTinyModelDir, engine_options(32, KvCacheType::F32, 4), ctx);
    std::vector<float> got = engine->prefill(std::span<const int32_t>(ids).first(5), true);
    for (size_t t = 5; t < ids.size(); ++t) {
      const std::vector<float> step = engine->decode(ids[t]);
      got.insert(got.end(), step.begin(), step.end());
    }
    const LogitComparison c = compare_logits(got, want, V);
    MESSAGE(profile << ": relative max |diff| " << c.relative());
    CHECK(c.relative() <= 1e-3);
    CHECK(c.argmax_mismatches == 0);
    // The GPU argmax agrees with the host's on the same position.
    engine->reset();
    engine->prefill(std::span<const int32_t>(ids).first(6));
    CHECK(engine->decode_greedy(ids[6]) == argmax(row(got, V, 6)));
    engine = nullptr;  // before the context goes, and before counting its messages
    check_no_validation_messages(ctx, 0);
  }
}
