#include "apps/tools/bench_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "loader/error.h"

namespace megrez {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<double> rates(const BenchTest& t) {
  std::vector<double> r;
  for (double s : t.seconds) r.push_back(s > 0 ? t.tokens / s : 0);
  return r;
}

// Adds `add` to `sum` stage by stage (first-seen order).
void accumulate(std::vector<StageTiming>& sum, const std::vector<StageTiming>& add) {
  for (const StageTiming& s : add) {
    auto it = std::find_if(sum.begin(), sum.end(), [&](const StageTiming& x) { return x.stage == s.stage; });
    if (it == sum.end()) {
      sum.push_back(s);
    } else {
      it->ms += s.ms;
      it->weight_bytes += s.weight_bytes;
    }
  }
}

void check_test(const Engine& engine, uint32_t tokens, uint32_t reps, const char* what) {
  if (tokens == 0) throw Error(std::string(what) + ": 0 tokens");
  if (reps == 0) throw Error(std::string(what) + ": 0 repetitions");
  if (tokens > engine.context_length()) {
    throw Error(std::string(what) + ": " + std::to_string(tokens) + " tokens exceed the context of " +
                std::to_string(engine.context_length()) + " tokens (give a larger --ctx)");
  }
}

int32_t argmax(const std::vector<float>& logits) {
  return int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

}  // namespace

double BenchTest::mean_tokens_per_second() const {
  const std::vector<double> r = rates(*this);
  double sum = 0;
  for (double x : r) sum += x;
  return r.empty() ? 0 : sum / double(r.size());
}

double BenchTest::stddev_tokens_per_second() const {
  const std::vector<double> r = rates(*this);
  if (r.size() < 2) return 0;
  const double mean = mean_tokens_per_second();
  double sq = 0;
  for (double x : r) sq += (x - mean) * (x - mean);
  return std::sqrt(sq / double(r.size() - 1));
}

double BenchTest::mean_first_token_seconds() const {
  double sum = 0;
  for (double s : first_token) sum += s;
  return first_token.empty() ? 0 : sum / double(first_token.size());
}

std::vector<int32_t> bench_prompt(uint32_t n, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> ids(n);
  uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (int32_t& id : ids) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    id = int32_t((state >> 33) % uint64_t(vocab));
  }
  return ids;
}

BenchTest bench_prompt_processing(Engine& engine, uint32_t tokens, uint32_t reps, uint64_t seed) {
  check_test(engine, tokens, reps, "prompt processing");
  const std::vector<int32_t> prompt = bench_prompt(tokens, engine.config().vocab_size, seed);
  BenchTest t{"pp" + std::to_string(tokens), tokens, {}, {}, {}, {}, 0, 0, 0};
  engine.reset();  // warm-up: one pass of up to a chunk (page-in, first-use costs)
  engine.prefill(std::span(prompt).first(std::min(tokens, engine.prefill_chunk())));
  engine.reset_stream_stats();
  for (uint32_t r = 0; r < reps; ++r) {
    engine.reset();
    engine.reset_stage_timings();
    const Clock::time_point start = Clock::now();
    // Picking the first generated id from the last logits ends the time to first token.
    [[maybe_unused]] const int32_t first = argmax(engine.prefill(prompt));
    const double s = since(start);
    t.seconds.push_back(s);
    t.first_token.push_back(s);
    accumulate(t.stages, engine.stage_timings());
  }
  engine.reset_stage_timings();
  t.stream = engine.stats().stream;
  return t;
}

BenchTest bench_text_generation(Engine& engine, uint32_t tokens, uint32_t reps, uint64_t seed) {
  check_test(engine, tokens, reps, "text generation");
  const int32_t start_id = bench_prompt(1, engine.config().vocab_size, seed)[0];
  BenchTest t{"tg" + std::to_string(tokens), tokens, {}, {}, {}, {}, 0, 0, 0};
  engine.reset();  // warm-up: one token
  engine.decode_greedy(start_id);
  engine.reset_stream_stats();
  bool timed = true;
  for (uint32_t r = 0; r < reps; ++r) {
    engine.reset();
    engine.reset_stage_timings();
    const EngineStats before = engine.stats();
    const Clock::time_point start = Clock::now();
    int32_t id = start_id;
    for (uint32_t i = 0; i < tokens; ++i) id = engine.decode_greedy(id);
    t.seconds.push_back(since(start));
    accumulate(t.stages, engine.stage_timings());
    const EngineStats& after = engine.stats();
    timed = timed && after.decode_gpu_tokens - before.decode_gpu_tokens == tokens;
    t.gpu_seconds += after.decode_gpu_seconds - before.decode_gpu_seconds;
    t.chained_passes += after.decode_chained_passes - before.decode_chained_passes;
    t.chained_gap_seconds += after.decode_chained_gap_seconds - before.decode_chained_gap_seconds;
  }
  if (!timed) t.gpu_seconds = 0;
  engine.reset_stage_timings();
  t.stream = engine.stats().stream;
  return t;
}

}  // namespace megrez
