#pragma once
// Choosing the next token from logits on the host: greedy, temperature, top-k, top-p
// (nucleus) and a repetition penalty, with a seeded generator whose draws are the same on
// every platform (std::mt19937_64 plus our own uniform mapping; <random> distributions are
// implementation-defined). Greedy decoding can also run on the GPU (Engine::decode_greedy).
#include <cstdint>
#include <random>
#include <span>

namespace megrez {

struct SamplerOptions {
  float temperature = 0.0f;       // <= 0: greedy (argmax, lowest id on ties)
  int32_t top_k = 0;              // keep the k most likely tokens; <= 0: all
  float top_p = 1.0f;             // keep the smallest set whose probability reaches top_p; >= 1: all
  uint64_t seed = 0;              // generator seed
  float repeat_penalty = 1.0f;    // > 1 discourages tokens seen in the last repeat_last_n of history
  int32_t repeat_last_n = 64;     // history window for the penalties; < 0: the whole history
  // OpenAI's additive penalties over the same window: a token seen c times loses
  // c * frequency_penalty + presence_penalty (c > 0) from its logit. Each in [-2, 2].
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;

  bool greedy() const { return temperature <= 0.0f; }
  bool penalizes() const { return repeat_penalty != 1.0f || frequency_penalty != 0.0f || presence_penalty != 0.0f; }
};

// Throws megrez::Error naming the first out-of-range option (negative penalty, NaN, ...).
void validate(const SamplerOptions& options);

// Index of the largest value, lowest index on ties, NaN counted as -infinity (the rule the
// GPU argmax kernel follows). -1 for an empty span.
int32_t argmax(std::span<const float> logits);

class Sampler {
 public:
  explicit Sampler(uint64_t seed = 0) : rng_(seed), seed_(seed) {}

  void reseed(uint64_t seed) {
    rng_.seed(seed);
    seed_ = seed;
  }
  uint64_t seed() const { return seed_; }

  // The next token. Greedy options draw nothing from the generator.
  int32_t sample(std::span<const float> logits, const SamplerOptions& options, std::span<const int32_t> history = {});

 private:
  double uniform();  // [0, 1) with 53 random bits

  std::mt19937_64 rng_;
  uint64_t seed_;
};

}  // namespace megrez
