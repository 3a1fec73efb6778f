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
