// megrez-bench's library parts: perplexity against an independent computation, the
// synthetic benchmark models, the stage profiler and the pp/tg measurements.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iterator>
#include <map>

#include "apps/tools/bench_run.h"
#include "apps/tools/bench_synthetic.h"
#include "apps/tools/perplexity.h"
#include "common/gpu_fixture.h"
#include "engine/engine_test_util.h"
#include "loader/formats/model.h"
#include "loader/formats/weight_layout.h"
#include "loader/quant/quant.h"
#include "loader/reference/reference_forward.h"
#include "runtime/stream/expert_streamer.h"

using namespace megrez;
using namespace megrez::test;

namespace {

// The first `n` tokens of the tiny model's held-out text.
std::vector<int32_t> heldout_tokens(const Engine& engine, size_t n) {
  std::ifstream in(kTinyModelDir + "/heldout.txt", std::ios::binary);
  REQUIRE(in);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<int32_t> ids = engine.tokenize(text, false);
  REQUIRE(ids.size() >= n);
  ids.resize(n);
  return ids;
}

// -log p(target) from one row of logits, written independently of apps/tools/perplexity.cpp:
// float log-sum-exp over the row sorted ascending (small terms first), in long double.
long double nll_independent(std::span<const float> row, int32_t target) {
  std::vector<float> sorted(row.begin(), row.end());
  std::sort(sorted.begin(), sorted.end());
  const long double max = sorted.back();
  long double sum = 0;
  for (float l : sorted) sum += std::exp((long double)l - max);
  return std::log(sum) + max - (long double)row[size_t(target)];
}

// exp(mean NLL) over windows of `window` tokens, each row of logits from `logits_of(window ids)`.
template <class LogitsOf>
double perplexity_independent(const std::vector<int32_t>& ids, size_t window, size_t vocab, LogitsOf logits_of) {
  long double nll = 0;
  size_t count = 0;
  for (size_t s = 0; s < ids.size(); s += window) {
    const std::vector<int32_t> w(ids.begin() + std::ptrdiff_t(s), ids.begin() + std::ptrdiff_t(std::min(ids.size(), s + window)));
    if (w.size() < 2) continue;
    const std::vector<float> logits = logits_of(w);  // [w.size(), vocab]
    for (size_t t = 0; t + 1 < w.size(); ++t) nll += nll_independent(std::span(logits).subspan(t * vocab, vocab), w[t + 1]);
    count += w.size() - 1;
  }
  return double(std::exp(nll / count));
}

}  // namespace

TEST_CASE_FIXTURE(GpuTest, "perplexity equals exp(mean NLL) of the engine's and the reference's logits") {
  auto engine = load_engine(kTinyModelDir, engine_options(8));
  const size_t V = size_t(engine->config().vocab_size);
  // 19 tokens in windows of 8: 8 + 8 + 3, so 7 + 7 + 2 = 16 predictions.
  const std::vector<int32_t> ids = heldout_tokens(*engine, 19);
  const PerplexityResult r = evaluate_perplexity(*engine, ids, 8);
  CHECK(r.windows == 3);
  CHECK(r.predicted == 16);
  CHECK(r.perplexity == doctest::Approx(std::exp(r.mean_nll)).epsilon(1e-12));

  // The engine's own logits of each whole window (all positions), scored independently.
  const double from_engine = perplexity_independent(ids, 8, V, [&](const std::vector<int32_t>& w) {
    engine->reset();
    return engine->prefill(w, true);
  });
  CHECK(r.perplexity == doctest::Approx(from_engine).epsilon(1e-9));

  // The CPU reference forward (fp64 accumulation): equal up to fp32 rounding of the logits.
  auto model = Model::open(kTinyModelDir);
  ReferenceForward ref(model->config(), model->weights());
  const double from_reference =
      perplexity_independent(ids, 8, V, [&](const std::vector<int32_t>& w) { return ref.forward(w); });
  MESSAGE("tiny model, 19 held-out tokens: perplexity " << r.perplexity << " (reference " << from_reference << ")");
  CHECK(r.perplexity == doctest::Approx(from_reference).epsilon(1e-4));
  CHECK(r.perplexity > 1.0);

  CHECK_THROWS_WITH_AS(evaluate_perplexity(*engine, ids, 9), doctest::Contains("exceeds the context"), Error);
  CHECK_THROWS_WITH_AS(evaluate_perplexity(*engine, ids, 1), doctest::Contains("at least 2"), Error);
  CHECK_THROWS_WITH_AS(evaluate_perplexity(*engine, std::vector<int32_t>{5}, 8), doctest::Contains("need >= 2"), Error);
}

