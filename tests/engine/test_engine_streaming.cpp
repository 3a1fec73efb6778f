// Streaming mode (issue 5) against resident mode: the same prompt must give bit-identical
// logits (memcmp, not a tolerance) in every mode, budget and upload path, because the same
// kernels read the same expert bytes; only where the bytes sit differs. The prompt is longer
// than the prefill chunk, so small budgets also exercise prefill rounds (a chunk needing more
// experts than the cache holds). The cache statistics must add up exactly.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common/gpu_fixture.h"
#include "engine/engine_test_util.h"
#include "loader/error.h"
#include "loader/synthetic/synthetic.h"

using namespace megrez;
using namespace megrez::test;

namespace {

struct Run {
  std::vector<float> logits;  // prefill (every position), then each decode step
  StreamStats totals;
  std::vector<StreamStats> decode_steps;
};

// Prefill `ids` (all logits), then decode `steps` tokens greedily from the prefill's argmax.
Run run(const std::string& model, EngineOptions options, const std::vector<int32_t>& ids, size_t steps) {
  auto engine = load_engine(model, options);
  Run r;
  r.logits = engine->prefill(ids, true);
  const size_t V = size_t(engine->config().vocab_size);
  std::vector<float> last(r.logits.end() - std::ptrdiff_t(V), r.logits.end());
  for (size_t s = 0; s < steps; ++s) {
    const int32_t next = int32_t(std::max_element(last.begin(), last.end()) - last.begin());
    last = engine->decode(next);
    r.logits.insert(r.logits.end(), last.begin(), last.end());
    r.decode_steps.push_back(engine->last_pass_stream_stats());
  }
  r.totals = engine->stats().stream;
  return r;
}

uint64_t expert_bytes(const std::string& model) {
  auto m = Model::open(model);
  const ExpertWeights& e = m->weights().pools.at(0).at(0);
  return e.gate.bytes.size() + e.up.bytes.size() + e.down.bytes.size();
}

// Every streaming configuration against resident, bit for bit, with the statistics' identities.
void check_modes(const std::string& model, const std::vector<int32_t>& ids, uint32_t chunk, size_t steps) {
  auto probe = Model::open(model);
  const ModelConfig config = probe->config();
  probe.reset();
  const uint64_t K = uint64_t(config.num_experts_per_tok);
  const uint64_t moe_layers = uint64_t(config.num_hidden_layers - config.first_k_dense_replace);
  const uint64_t total_experts = uint64_t(config.n_routed_experts) * uint64_t(config.n_pools());
  const uint64_t one_expert = expert_bytes(model);

  EngineOptions base = engine_options(uint32_t(ids.size() + steps + 1), KvCacheType::F32, chunk);
  base.stream = StreamMode::Resident;
  const Run resident = run(model, base, ids, steps);
  CHECK(resident.totals.lookups == 0);

  // The minimum budget: top_k + 1 slots, given as bytes (slot stride from 100% / total experts).
  const std::vector<std::string> budgets = {"100%", "50%", "25%", "min"};
  for (const std::string mode : {"prefetch", "ondemand"}) {
    for (const std::string path : {"host", "queue"}) {
      for (const std::string& budget : budgets) {
        CAPTURE(mode);
        CAPTURE(path);
        CAPTURE(budget);
        EngineOptions o = base;
        REQUIRE(stream_mode_from_name(mode, o.stream));
        o.expert_upload = path;
        if (budget == "min") {
          auto sizing = load_engine(model, [&] { EngineOptions s = o; s.expert_budget = "100%"; return s; }());
          const uint64_t stride = sizing->stats().expert_cache_bytes / total_experts;
          o.expert_budget = std::to_string((K + 1) * stride) + "B";
        } else {
          o.expert_budget = budget;
        }
        const Run r = run(model, o, ids, steps);
        REQUIRE(r.logits.size() == resident.logits.size());
        CHECK(std::memcmp(r.logits.data(), resident.logits.data(), r.logits.size() * sizeof(float)) == 0);
        // Stats add up.
        CHECK(r.totals.hits + r.totals.misses == r.totals.lookups);
        CHECK(r.totals.bytes_uploaded == r.totals.misses * one_expert);
        CHECK(r.totals.occupied <= r.totals.slots);
        for (const StreamStats& step : r.decode_steps) {
          CHECK(step.lookups == K * moe_layers);  // a decode step: top_k distinct experts per MoE layer
          CHECK(step.hits + step.misses == step.lookups);
          CHECK(step.bytes_uploaded == step.misses * one_expert);
          CHECK(step.rounds == 0);
        }
        if (budget == "100%") {
          // Everything fits: after the first use of an expert it is never uploaded again.
          CHECK(r.totals.misses <= total_experts);
          CHECK(r.totals.rounds == 0);
        }
        if (budget == "min") CHECK(r.totals.slots == K + 1);
        MESSAGE(mode << "/" << path << " " << budget << ": lookups " << r.totals.lookups << ", hit rate "
                     << r.totals.hit_rate() << ", rounds " << r.totals.rounds << ", uploaded "
                     << r.totals.bytes_uploaded);
      }
    }
  }
}

}  // namespace

