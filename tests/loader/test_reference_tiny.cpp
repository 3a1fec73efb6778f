// The reference forward on the bundled trained model (models/megrez2-tiny, bf16 weights)
// against the golden data its trainer computed with the PyTorch module from the same file:
// logits of every prompt position, routing of prompt 0, greedy continuations. Same
// tolerance and argument as test_reference.cpp: 2e-5 relative to the largest |logit|.
#include "loader/reference/reference_forward.h"

#include "tests/loader/test_reference_fixture.h"

using namespace megrez;
using namespace reference_test;

namespace {

const std::string kTinyDir = std::string(MEGREZ_SOURCE_DIR) + "/models/megrez2-tiny";
constexpr double kRelTolerance = 2e-5;

int32_t argmax(std::span<const float> row) {
  return int32_t(std::max_element(row.begin(), row.end()) - row.begin());  // first max: lowest id
}

}  // namespace

TEST_CASE("reference forward reproduces the tiny model's golden logits, routing and greedy tokens") {
  const nlohmann::json golden = nlohmann::json::parse(read_text(kTinyDir + "/golden/golden.json"));
  const OpenedModel m = open_model(kTinyDir);
  const int64_t vocab = golden.at("vocab_size").get<int64_t>();
  REQUIRE(vocab == m.config.vocab_size);
  const nlohmann::json& prompts = golden.at("prompts");
  REQUIRE(prompts.size() >= 3);

  for (size_t p = 0; p < prompts.size(); ++p) {
    const nlohmann::json& entry = prompts[p];
    const std::vector<int32_t> ids = entry.at("ids").get<std::vector<int32_t>>();
    CAPTURE(entry.at("prompt").get<std::string>());
    const std::vector<float> want = read_f32(kTinyDir + "/golden/" + entry.at("file").get<std::string>(),
                                             ids.size() * size_t(vocab));
    double scale = 1.0;
    for (float v : want) scale = std::max(scale, double(std::fabs(v)));

    ReferenceForward ref(m.config, m.weights);
    const std::vector<float> got = ref.forward(ids);
    const double diff = max_abs_diff(got, want);
    MESSAGE("prompt " << p << " (" << ids.size() << " tokens): max |reference - pytorch| = " << diff
                      << ", max |logit| " << scale);
    CHECK(diff <= kRelTolerance * scale);
    CHECK(argmax_rows(got, vocab) == argmax_rows(want, vocab));

    if (int64_t(p) == golden.at("routing").at("prompt_index").get<int64_t>())
      for (const auto& [layer, per_position] : golden.at("routing").at("experts").items())
        for (size_t pos = 0; pos < per_position.size(); ++pos) {
          CAPTURE(layer);
          CAPTURE(pos);
          CHECK(ref.routing(int64_t(pos), std::stoll(layer)).ids == per_position[pos].get<std::vector<int32_t>>());
        }

    // Greedy continuation through the KV cache (PyTorch recomputed the whole sequence each step).
    const std::vector<int32_t> want_greedy = entry.at("greedy_ids").get<std::vector<int32_t>>();
    std::vector<int32_t> greedy;
    std::span<const float> last(got.data() + got.size() - size_t(vocab), size_t(vocab));
    std::vector<float> row;
    while (greedy.size() < want_greedy.size()) {
      greedy.push_back(argmax(last));
      row = ref.append(greedy.back());
      last = row;
    }
    CHECK(greedy == want_greedy);
  }
}
