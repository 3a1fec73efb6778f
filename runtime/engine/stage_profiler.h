#pragma once
// Per-stage GPU time of the forward pass (attention, router, experts, ...), from timestamps
// written around each group of dispatches, summed over every pass since the last clear().
// The engine creates one only when EngineOptions::profile_stages is set: the timestamps add
// a little work to every pass, so plain runs do not pay for them.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/vk/profiler.h"

namespace megrez {

// One stage's totals; the public copy of this is megrez::StageTiming in engine.h.
struct StageTotal {
  std::string stage;
  double ms = 0;              // GPU time summed over passes
  uint64_t weight_bytes = 0;  // weight bytes the stage's kernels read, summed over passes
};

class StageProfiler {
 public:
  // `max_scopes`: the most scopes one pass records (the forward pass knows its layer count).
  StageProfiler(Context& ctx, uint32_t max_scopes);

  // Record first in each command buffer that is measured.
  void reset(CommandBuffer& cmd);
  uint32_t begin(CommandBuffer& cmd, std::string_view stage, uint64_t weight_bytes);
  void end(CommandBuffer& cmd, uint32_t scope);
  // After the command buffer finished: adds its scopes to the totals.
  void collect();

  const std::vector<StageTotal>& totals() const { return totals_; }  // first-seen order
  void clear() { totals_.clear(); }

 private:
  GpuProfiler gpu_;
  std::vector<uint64_t> pending_bytes_;  // per scope of the current recording
  std::vector<StageTotal> totals_;
};

// Times a group of dispatches when a profiler is attached; does nothing when it is null.
class StageScope {
 public:
  StageScope(StageProfiler* profiler, CommandBuffer& cmd, std::string_view stage, uint64_t weight_bytes = 0)
      : profiler_(profiler), cmd_(cmd) {
    if (profiler_) scope_ = profiler_->begin(cmd_, stage, weight_bytes);
  }
  ~StageScope() {
    if (profiler_) profiler_->end(cmd_, scope_);
  }
  StageScope(const StageScope&) = delete;
  StageScope& operator=(const StageScope&) = delete;

 private:
  StageProfiler* profiler_;
  CommandBuffer& cmd_;
  uint32_t scope_ = 0;
};

}  // namespace megrez