TEST_CASE_FIXTURE(GpuTest, "streaming: bit-identical logits on the tiny model in every mode, budget and upload path") {
  auto model = Model::open(kTinyModelDir);
  const std::vector<int32_t> ids = prompt_ids(40, model->config().vocab_size, 5);
  model.reset();
  check_modes(kTinyModelDir, ids, 16, 6);
}

TEST_CASE_FIXTURE(GpuTest, "streaming: bit-identical logits on a random model with many experts") {
  ModelConfig config = synthetic_config();
  config.num_hidden_layers = 7;  // pools of 3 layers, like Megrez2
  config.experts_shared_frequency = 3;
  config.n_routed_experts = 64;
  config.num_experts_per_tok = 6;
  config.n_group = 4;
  config.topk_group = 2;
  config.max_position_embeddings = 256;
  TempDir tmp("streaming");
  SyntheticOptions bf16;
  bf16.dtype = DType::BF16;
  write_synthetic_hf(tmp.path("m"), config, bf16);
  check_modes(tmp.path("m"), prompt_ids(24, config.vocab_size, 9), 12, 4);
}

TEST_CASE_FIXTURE(GpuTest, "streaming: the LRU policy gives the same logits, and policies are named") {
  auto model = Model::open(kTinyModelDir);
  const std::vector<int32_t> ids = prompt_ids(20, model->config().vocab_size, 11);
  model.reset();
  EngineOptions o = engine_options(32, KvCacheType::F32, 8);
  o.stream = StreamMode::Resident;
  const Run resident = run(kTinyModelDir, o, ids, 4);
  o.stream = StreamMode::Prefetch;
  o.expert_budget = "30%";
  o.eviction = "lru";
  const Run lru = run(kTinyModelDir, o, ids, 4);
  CHECK(std::memcmp(lru.logits.data(), resident.logits.data(), lru.logits.size() * sizeof(float)) == 0);
  o.eviction = "fifo";
  CHECK_THROWS_WITH_AS(load_engine(kTinyModelDir, o), doctest::Contains("unknown eviction policy"), Error);
}

TEST_CASE_FIXTURE(GpuTest, "streaming: budgets are checked with one clear message") {
  EngineOptions o = engine_options(32);
  o.expert_budget = "1B";
  CHECK_THROWS_WITH_AS(load_engine(kTinyModelDir, o), doctest::Contains("streaming needs at least top_k + 1 = 5"),
                       Error);
  o.expert_budget = "50%";
  o.stream = StreamMode::Resident;
  CHECK_THROWS_WITH_AS(load_engine(kTinyModelDir, o), doctest::Contains("needs every expert in device memory"), Error);
  o.stream = StreamMode::Auto;
  for (const char* bad : {"lots", "-5%", "120%", "12XB", "0"}) {
    CAPTURE(bad);
    o.expert_budget = bad;
    CHECK_THROWS_AS(load_engine(kTinyModelDir, o), Error);
  }
  o.expert_budget = "50%";
  o.expert_upload = "carrier-pigeon";
  CHECK_THROWS_WITH_AS(load_engine(kTinyModelDir, o), doctest::Contains("unknown expert upload path"), Error);
  o.expert_upload = "";
  for (double bw : {1e-300, -1.0, 1e-4}) {  // 1e-300 GB/s made every upload wait forever
    CAPTURE(bw);
    o.storage_bw = bw;
    CHECK_THROWS_WITH_AS(load_engine(kTinyModelDir, o), doctest::Contains("storage bandwidth must be 0"), Error);
  }
  o.storage_bw = 0;
  // Auto picks prefetch below the experts' size and resident at 100%.
  o.expert_upload = "";
  CHECK(load_engine(kTinyModelDir, o)->stream_mode() == StreamMode::Prefetch);
  o.expert_budget = "100%";
  CHECK(load_engine(kTinyModelDir, o)->stream_mode() == StreamMode::Resident);
}

TEST_CASE_FIXTURE(GpuTest, "streaming: stage timings follow the pass across its submissions and rounds") {
  auto model = Model::open(kTinyModelDir);
  const std::vector<int32_t> ids = prompt_ids(40, model->config().vocab_size, 3);
  model.reset();
  EngineOptions o = engine_options(48, KvCacheType::F32, 16);
  o.profile_stages = true;
  o.expert_budget = "20%";  // 6 of 32 slots: every 16-token chunk needs rounds
  auto engine = load_engine(kTinyModelDir, o);
  REQUIRE(engine->stream_mode() == StreamMode::Prefetch);
  engine->prefill(ids);
  engine->decode(ids[0]);
  CHECK(engine->stats().stream.rounds > 0);
  double experts_ms = 0, total_ms = 0;
  for (const StageTiming& t : engine->stage_timings()) {
    total_ms += t.ms;
    if (t.stage == "experts") experts_ms = t.ms;
  }
  CHECK(experts_ms > 0);
  CHECK(total_ms > experts_ms);
}

