#pragma once
// Perplexity of a token sequence under the engine, by the method of
// models/megrez2-tiny/train/export.py so the figures compare with PyTorch's: the tokens are
// cut into consecutive non-overlapping windows of `window` tokens, each evaluated from an
// empty context (position 0); every token after the first of its window is predicted from
// the ones before it in that window, and perplexity = exp(mean negative log-likelihood).
// A last window of one token predicts nothing and is skipped. (Sliding windows with a
// stride would score more tokens with longer context; non-overlapping ones are what the
// model's README reports.)
#include <cstdint>
#include <span>

#include "runtime/engine/engine.h"

namespace megrez {

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;      // nats per predicted token
  uint64_t predicted = 0;   // tokens scored
  uint64_t windows = 0;
  double seconds = 0;
};

// -log softmax(logits)[target], in double precision with the max subtracted.
double token_nll(std::span<const float> logits, int32_t target);

// Resets the engine before each window (and leaves it holding the last one). megrez::Error
// when there are fewer than 2 tokens, the window is < 2, or the window exceeds the context.
PerplexityResult evaluate_perplexity(Engine& engine, std::span<const int32_t> tokens, uint32_t window);

}  // namespace megrez
