#pragma once
// Helpers for the engine suite: the bundled tiny model, temporary directories, logit
// comparisons. Every engine here runs on the shared validated GPU context (gpu_fixture.h).
#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "loader/formats/model.h"
#include "loader/reference/reference_forward.h"
#include "runtime/engine/engine.h"

namespace megrez::test {

inline const std::string kTinyModelDir = std::string(MEGREZ_SOURCE_DIR) + "/models/megrez2-tiny";

// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path(const std::string& name = "") const;

 private:
  std::filesystem::path dir_;
};

// Logits of the engine against the CPU reference, row by row ([rows, vocab] each).
struct LogitComparison {
  double max_abs_diff = 0;     // over every element
  double max_abs_logit = 0;    // of the reference
  double relative() const { return max_abs_logit > 0 ? max_abs_diff / max_abs_logit : max_abs_diff; }
  size_t argmax_mismatches = 0;  // rows whose largest logit (lowest id on ties) differs
};
LogitComparison compare_logits(std::span<const float> got, std::span<const float> want, size_t vocab);
// The same over the rows not marked in `skip`.
LogitComparison compare_logits(std::span<const float> got, std::span<const float> want, size_t vocab,
                               const std::vector<bool>& skip);

// Positions 0..positions-1 whose routing in `ref` (which has run them) came within `margin`
// of choosing other experts in some layer (RouteResult::margin): there another correct
// implementation's fp32 rounding may route differently, a discrete change of the logits.
std::vector<bool> router_near_ties(const ReferenceForward& ref, int64_t positions, int64_t layers, double margin);

// The engine options the suite uses: a small context, the given KV type and chunk.
EngineOptions engine_options(uint32_t ctx_len, KvCacheType kv = KvCacheType::F32, uint32_t chunk = 0);

// Loads `path` on the shared validated context.
std::unique_ptr<Engine> load_engine(const std::string& path, const EngineOptions& options);

// n deterministic pseudo-random token ids below `vocab` (an LCG, the same on every platform).
inline std::vector<int32_t> prompt_ids(size_t n, int64_t vocab, uint32_t seed) {
  std::vector<int32_t> ids(n);
  uint32_t state = seed;
  for (int32_t& id : ids) {
    state = state * 1664525u + 1013904223u;
    id = int32_t((state >> 8) % uint32_t(vocab));
  }
  return ids;
}

// Row `r` of a [rows, vocab] matrix.
inline std::span<const float> row(std::span<const float> m, size_t vocab, size_t r) {
  return m.subspan(r * vocab, vocab);
}

}  // namespace megrez::test