TEST_CASE_FIXTURE(GpuTest, "layer breaks: a resident pass submitted in parts gives bit-identical logits") {
  auto model = Model::open(kTinyModelDir);
  const std::vector<int32_t> ids = prompt_ids(40, model->config().vocab_size, 5);
  model.reset();
  EngineOptions whole = engine_options(64, KvCacheType::F32, 16);
  whole.stream = StreamMode::Resident;
  EngineOptions parts = whole;
  parts.layer_breaks = true;
  const Run a = run(kTinyModelDir, whole, ids, 6);
  const Run b = run(kTinyModelDir, parts, ids, 6);
  REQUIRE(a.logits.size() == b.logits.size());
  CHECK(std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * sizeof(float)) == 0);

  // The decode pass's recorded work: the same kernels either way, in one submission or in
  // parts (megrez-bench prints these); a pass recorded through a feed has one more barrier per
  // MoE layer, after its routed experts (streaming's rounds reuse slots behind it).
  auto one = load_engine(kTinyModelDir, whole);
  auto split = load_engine(kTinyModelDir, parts);
  one->prefill(ids);
  split->prefill(ids);
  for (int step = 0; step < 3; ++step) {
    one->decode_greedy(1);
    split->decode_greedy(1);
    const RecordedPass& p1 = one->stats().decode_pass;
    const RecordedPass& p2 = split->stats().decode_pass;
    CHECK(p1.submissions == 1);
    CHECK(p1.dispatches > uint32_t(one->config().num_hidden_layers) * 8);  // norms, q/k/v, rope, attention, ...
    CHECK(p1.barriers > 0);
    CHECK(p2.dispatches == p1.dispatches);
    const auto moe_layers = uint32_t(one->config().num_hidden_layers - one->config().first_k_dense_replace);
    CHECK(p2.barriers == p1.barriers + moe_layers);
    // A break is a place where streaming would cut (at most one per layer), used every
    // stride-th time, the stride chosen from the pass time: between 1 and layers + 1 parts.
    CHECK(p2.submissions >= 1);
    CHECK(p2.submissions <= uint32_t(one->config().num_hidden_layers) + 1);
    MESSAGE("decode pass: " << p1.dispatches << " dispatches, " << p1.barriers << " barriers; with layer breaks "
                            << p2.submissions << " submissions");
  }
}

TEST_CASE_FIXTURE(GpuTest, "expert map: residency and the last pass's use add up to the cache statistics") {
  auto probe = Model::open(kTinyModelDir);
  const ModelConfig config = probe->config();
  const std::vector<int32_t> ids = prompt_ids(12, config.vocab_size, 3);
  probe.reset();
  const auto pools = size_t(config.n_pools()), experts = size_t(config.n_routed_experts);

  EngineOptions resident = engine_options(64, KvCacheType::F32, 16);
  resident.stream = StreamMode::Resident;
  auto r = load_engine(kTinyModelDir, resident);
  const ExpertMap all = r->expert_map();
  CHECK_FALSE(all.usage_known);
  REQUIRE(all.resident.size() == pools);
  for (const auto& pool : all.resident) CHECK(pool == std::vector<uint8_t>(experts, 1));

  EngineOptions half = resident;
  half.stream = StreamMode::Prefetch;
  half.expert_budget = "50%";
  auto s = load_engine(kTinyModelDir, half);
  int32_t next = argmax(s->prefill(ids));
  for (int step = 0; step < 4; ++step) {
    next = argmax(s->decode(next));
    const ExpertMap map = s->expert_map();
    const StreamStats& pass = s->last_pass_stream_stats();
    CHECK(map.usage_known);
    REQUIRE(map.resident.size() == pools);
    REQUIRE(map.used.size() == pools);
    uint64_t resident_count = 0, uses = 0;
    for (size_t p = 0; p < pools; ++p) {
      REQUIRE(map.resident[p].size() == experts);
      for (size_t e = 0; e < experts; ++e) {
        resident_count += map.resident[p][e];
        uses += map.used[p][e];
      }
    }
    CHECK(resident_count == pass.occupied);  // what the cache holds
    CHECK(uses == pass.lookups);             // (layer, expert) pairs this token chose
    CHECK(uses == uint64_t(config.num_experts_per_tok) * uint64_t(config.num_hidden_layers - config.first_k_dense_replace));
  }
}
