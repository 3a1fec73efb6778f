#include "apps/tools/bandwidth.h"

#include <algorithm>

#include "runtime/vk/dispatch.h"
#include "runtime/vk/profiler.h"
#include "shaders/abi/copy.h"

namespace megrez {

BandwidthResult measure_copy_bandwidth(Context& ctx, uint64_t bytes, int repeats) {
  const DeviceCaps& caps = ctx.caps();
  bytes = std::min<uint64_t>(bytes, caps.max_storage_range) / 16 * 16;
  if (bytes == 0 || repeats < 1) throw Error("measure_copy_bandwidth: nothing to measure");
  Arena arena(ctx, "bandwidth", MemoryUse::Device, 2 * bytes + 2 * caps.storage_offset_alignment);
  const BufferRange src = arena.allocate(bytes), dst = arena.allocate(bytes);
  const uint32_t workgroup = std::min(256u, caps.max_workgroup_invocations);
  const Pipeline& copy = ctx.pipeline("copy_vec4", Specialization{{workgroup, 1, 1}, {}});
  const auto vectors = static_cast<uint32_t>(bytes / 16);
  const uint32_t groups = std::min(group_count(vectors, workgroup), caps.max_workgroup_count[0]);

  GpuProfiler profiler(ctx, static_cast<uint32_t>(repeats));
  CommandBuffer cmd(ctx);
  cmd.begin();
  profiler.reset(cmd);
  // The source's contents do not matter, but it must be written before it is read.
  vkCmdFillBuffer(cmd.handle(), src.buffer, src.offset, src.size, 0x5a5a5a5au);
  barrier_transfer_to_compute(cmd);
  for (int i = 0; i < repeats; ++i) {
    const uint32_t scope = profiler.begin(cmd, "copy");
    dispatch(cmd, copy, {src, dst}, abi::CopyPush{vectors}, {groups});
    barrier_compute_to_compute(cmd);  // runs do not overlap (and write-after-write is ordered)
    profiler.end(cmd, scope);
  }
  cmd.submit_and_wait();
  BandwidthResult result;
  result.bytes = bytes;
  result.ms = 1e300;
  for (const auto& scope : profiler.results()) result.ms = std::min(result.ms, scope.ms);
  result.gb_per_s = result.ms > 0 ? 2.0 * static_cast<double>(bytes) / (result.ms * 1e6) : 0.0;
  return result;
}

}  // namespace megrez
