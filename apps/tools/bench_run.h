#pragma once
// The measurements behind megrez-bench, llama-bench style: "ppN" feeds an N-token prompt
// from an empty context (prompt processing; its time is also the time to first token, as it
// ends with the first generated id picked from the logits), "tgN" generates N tokens one by
// one from an empty context with the GPU argmax (text generation). Each test repeats `reps`
// times after one untimed warm-up; prompts are fixed pseudo-random ids (seeded), so runs
// compare. With EngineOptions::profile_stages the per-stage GPU times are summed per test;
// the expert cache statistics of streaming mode always are (the warm-up's excluded).
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/engine/engine.h"

namespace megrez {

struct BenchTest {
  std::string name;                 // "pp512", "tg128"
  uint32_t tokens = 0;              // per repetition
  std::vector<double> seconds;      // one per repetition
  std::vector<double> first_token;  // pp only: seconds until the first generated id is known
  std::vector<StageTiming> stages;  // summed over repetitions (empty without profile_stages)
  StreamStats stream;               // expert streaming, summed over repetitions (zero when resident)
  // tg only: GPU time of the timed passes (EngineStats::decode_gpu_seconds), summed over
  // repetitions; 0 where the engine does not time passes.
  double gpu_seconds = 0;
  // tg only: the timed passes submitted behind the one before, and the device's idle time
  // between the two (EngineStats::decode_chained_gap_seconds), summed over repetitions.
  uint64_t chained_passes = 0;
  double chained_gap_seconds = 0;

  double mean_tokens_per_second() const;
  double stddev_tokens_per_second() const;  // sample standard deviation over repetitions
  double mean_first_token_seconds() const;
  uint64_t timed_tokens() const { return uint64_t(tokens) * seconds.size(); }
};

// Pseudo-random prompt ids in [0, vocab) from `seed` (the same on every platform).
std::vector<int32_t> bench_prompt(uint32_t n, int64_t vocab, uint64_t seed);

BenchTest bench_prompt_processing(Engine& engine, uint32_t tokens, uint32_t reps, uint64_t seed = 1);
BenchTest bench_text_generation(Engine& engine, uint32_t tokens, uint32_t reps, uint64_t seed = 1);

}  // namespace megrez
