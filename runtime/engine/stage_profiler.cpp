#include "runtime/engine/stage_profiler.h"

#include <algorithm>

namespace megrez {

StageProfiler::StageProfiler(Context& ctx, uint32_t max_scopes) : gpu_(ctx, max_scopes) {}

void StageProfiler::reset(CommandBuffer& cmd) {
  gpu_.reset(cmd);
  pending_bytes_.clear();
}

uint32_t StageProfiler::begin(CommandBuffer& cmd, std::string_view stage, uint64_t weight_bytes) {
  const uint32_t scope = gpu_.begin(cmd, stage);
  pending_bytes_.push_back(weight_bytes);
  return scope;
}

void StageProfiler::end(CommandBuffer& cmd, uint32_t scope) { gpu_.end(cmd, scope); }

void StageProfiler::collect() {
  const std::vector<GpuProfiler::Scope> scopes = gpu_.results();
  for (size_t i = 0; i < scopes.size(); ++i) {
    auto it = std::find_if(totals_.begin(), totals_.end(), [&](const StageTotal& t) { return t.stage == scopes[i].name; });
    if (it == totals_.end()) it = totals_.insert(totals_.end(), StageTotal{scopes[i].name, 0, 0});
    it->ms += scopes[i].ms;
    it->weight_bytes += pending_bytes_[i];
  }
  pending_bytes_.clear();
}

}  // namespace megrez
