#include "apps/tools/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include "loader/error.h"

namespace megrez {

double token_nll(std::span<const float> logits, int32_t target) {
  if (target < 0 || size_t(target) >= logits.size()) {
    throw Error("perplexity: token id " + std::to_string(target) + " is outside the " +
                std::to_string(logits.size()) + " logits");
  }
  const double max = *std::max_element(logits.begin(), logits.end());
  double sum = 0;
  for (float l : logits) sum += std::exp(double(l) - max);
  return std::log(sum) + max - double(logits[size_t(target)]);
}

PerplexityResult evaluate_perplexity(Engine& engine, std::span<const int32_t> tokens, uint32_t window) {
  if (window < 2) throw Error("perplexity: the window must hold at least 2 tokens, got " + std::to_string(window));
  if (window > engine.context_length()) {
    throw Error("perplexity: the window of " + std::to_string(window) + " tokens exceeds the context of " +
                std::to_string(engine.context_length()) + " tokens (give a longer --ctx)");
  }
  if (tokens.size() < 2) throw Error("perplexity: the text has " + std::to_string(tokens.size()) + " tokens; need >= 2");
  const auto start = std::chrono::steady_clock::now();
  const size_t V = size_t(engine.config().vocab_size);
  PerplexityResult r;
  double nll = 0;
  for (size_t s = 0; s < tokens.size(); s += window) {
    const std::span<const int32_t> w = tokens.subspan(s, std::min<size_t>(window, tokens.size() - s));
    if (w.size() < 2) continue;
    engine.reset();
    // Logits of every position but the last: position t predicts token t + 1.
    const std::vector<float> logits = engine.prefill(w.first(w.size() - 1), true);
    for (size_t t = 0; t + 1 < w.size(); ++t) nll += token_nll(std::span(logits).subspan(t * V, V), w[t + 1]);
    r.predicted += w.size() - 1;
    ++r.windows;
  }
  r.mean_nll = nll / double(r.predicted);
  r.perplexity = std::exp(r.mean_nll);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace megrez
