// The Vulkan engine on the bundled tiny model (models/megrez2-tiny, bf16 weights) against the
// CPU reference forward (loader/reference/reference_forward.h), which decodes the same bf16 bytes
// exactly and accumulates in fp64. The engine keeps activations and sums in fp32, so the
// logits agree to ~1e-5 of the largest logit; the suite allows 1e-3 and requires the same
// argmax at every position.
#include <doctest/doctest.h>

#include <algorithm>

#include "common/gpu_fixture.h"
#include "engine/engine_test_util.h"
#include "loader/reference/reference_forward.h"
#include "runtime/vk/commands.h"

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

// decode_greedy submits the pass of the id it returns before returning (resident mode): fed
// that id next, the pass is already running. Layer breaks turn chaining off, with the same
// kernels, so the two engines must agree bit for bit through every way of leaving a chain:
// another id than the one returned, rewind, another sequence, prefill, the end of the context.
TEST_CASE_FIXTURE(GpuTest, "chained greedy decode gives the same tokens and logits as passes run one at a time") {
  EngineOptions chained_options = engine_options(24);
  EngineOptions single_options = chained_options;
  single_options.layer_breaks = true;  // resident passes cut into parts: never chained
  auto chained = load_engine(kTinyModelDir, chained_options);
  auto single = load_engine(kTinyModelDir, single_options);
  const std::span<const int32_t> prompt(kPrompt);

  // Both engines get the same calls; every result must be identical.
  auto greedy = [&](int32_t id) {
    const int32_t a = chained->decode_greedy(id), b = single->decode_greedy(id);
    CHECK(a == b);
    CHECK(chained->position() == single->position());
    return a;
  };
  auto same_logits = [&](const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    CHECK(std::equal(a.begin(), a.end(), b.begin()));  // the same kernels: the same bits
  };

  same_logits(chained->prefill(prompt.first(4)), single->prefill(prompt.first(4)));
  // The first step submits its pass and the next one's; the second finds its pass running.
  const uint64_t submitted = record_counts().submissions;
  const int32_t first = chained->decode_greedy(kPrompt[4]);
  CHECK(record_counts().submissions - submitted == 2);
  const int32_t second = chained->decode_greedy(first);
  CHECK(record_counts().submissions - submitted == 3);
  CHECK(single->decode_greedy(kPrompt[4]) == first);
  CHECK(single->decode_greedy(first) == second);
  int32_t id = second;
  for (int i = 0; i < 5; ++i) id = greedy(id);
  id = greedy(int32_t((id + 1) % 64));          // not the id returned: the pass ahead is dropped
  for (int i = 0; i < 2; ++i) id = greedy(id);
  chained->rewind(chained->position() - 2);     // rewind while a pass is ahead
  single->rewind(single->position() - 2);
  for (int i = 0; i < 2; ++i) id = greedy(id);

  // Another sequence between two steps of a chain (two sequences: no chaining, since
  // sequences taking turns would drop every pass ahead); sequence 0 goes on from where it was,
  // and chains again once the other is removed.
  const Engine::SequenceId other_a = chained->add_sequence(), other_b = single->add_sequence();
  chained->select_sequence(other_a);
  single->select_sequence(other_b);
  same_logits(chained->prefill(prompt.first(3)), single->prefill(prompt.first(3)));
  int32_t other_id = greedy(kPrompt[3]);
  const uint64_t two_sequences = record_counts().submissions;
  const int32_t unchained = chained->decode_greedy(other_id);
  CHECK(record_counts().submissions - two_sequences == 1);  // no pass ahead
  CHECK(single->decode_greedy(other_id) == unchained);
  chained->select_sequence(0);
  single->select_sequence(0);
  id = greedy(id);
  chained->remove_sequence(other_a);  // one sequence again: chaining resumes
  single->remove_sequence(other_b);
  id = greedy(id);

  // Logits after a chain (the pass ahead is dropped), then greedy steps to the last position:
  // the last steps have no room for a pass ahead.
  same_logits(chained->decode(id), single->decode(id));
  while (chained->position() < chained->context_length()) id = greedy(id);
  CHECK(chained->position() == 24);
  CHECK_THROWS_AS(chained->decode_greedy(id), Error);

  // Both count the same work per decoded token; only the chained one times its passes.
  CHECK(chained->stats().decode_pass.dispatches == single->stats().decode_pass.dispatches);
  CHECK(chained->stats().decode_pass.dispatches > 0);
  if (chained->stats().decode_gpu_tokens > 0) {  // devices with timestamps
    CHECK(chained->stats().decode_gpu_tokens == chained->stats().decode_tokens);
    CHECK(chained->stats().decode_gpu_seconds > 0);
    CHECK(chained->stats().decode_gpu_seconds < chained->stats().decode_seconds);
    CHECK(chained->stats().decode_chained_passes > 0);
    CHECK(chained->stats().decode_chained_passes < chained->stats().decode_gpu_tokens);  // chains start afresh
    CHECK(chained->stats().decode_chained_gap_seconds >= 0);
  }
  CHECK(single->stats().decode_gpu_tokens == 0);
  CHECK(single->stats().decode_chained_passes == 0);
}
