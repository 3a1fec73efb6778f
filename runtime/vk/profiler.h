#pragma once
// GPU timestamps: named scopes recorded into a command buffer, read back in milliseconds
// after it finished. One GpuProfiler per command buffer that is being measured.
#include <string>
#include <string_view>
#include <vector>

#include "runtime/vk/commands.h"

namespace megrez {

class GpuProfiler {
 public:
  // Throws megrez::Error when the compute queue cannot write timestamps (caps.timestamps).
  explicit GpuProfiler(Context& ctx, uint32_t max_scopes = 256);
  ~GpuProfiler();
  GpuProfiler(const GpuProfiler&) = delete;
  GpuProfiler& operator=(const GpuProfiler&) = delete;

  // Record first in each recording that uses scopes: forgets the previous scopes.
  void reset(CommandBuffer& cmd);
  // Scopes may nest; each returns an id for end().
  uint32_t begin(CommandBuffer& cmd, std::string_view name);
  void end(CommandBuffer& cmd, uint32_t scope);

  struct Scope {
    std::string name;
    uint64_t begin_ticks = 0, end_ticks = 0;  // raw timestamps (masked to the valid bits)
    double ms = 0;
  };
  // After the command buffer finished (wait()). Throws if a scope was never ended or the
  // results are not available.
  std::vector<Scope> results() const;

 private:
  Context& ctx_;
  uint32_t max_scopes_;
  VkQueryPool pool_ = VK_NULL_HANDLE;
  std::vector<std::string> names_;
  std::vector<bool> ended_;
};

}  // namespace megrez
