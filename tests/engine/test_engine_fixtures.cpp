// The engine on the eleven golden fixtures of tests/data/reference/ (tiny random Megrez2
// models: GQA with 1/2/4 kv heads, group-limited routing, no renormalisation, scaled routed
// sums, pools of 1/2/3 layers, two dense layers, tied embeddings, odd hidden size 48, rope
// theta 1e6) against the logits the independent PyTorch module computed for them, and against
// the CPU reference. f32 weights: the engine must agree to 1e-3 of the largest logit (it is
// ~1e-6 in practice) with the same argmax everywhere.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "common/gpu_fixture.h"
#include "engine/engine_test_util.h"
#include "loader/reference/reference_forward.h"
#include "tests/loader/test_reference_fixture.h"

using namespace megrez;
using namespace megrez::test;

namespace {
constexpr double kTolerance = 1e-3;
}

TEST_CASE_FIXTURE(GpuTest, "engine reproduces the PyTorch golden logits of every reference fixture") {
  for (const std::string& name : reference_test::kFixtureCases) {
    CAPTURE(name);
    const std::string dir = reference_test::kFixtureRoot + name;
    const nlohmann::json expected = nlohmann::json::parse(reference_test::read_text(dir + "/expected.json"));
    const std::vector<int32_t> ids = expected.at("ids").get<std::vector<int32_t>>();
    const size_t V = expected.at("vocab_size").get<size_t>();
    const std::vector<float> golden =
        reference_test::read_f32(dir + "/" + expected.at("logits").get<std::string>(), ids.size() * V);

    // Prefill in chunks of 5 (passes of 5, 5, 5, 1 for 16 tokens: the last is a decode pass).
    auto engine = load_engine(dir, engine_options(64, KvCacheType::F32, 5));
    const std::vector<float> prefill = engine->prefill(ids, true);
    const LogitComparison p = compare_logits(prefill, golden, V);
    CHECK(p.relative() <= kTolerance);
    CHECK(p.argmax_mismatches == 0);

    // Token by token, and against the CPU reference too.
    engine->reset();
    std::vector<float> decode;
    for (int32_t id : ids) {
      const std::vector<float> row_logits = engine->decode(id);
      decode.insert(decode.end(), row_logits.begin(), row_logits.end());
    }
    const LogitComparison d = compare_logits(decode, golden, V);
    CHECK(d.relative() <= kTolerance);
    CHECK(d.argmax_mismatches == 0);

    auto model = Model::open(dir);
    ReferenceForward ref(model->config(), model->weights());
    const LogitComparison r = compare_logits(prefill, ref.forward(ids), V);
    CHECK(r.relative() <= kTolerance);
    MESSAGE(name << ": relative max |diff| prefill vs PyTorch " << p.relative() << ", decode vs PyTorch "
                 << d.relative() << ", prefill vs reference " << r.relative());
  }
}
