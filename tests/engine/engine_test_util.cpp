#include "engine/engine_test_util.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "common/gpu_fixture.h"
#include "runtime/engine/sampler.h"

namespace megrez::test {

TempDir::TempDir(const std::string& tag) {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = std::filesystem::temp_directory_path() / ("megrez-engine-" + tag + "-" + std::to_string(rd()));
    if (std::filesystem::create_directory(candidate)) {
      dir_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

std::string TempDir::path(const std::string& name) const { return name.empty() ? dir_.string() : (dir_ / name).string(); }

LogitComparison compare_logits(std::span<const float> got, std::span<const float> want, size_t vocab) {
  REQUIRE(got.size() == want.size());
  REQUIRE(vocab > 0);
  REQUIRE(want.size() % vocab == 0);
  LogitComparison c;
  for (size_t i = 0; i < want.size(); ++i) {
    c.max_abs_diff = std::max(c.max_abs_diff, std::fabs(double(got[i]) - double(want[i])));
    c.max_abs_logit = std::max(c.max_abs_logit, std::fabs(double(want[i])));
  }
  for (size_t r = 0; r < want.size() / vocab; ++r) {
    if (argmax(row(got, vocab, r)) != argmax(row(want, vocab, r))) ++c.argmax_mismatches;
  }
  return c;
}

LogitComparison compare_logits(std::span<const float> got, std::span<const float> want, size_t vocab,
                               const std::vector<bool>& skip) {
  REQUIRE(got.size() == want.size());
  REQUIRE(skip.size() * vocab == want.size());
  std::vector<float> kept_got, kept_want;
  for (size_t r = 0; r < skip.size(); ++r) {
    if (skip[r]) continue;
    kept_got.insert(kept_got.end(), got.begin() + std::ptrdiff_t(r * vocab), got.begin() + std::ptrdiff_t((r + 1) * vocab));
    kept_want.insert(kept_want.end(), want.begin() + std::ptrdiff_t(r * vocab), want.begin() + std::ptrdiff_t((r + 1) * vocab));
  }
  return compare_logits(kept_got, kept_want, vocab);
}

std::vector<bool> router_near_ties(const ReferenceForward& ref, int64_t positions, int64_t layers, double margin) {
  std::vector<bool> near(size_t(positions), false);
  for (int64_t pos = 0; pos < positions; ++pos) {
    for (int64_t layer = 0; layer < layers; ++layer) {
      const RouteResult& r = ref.routing(pos, layer);
      if (!r.ids.empty() && r.margin < margin) near[size_t(pos)] = true;
    }
  }
  return near;
}

EngineOptions engine_options(uint32_t ctx_len, KvCacheType kv, uint32_t chunk) {
  EngineOptions o;
  o.ctx_len = ctx_len;
  o.kv_type = kv;
  o.chunk = chunk;
  return o;
}

std::unique_ptr<Engine> load_engine(const std::string& path, const EngineOptions& options) {
  return Engine::load(path, options, gpu());
}

}  // namespace megrez::test
