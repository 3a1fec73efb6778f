#include "runtime/vk/profiler.h"

namespace megrez {

GpuProfiler::GpuProfiler(Context& ctx, uint32_t max_scopes) : ctx_(ctx), max_scopes_(max_scopes) {
  if (!ctx.caps().timestamps) throw Error("GPU timestamps are not supported on the compute queue of " + ctx.info().name());
  if (max_scopes == 0) throw Error("GpuProfiler: max_scopes must be > 0");
  auto info = vk_struct<VkQueryPoolCreateInfo>(VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO);
  info.queryType = VK_QUERY_TYPE_TIMESTAMP;
  info.queryCount = 2 * max_scopes;
  vk_check(vkCreateQueryPool(ctx.device(), &info, nullptr, &pool_), "vkCreateQueryPool");
}

GpuProfiler::~GpuProfiler() { vkDestroyQueryPool(ctx_.device(), pool_, nullptr); }

static void require_recording(const CommandBuffer& cmd) {
  if (!cmd.recording()) throw Error("GpuProfiler: command buffer is not recording (call begin())");
}

void GpuProfiler::reset(CommandBuffer& cmd) {
  require_recording(cmd);
  vkCmdResetQueryPool(cmd.handle(), pool_, 0, 2 * max_scopes_);
  names_.clear();
  ended_.clear();
}

uint32_t GpuProfiler::begin(CommandBuffer& cmd, std::string_view name) {
  require_recording(cmd);
  if (names_.size() == max_scopes_) {
    throw Error("GpuProfiler: more than " + std::to_string(max_scopes_) + " scopes in one recording");
  }
  const auto scope = static_cast<uint32_t>(names_.size());
  names_.emplace_back(name);
  ended_.push_back(false);
  // Bottom of pipe: the stamp is taken once all earlier work completed, so a scope measures
  // from the end of what came before to the end of its own work.
  vkCmdWriteTimestamp(cmd.handle(), VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pool_, 2 * scope);
  return scope;
}

void GpuProfiler::end(CommandBuffer& cmd, uint32_t scope) {
  require_recording(cmd);
  if (scope >= names_.size() || ended_[scope]) throw Error("GpuProfiler::end: scope " + std::to_string(scope) + " is not open");
  ended_[scope] = true;
  vkCmdWriteTimestamp(cmd.handle(), VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, pool_, 2 * scope + 1);
}

std::vector<GpuProfiler::Scope> GpuProfiler::results() const {
  std::vector<Scope> out;
  if (names_.empty()) return out;
  for (size_t i = 0; i < names_.size(); ++i) {
    if (!ended_[i]) throw Error("GpuProfiler: scope '" + names_[i] + "' was never ended");
  }
  std::vector<uint64_t> ticks(2 * names_.size());
  VkResult result = vkGetQueryPoolResults(ctx_.device(), pool_, 0, static_cast<uint32_t>(ticks.size()),
                                          ticks.size() * sizeof(uint64_t), ticks.data(), sizeof(uint64_t),
                                          VK_QUERY_RESULT_64_BIT);
  if (result == VK_NOT_READY) throw Error("GpuProfiler: results read before the command buffer finished");
  vk_check(result, "vkGetQueryPoolResults");
  const uint32_t bits = ctx_.caps().timestamp_valid_bits;
  const uint64_t mask = bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
  const double ns_per_tick = ctx_.caps().timestamp_period_ns;
  for (size_t i = 0; i < names_.size(); ++i) {
    Scope s{names_[i], ticks[2 * i] & mask, ticks[2 * i + 1] & mask, 0.0};
    // Wrapped counters (few valid bits) still subtract correctly modulo 2^bits.
    s.ms = static_cast<double>((s.end_ticks - s.begin_ticks) & mask) * ns_per_tick * 1e-6;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace megrez
