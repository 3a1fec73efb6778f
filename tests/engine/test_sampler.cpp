// The host sampler: exact expectations where the result is determined (greedy, top-k 1, tiny
// top-p, the repetition penalty's arithmetic, seeds), and sampled frequencies against the
// softmax probabilities computed here independently, with a tolerance of 5 standard errors.
#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <vector>

#include "loader/error.h"
#include "runtime/engine/sampler.h"

using namespace megrez;

namespace {

// Frequencies of `draws` samples.
std::map<int32_t, double> frequencies(const std::vector<float>& logits, const SamplerOptions& o, int draws,
                                      std::span<const int32_t> history = {}) {
  Sampler s(o.seed);
  std::map<int32_t, double> f;
  for (int i = 0; i < draws; ++i) f[s.sample(logits, o, history)] += 1.0 / draws;
  return f;
}

// |got - p| within 5 standard errors of a binomial proportion.
void check_frequency(double got, double p, int draws) {
  CHECK(std::fabs(got - p) <= 5 * std::sqrt(p * (1 - p) / draws) + 1e-12);
}

}  // namespace

TEST_CASE("argmax: largest value, lowest index on ties, NaN never wins") {
  CHECK(argmax(std::vector<float>{1, 3, 2}) == 1);
  CHECK(argmax(std::vector<float>{3, 1, 3}) == 0);
  CHECK(argmax(std::vector<float>{NAN, -1, NAN}) == 1);
  CHECK(argmax(std::vector<float>{-INFINITY, -INFINITY}) == 0);
  CHECK(argmax(std::vector<float>{}) == -1);
}

TEST_CASE("sampler: greedy, top-k 1 and a tiny top-p all pick the argmax without randomness") {
  const std::vector<float> logits = {0.5f, 2.0f, 2.0f, -1.0f};
  Sampler s(123);
  CHECK(s.sample(logits, {}) == 1);
  SamplerOptions top1;
  top1.temperature = 5.0f;
  top1.top_k = 1;
  SamplerOptions nucleus;
  nucleus.temperature = 1.0f;
  nucleus.top_p = 1e-6f;
  for (int i = 0; i < 50; ++i) {
    CHECK(s.sample(logits, top1) == 1);
    CHECK(s.sample(logits, nucleus) == 1);
  }
}

TEST_CASE("sampler: temperature sampling follows softmax(logits / T)") {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  const int draws = 20000;
  SamplerOptions o;
  o.temperature = 1.0f;
  o.seed = 1;
  auto f = frequencies(logits, o, draws);
  check_frequency(f[0], 0.5, draws);
  check_frequency(f[1], 0.3, draws);
  check_frequency(f[2], 0.2, draws);

  // T = 0.5 squares the probabilities before renormalising: .25 : .09 : .04.
  o.temperature = 0.5f;
  f = frequencies(logits, o, draws);
  check_frequency(f[0], 0.25 / 0.38, draws);
  check_frequency(f[1], 0.09 / 0.38, draws);
  check_frequency(f[2], 0.04 / 0.38, draws);
}

TEST_CASE("sampler: top-k and top-p cut the tail, then renormalise") {
  const std::vector<float> logits = {std::log(0.1f), std::log(0.5f), std::log(0.15f), std::log(0.25f)};
  const int draws = 20000;
  SamplerOptions o;
  o.temperature = 1.0f;
  o.seed = 9;
  o.top_k = 2;  // ids 1 (0.5) and 3 (0.25)
  auto f = frequencies(logits, o, draws);
  CHECK(f.count(0) == 0);
  CHECK(f.count(2) == 0);
  check_frequency(f[1], 0.5 / 0.75, draws);

  o.top_k = 0;
  o.top_p = 0.8f;  // 0.5 + 0.25 = 0.75 < 0.8, so 0.15 joins; 0.1 stays out
  f = frequencies(logits, o, draws);
  CHECK(f.count(0) == 0);
  check_frequency(f[2], 0.15 / 0.9, draws);
  check_frequency(f[3], 0.25 / 0.9, draws);
}

