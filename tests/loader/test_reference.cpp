// The CPU reference forward against golden logits of an independent implementation (the
// PyTorch module of models/megrez2-tiny/train/megrez2.py, via tests/data/reference/).
//
// Tolerance: |reference - pytorch| <= kRelTolerance * max(1, max |logit|) on every logit.
// PyTorch runs in fp32 with its own summation order, the reference accumulates in fp64; the
// measured gap is ~1e-6 relative (fp32 rounding through <= 5 layers), so 2e-5 leaves ~10x
// headroom while a real mistake (a wrong pool, bias, scale, RoPE pairing, GQA mapping or one
// flipped expert) moves logits by 1e-2 .. 10. Expert ids and argmax must match exactly: the
// generator only keeps seeds whose every decision wins by >= 1e-4 (routing) / 1e-3 (argmax).
#include "loader/reference/reference_forward.h"

#include "tests/loader/test_reference_fixture.h"

using namespace megrez;
using namespace reference_test;

namespace {

constexpr double kRelTolerance = 2e-5;

double tolerance_for(const Fixture& f) { return kRelTolerance * std::max(1.0, f.max_abs_logit); }

}  // namespace

TEST_CASE("reference forward reproduces the PyTorch golden logits and routing of every fixture") {
  for (const std::string& name : kFixtureCases) {
    CAPTURE(name);
    const Fixture f = load_fixture(name);
    ReferenceForward ref(f.model.config, f.model.weights);
    const std::vector<float> logits = ref.forward(f.ids);
    const double diff = max_abs_diff(logits, f.logits);
    MESSAGE(name << ": max |reference - pytorch| = " << diff << " (max |logit| " << f.max_abs_logit << ")");
    CHECK(diff <= tolerance_for(f));
    CHECK(argmax_rows(logits, f.vocab) == argmax_rows(f.logits, f.vocab));

    // Every MoE layer, every position: the same experts in the same order.
    REQUIRE(int64_t(f.routing.size()) == f.model.config.num_hidden_layers - f.model.config.first_k_dense_replace);
    for (const auto& [layer, per_position] : f.routing)
      for (size_t pos = 0; pos < per_position.size(); ++pos) {
        CAPTURE(layer);
        CAPTURE(pos);
        CHECK(ref.routing(int64_t(pos), layer).ids == per_position[pos]);
      }
    for (int64_t layer = 0; layer < f.model.config.first_k_dense_replace; ++layer)
      CHECK(ref.routing(0, layer).ids.empty());
  }
}

TEST_CASE("reference decode (one token at a time, and chunked) equals the full forward bit for bit") {
  for (const std::string& name : kFixtureCases) {
    CAPTURE(name);
    const Fixture f = load_fixture(name);
    ReferenceForward full(f.model.config, f.model.weights);
    const std::vector<float> expected = full.forward(f.ids);

    ReferenceForward step(f.model.config, f.model.weights);
    std::vector<float> got;
    for (int32_t id : f.ids) {
      const std::vector<float> row = step.append(id);
      REQUIRE(int64_t(row.size()) == f.vocab);
      got.insert(got.end(), row.begin(), row.end());
    }
    CHECK(step.position() == int64_t(f.ids.size()));
    CHECK(got == expected);
    for (int64_t pos = 0; pos < step.position(); ++pos)
      for (int64_t layer = 0; layer < f.model.config.num_hidden_layers; ++layer)
        CHECK(step.routing(pos, layer).weights == full.routing(pos, layer).weights);

    // A 5-token prefill and then single tokens: same again (the cache joins chunks correctly).
    ReferenceForward chunked(f.model.config, f.model.weights);
    std::vector<float> mixed = chunked.append(std::span<const int32_t>(f.ids).first(5));
    for (size_t i = 5; i < f.ids.size(); ++i) {
      const std::vector<float> row = chunked.append(f.ids[i]);
      mixed.insert(mixed.end(), row.begin(), row.end());
    }
    CHECK(mixed == expected);
    // forward() starts over: calling it again on a used object gives the same logits.
    CHECK(chunked.forward(f.ids) == expected);
  }
}

TEST_CASE("pre-gating wiring matters: routing layer i from its own h2 changes the logits") {
  int checked = 0;
  for (const std::string& name : kFixtureCases) {
    const Fixture f = load_fixture(name);
    if (f.own_layer_logits.empty()) continue;
    CAPTURE(name);
    ++checked;
    ReferenceForward right(f.model.config, f.model.weights);
    ReferenceForward wrong(f.model.config, f.model.weights, ReferenceOptions{.route_from_current_layer = true});
    const std::vector<float> good = right.forward(f.ids), bad = wrong.forward(f.ids);
    // The switch reproduces PyTorch's own-layer routing, so it really does what it claims...
    CHECK(max_abs_diff(bad, f.own_layer_logits) <= tolerance_for(f));
    // ...and that wiring is far outside the tolerance of the correct one.
    const double gap = max_abs_diff(good, bad);
    MESSAGE(name << ": own-layer routing moves logits by up to " << gap);
    CHECK(gap > 1000 * tolerance_for(f));
    int64_t differing = 0;
    for (int64_t pos = 0; pos < right.position(); ++pos)
      for (int64_t layer = f.model.config.first_k_dense_replace; layer < f.model.config.num_hidden_layers; ++layer)
        differing += right.routing(pos, layer).ids != wrong.routing(pos, layer).ids;
    CHECK(differing > 0);
  }
  CHECK(checked >= 3);
}

TEST_CASE("reference forward rejects bad token ids and bad queries with megrez::Error") {
  const Fixture f = load_fixture("base");
  ReferenceForward ref(f.model.config, f.model.weights);
  CHECK_THROWS_AS(ref.forward(std::vector<int32_t>{1, int32_t(f.vocab)}), Error);
  CHECK_THROWS_AS(ref.append(-1), Error);
  CHECK(ref.position() == 0);  // a rejected call changes nothing
  ref.append(3);
  CHECK_THROWS_AS(ref.routing(1, 0), Error);
  CHECK_THROWS_AS(ref.routing(0, f.model.config.num_hidden_layers), Error);
  CHECK(ref.routing(0, 1).ids.size() == size_t(f.model.config.num_experts_per_tok));
}

TEST_CASE("reference forward checks tensor shapes against the config") {
  const Fixture f = load_fixture("base");
  ModelWeights w = f.model.weights;
  w.layers[1].router_bias.shape = {3};
  CHECK_THROWS_AS(ReferenceForward(f.model.config, w), Error);
  w = f.model.weights;
  w.layers[2].pool = 1;  // base has one pool (layers 1 and 2)
  CHECK_THROWS_AS(ReferenceForward(f.model.config, w), Error);
  w = f.model.weights;
  w.layers.pop_back();
  CHECK_THROWS_AS(ReferenceForward(f.model.config, w), Error);
  ModelConfig c = f.model.config;
  c.num_key_value_heads = 3;  // 4 heads do not split into 3 kv groups
  CHECK_THROWS_AS(ReferenceForward(c, f.model.weights), Error);
  c = f.model.config;
  c.num_experts_per_tok = c.n_routed_experts + 1;  // the router config is checked up front
  CHECK_THROWS_AS(ReferenceForward(c, f.model.weights), Error);
}