TEST_CASE("token_nll is -log softmax") {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  CHECK(token_nll(logits, 0) == doctest::Approx(std::log(z) - 1.0).epsilon(1e-14));
  CHECK(token_nll(logits, 2) == doctest::Approx(std::log(z) - 3.0).epsilon(1e-14));
  CHECK_THROWS_AS(token_nll(logits, 3), Error);
}

TEST_CASE("bench model configs") {
  const ModelConfig m = bench_model_config("megrez2");
  CHECK(m.hidden_size == 2048);
  CHECK(m.num_hidden_layers == 31);
  CHECK(m.num_attention_heads == 16);
  CHECK(m.num_key_value_heads == 4);
  CHECK(m.intermediate_size == 10944);
  CHECK(m.moe_intermediate_size == 1408);
  CHECK(m.n_routed_experts == 64);
  CHECK(m.num_experts_per_tok == 6);
  CHECK(m.n_shared_experts == 4);
  CHECK(m.experts_shared_frequency == 3);
  CHECK(m.vocab_size == 128880);
  CHECK(m.max_position_embeddings == 32768);
  const ModelConfig t = bench_model_config("tiny");
  CHECK(t.hidden_size == 256);
  CHECK(t.num_hidden_layers == 7);
  CHECK(bench_model_config("megrez2-half").num_hidden_layers == 16);
  CHECK_THROWS_WITH_AS(bench_model_config("huge"), doctest::Contains("known: megrez2"), Error);
}

TEST_CASE_FIXTURE(GpuTest, "synthetic tiny bench model: q4_0 file, deterministic, finite logits, stage timings") {
  TempDir dir("bench");
  const ModelConfig config = bench_model_config("tiny");
  const BenchModelSummary s = write_bench_gguf(dir.path("a.gguf"), config, DType::Q4_0, 7);
  write_bench_gguf(dir.path("b.gguf"), config, DType::Q4_0, 7);
  auto read = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  CHECK(read(dir.path("a.gguf")) == read(dir.path("b.gguf")));
  CHECK(s.weights == stored_weight_count(config).value());
  {
    auto model = Model::open(dir.path("a.gguf"));
    CHECK(model->weights().layers[0].wq.dtype == DType::Q4_0);
    CHECK(model->weights().pools[0][0].down.dtype == DType::Q4_0);
    CHECK(model->weights().layers[1].router.dtype == DType::F32);
  }

  EngineOptions options = engine_options(32);
  options.profile_stages = true;
  auto engine = load_engine(dir.path("a.gguf"), options);
  const std::vector<float> logits = engine->prefill(bench_prompt(8, config.vocab_size, 3), true);
  size_t finite = 0;
  for (float l : logits) finite += std::isfinite(l) ? 1 : 0;
  CHECK(finite == logits.size());

  // One decode pass: the attention stage reads every layer's q/k/v/o once.
  engine->reset_stage_timings();
  engine->decode_greedy(5);
  const auto D = config.hidden_size, HD = config.num_attention_heads * config.head_dim,
             KV = config.num_key_value_heads * config.head_dim;
  const uint64_t attention_bytes =
      uint64_t(config.num_hidden_layers) * (row_bytes(DType::Q4_0, D) * uint64_t(HD + 2 * KV) + row_bytes(DType::Q4_0, HD) * D);
  std::map<std::string, StageTiming> stages;
  for (const StageTiming& t : engine->stage_timings()) stages[t.stage] = t;
  for (const char* name : {"embed", "norms", "attention", "router", "experts", "shared MLP", "dense MLP", "lm_head", "sampling"}) {
    INFO(name);
    REQUIRE(stages.count(name) == 1);
    CHECK(stages[name].ms >= 0);
  }
  CHECK(stages["attention"].weight_bytes == attention_bytes);
  CHECK(stages["lm_head"].weight_bytes == row_bytes(DType::Q4_0, D) * uint64_t(config.vocab_size));
  // Experts: k per token per MoE layer, each gate + up + down.
  const uint64_t expert = 3 * row_bytes(DType::Q4_0, D) * uint64_t(config.moe_intermediate_size);
  CHECK(stages["experts"].weight_bytes == expert * uint64_t(config.num_experts_per_tok) * uint64_t(config.num_hidden_layers - 1));
}