TEST_CASE("sampler: the repetition penalty divides positive and multiplies negative logits of seen tokens") {
  Sampler s;
  SamplerOptions o;
  o.repeat_penalty = 1.5f;
  // 3.0 / 1.5 = 2.0 < 2.5: the seen token 0 loses to token 1.
  CHECK(s.sample(std::vector<float>{3.0f, 2.5f}, o, std::vector<int32_t>{0}) == 1);
  // Unseen tokens keep their logits.
  CHECK(s.sample(std::vector<float>{3.0f, 2.5f}, o, std::vector<int32_t>{1}) == 0);
  // Negative: -1.0 * 1.5 = -1.5 < -1.2.
  CHECK(s.sample(std::vector<float>{-1.0f, -1.2f}, o, std::vector<int32_t>{0}) == 1);
  // Only the last repeat_last_n tokens count.
  o.repeat_last_n = 1;
  CHECK(s.sample(std::vector<float>{3.0f, 2.5f}, o, std::vector<int32_t>{0, 1}) == 0);
  // A history id outside the vocabulary is an error, not ignored.
  CHECK_THROWS_AS(s.sample(std::vector<float>{1.0f, 2.0f}, o, std::vector<int32_t>{7}), Error);
}

TEST_CASE("sampler: frequency and presence penalties subtract count x frequency + presence from seen tokens") {
  Sampler s;
  SamplerOptions o;
  o.frequency_penalty = 0.4f;
  // Token 0 seen twice: 3.0 - 2 * 0.4 = 2.2 < 2.5.
  CHECK(s.sample(std::vector<float>{3.0f, 2.5f}, o, std::vector<int32_t>{0, 0}) == 1);
  // Seen once: 3.0 - 0.4 = 2.6 > 2.5.
  CHECK(s.sample(std::vector<float>{3.0f, 2.5f}, o, std::vector<int32_t>{0}) == 0);
  o.frequency_penalty = 0.0f;
  o.presence_penalty = 0.6f;
  // Presence does not grow with the count: 3.0 - 0.6 = 2.4 < 2.5, once or five times.
  CHECK(s.sample(std::vector<float>{3.0f, 2.5f}, o, std::vector<int32_t>{0}) == 1);
  CHECK(s.sample(std::vector<float>{3.0f, 2.35f}, o, std::vector<int32_t>{0, 0, 0, 0, 0}) == 0);
  // Negative penalties favour seen tokens; both add up with the repetition penalty.
  o.presence_penalty = -1.0f;
  CHECK(s.sample(std::vector<float>{2.0f, 2.5f}, o, std::vector<int32_t>{0}) == 0);
  o.presence_penalty = 0.5f;
  o.repeat_penalty = 2.0f;  // 3.0 / 2 - 0.5 = 1.0 < 1.1
  CHECK(s.sample(std::vector<float>{3.0f, 1.1f}, o, std::vector<int32_t>{0}) == 1);
  // Only the window counts.
  o.repeat_penalty = 1.0f;
  o.repeat_last_n = 1;
  CHECK(s.sample(std::vector<float>{3.0f, 2.8f}, o, std::vector<int32_t>{1, 0}) == 1);  // all: 2.5 vs 2.3
  // Out of OpenAI's range [-2, 2]: an error.
  o.frequency_penalty = 2.5f;
  CHECK_THROWS_AS(s.sample(std::vector<float>{1.0f}, o), Error);
  o.frequency_penalty = NAN;
  CHECK_THROWS_AS(s.sample(std::vector<float>{1.0f}, o), Error);
}

TEST_CASE("sampler: the same seed gives the same tokens, another seed other tokens") {
  std::vector<float> logits(50);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(i % 7) * 0.3f;
  SamplerOptions o;
  o.temperature = 1.0f;
  auto run = [&](uint64_t seed) {
    Sampler s(seed);
    std::vector<int32_t> out;
    for (int i = 0; i < 64; ++i) out.push_back(s.sample(logits, o));
    return out;
  };
  CHECK(run(42) == run(42));
  CHECK(run(42) != run(43));
  Sampler s(42);
  const int32_t first = s.sample(logits, o);
  s.reseed(42);
  CHECK(s.sample(logits, o) == first);
}

TEST_CASE("sampler: invalid options and degenerate logits are errors") {
  Sampler s;
  SamplerOptions o;
  o.temperature = 1.0f;
  o.top_p = 0.0f;
  CHECK_THROWS_AS(s.sample(std::vector<float>{1.0f}, o), Error);
  o.top_p = 1.0f;
  o.repeat_penalty = -1.0f;
  CHECK_THROWS_AS(s.sample(std::vector<float>{1.0f}, o), Error);
  o.repeat_penalty = 1.0f;
  CHECK_THROWS_AS(s.sample(std::vector<float>{}, o), Error);
  CHECK_THROWS_AS(s.sample(std::vector<float>{NAN, -INFINITY}, o), Error);
}
