#include "runtime/engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_map>
#include <vector>

#include "loader/error.h"

namespace megrez {

namespace {

struct Candidate {
  int32_t id;
  float logit;
};

// Larger logit first, lower id on ties: a total order, so results never depend on the sort.
bool ranks_before(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// CTRL-style penalty (as llama.cpp applies it): a seen token's positive logit is divided by
// the penalty and a negative one multiplied, so it always becomes less likely. Then OpenAI's
// frequency and presence penalties, subtracted.
void apply_penalties(std::vector<float>& logits, const SamplerOptions& o, std::span<const int32_t> history) {
  if (!o.penalizes() || history.empty() || o.repeat_last_n == 0) return;
  const size_t window = o.repeat_last_n < 0 ? history.size() : std::min<size_t>(history.size(), size_t(o.repeat_last_n));
  std::unordered_map<int32_t, uint32_t> seen;
  for (auto it = history.end() - std::ptrdiff_t(window); it != history.end(); ++it) ++seen[*it];
  for (const auto& [id, count] : seen) {
    if (id < 0 || size_t(id) >= logits.size()) {
      throw Error("sampler: history token " + std::to_string(id) + " is outside the vocabulary of " +
                  std::to_string(logits.size()));
    }
    float& l = logits[size_t(id)];
    l = l > 0 ? l / o.repeat_penalty : l * o.repeat_penalty;
    l -= float(count) * o.frequency_penalty + o.presence_penalty;
  }
}

}  // namespace

void validate(const SamplerOptions& o) {
  if (!std::isfinite(o.temperature)) throw Error("sampler: temperature must be finite", ErrorKind::InvalidArgument);
  if (!(o.top_p > 0.0f) || std::isnan(o.top_p)) {
    throw Error("sampler: top-p must be in (0, 1], got " + std::to_string(o.top_p), ErrorKind::InvalidArgument);
  }
  if (!(o.repeat_penalty > 0.0f) || !std::isfinite(o.repeat_penalty)) {
    throw Error("sampler: repeat penalty must be positive, got " + std::to_string(o.repeat_penalty), ErrorKind::InvalidArgument);
  }
  for (const auto& [name, value] : {std::pair{"frequency", o.frequency_penalty}, std::pair{"presence", o.presence_penalty}}) {
    if (!(value >= -2.0f && value <= 2.0f)) {
      throw Error(std::string("sampler: ") + name + " penalty must be in [-2, 2], got " + std::to_string(value),
                  ErrorKind::InvalidArgument);
    }
  }
}

int32_t argmax(std::span<const float> logits) {
  int32_t best = logits.empty() ? -1 : 0;
  float best_value = -INFINITY;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] > best_value) {  // NaN compares false: counted as -inf
      best_value = logits[i];
      best = int32_t(i);
    }
  }
  return best;
}

double Sampler::uniform() { return double(rng_() >> 11) * 0x1.0p-53; }

int32_t Sampler::sample(std::span<const float> input, const SamplerOptions& o, std::span<const int32_t> history) {
  validate(o);
  if (input.empty()) throw Error("sampler: no logits to sample from");
  std::vector<float> logits(input.begin(), input.end());
  apply_penalties(logits, o, history);
  if (o.greedy()) return argmax(logits);

  std::vector<Candidate> candidates;
  candidates.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] > -INFINITY) candidates.push_back({int32_t(i), logits[i]});  // drops NaN and -inf
  }
  if (candidates.empty()) throw Error("sampler: every logit is NaN or -infinity");
  // Best first; only the top k need ordering when top-k is on.
  const size_t keep = o.top_k > 0 ? std::min(candidates.size(), size_t(o.top_k)) : candidates.size();
  std::partial_sort(candidates.begin(), candidates.begin() + std::ptrdiff_t(keep), candidates.end(), ranks_before);
  candidates.resize(keep);

  // Softmax at the temperature, relative to the best logit (no overflow).
  std::vector<double> weights(candidates.size());
  double total = 0;
  for (size_t i = 0; i < candidates.size(); ++i) {
    weights[i] = std::exp((double(candidates[i].logit) - double(candidates[0].logit)) / double(o.temperature));
    total += weights[i];
  }
  // Nucleus: the shortest prefix whose probability reaches top_p (at least one token).
  if (o.top_p < 1.0f) {
    double cumulative = 0;
    size_t n = 0;
    while (n < weights.size() && (n == 0 || cumulative < double(o.top_p) * total)) cumulative += weights[n++];
    weights.resize(n);
    total = cumulative;
  }
  double u = uniform() * total;
  for (size_t i = 0; i < weights.size(); ++i) {
    if (u < weights[i]) return candidates[i].id;
    u -= weights[i];
  }
  return candidates[weights.size() - 1].id;  // rounding left u at the very end
}

}  // namespace megrez