TEST_CASE_FIXTURE(GpuTest, "pp and tg measurements") {
  auto engine = load_engine(kTinyModelDir, engine_options(8));
  const BenchTest pp = bench_prompt_processing(*engine, 6, 2);
  CHECK(pp.name == "pp6");
  REQUIRE(pp.seconds.size() == 2);
  CHECK(pp.first_token.size() == 2);
  CHECK(pp.mean_tokens_per_second() > 0);
  CHECK(pp.stages.empty());  // no profile_stages
  const BenchTest tg = bench_text_generation(*engine, 3, 3);
  CHECK(tg.name == "tg3");
  CHECK(tg.seconds.size() == 3);
  CHECK(engine->position() == 3);
  const double mean = tg.mean_tokens_per_second();
  double sq = 0;
  for (double s : tg.seconds) sq += (3 / s - mean) * (3 / s - mean);
  CHECK(tg.stddev_tokens_per_second() == doctest::Approx(std::sqrt(sq / 2)));
  CHECK_THROWS_WITH_AS(bench_text_generation(*engine, 9, 1), doctest::Contains("exceed the context"), Error);
  CHECK(bench_prompt(5, 100, 1) == bench_prompt(5, 100, 1));
}

TEST_CASE_FIXTURE(GpuTest, "pp and tg count the expert cache work of the timed repetitions only") {
  auto model = Model::open(kTinyModelDir);
  uint64_t moe_layers = 0;
  for (const LayerWeights& layer : model->weights().layers) moe_layers += layer.pool >= 0 ? 1 : 0;
  const uint64_t per_token = moe_layers * uint64_t(model->config().num_experts_per_tok);
  const uint64_t stride = expert_slot_stride(model->weights());

  EngineOptions options = engine_options(8);
  options.expert_budget = "25%";
  options.stream = StreamMode::OnDemand;
  auto engine = load_engine(kTinyModelDir, options);
  // 3 tokens x 2 repetitions; the warm-up token is not counted.
  const BenchTest tg = bench_text_generation(*engine, 3, 2);
  CHECK(tg.timed_tokens() == 6);
  CHECK(tg.stream.lookups == 6 * per_token);
  CHECK(tg.stream.hits + tg.stream.misses == tg.stream.lookups);
  CHECK(tg.stream.misses > 0);  // 25%: 8 slots for 32 experts, top-4 of 16 per layer
  CHECK(tg.stream.bytes_uploaded == tg.stream.misses * stride);
  CHECK(tg.stream.slots == 8);
  const BenchTest pp = bench_prompt_processing(*engine, 6, 2);
  CHECK(pp.stream.lookups > 0);
  CHECK(pp.stream.lookups <= 2 * 6 * per_token);  // distinct experts of each chunk, at most k per token
  CHECK(pp.stream.hits + pp.stream.misses == pp.stream.lookups);
  CHECK(pp.stream.bytes_uploaded == pp.stream.misses * stride);

  auto resident = load_engine(kTinyModelDir, engine_options(8));
  const BenchTest tg_resident = bench_text_generation(*resident, 3, 1);
  CHECK(tg_resident.stream.lookups == 0);
  CHECK(tg_resident.stream.bytes_uploaded == 0);
}
