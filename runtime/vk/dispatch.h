#pragma once
// THE dispatch chokepoint: every kernel launch goes through dispatch(), which checks the
// call against the pipeline and the device before recording anything (design.md #3), plus
// the barriers that order dependent work.
#include <initializer_list>
#include <span>
#include <type_traits>

#include "runtime/vk/commands.h"
#include "runtime/vk/memory.h"
#include "runtime/vk/pipelines.h"

namespace megrez {

struct Groups {
  uint32_t x = 1, y = 1, z = 1;
};

// ceil(items / per_group) as a group count; megrez::Error when it overflows 32 bits.
uint32_t group_count(uint64_t items, uint32_t per_group);

// Checks, then records: bindings.size() == pipeline.bindings; every range non-empty,
// <= caps.max_storage_range and offset-aligned to caps.storage_offset_alignment;
// push_size == pipeline.push_size; groups <= caps.max_workgroup_count. Any failure throws
// megrez::Error naming the pipeline, before anything is recorded.
void dispatch(CommandBuffer& cmd, const Pipeline& pipeline, std::span<const BufferRange> bindings,
              const void* push, size_t push_size, Groups groups);

// The usual form: dispatch(cmd, p, {in, out}, abi::CopyPush{n}, {groups}).
template <class Push>
void dispatch(CommandBuffer& cmd, const Pipeline& pipeline, std::initializer_list<BufferRange> bindings,
              const Push& push, Groups groups) {
  static_assert(std::is_trivially_copyable_v<Push>, "push constants are copied bytewise");
  dispatch(cmd, pipeline, std::span<const BufferRange>(bindings.begin(), bindings.size()), &push,
           sizeof(Push), groups);
}

// The same checks (bar the group counts, which the GPU writes), then vkCmdDispatchIndirect with
// the VkDispatchIndirectCommand at the start of `args` (>= 12 bytes, offset a multiple of 4),
// written by an earlier dispatch that a barrier below orders before it.
void dispatch_indirect(CommandBuffer& cmd, const Pipeline& pipeline, std::span<const BufferRange> bindings,
                       const void* push, size_t push_size, const BufferRange& args);
template <class Push>
void dispatch_indirect(CommandBuffer& cmd, const Pipeline& pipeline, std::initializer_list<BufferRange> bindings,
                       const Push& push, const BufferRange& args) {
  static_assert(std::is_trivially_copyable_v<Push>, "push constants are copied bytewise");
  dispatch_indirect(cmd, pipeline, std::span<const BufferRange>(bindings.begin(), bindings.size()), &push,
                    sizeof(Push), args);
}

// Barriers (whole-memory; cheap on every driver we target and impossible to get wrong per buffer).
// Those into compute also make shader writes visible to indirect dispatch arguments.
void barrier_compute_to_compute(CommandBuffer& cmd);    // shader writes -> shader reads/writes
void barrier_transfer_to_compute(CommandBuffer& cmd);   // copies -> shader reads/writes
void barrier_previous_work(CommandBuffer& cmd);         // shader and copy writes -> shader reads/writes
void barrier_compute_to_transfer(CommandBuffer& cmd);   // shader and copy writes -> copies
void barrier_to_host(CommandBuffer& cmd);               // shader/copy writes -> host reads

// Records a copy of all `src.size` bytes into the start of `dst` (megrez::Error if dst is smaller).
void copy_buffer(CommandBuffer& cmd, const BufferRange& src, const BufferRange& dst);

}  // namespace megrez
