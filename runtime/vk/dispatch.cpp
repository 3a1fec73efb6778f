#include "runtime/vk/dispatch.h"

#include <vector>

#include "runtime/vk/fault_injection.h"

namespace megrez {

uint32_t group_count(uint64_t items, uint32_t per_group) {
  if (per_group == 0) throw Error("group_count: zero items per group");
  const uint64_t groups = items / per_group + (items % per_group != 0);
  if (groups > UINT32_MAX) throw Error("group_count: " + std::to_string(groups) + " groups overflow 32 bits");
  return static_cast<uint32_t>(groups);
}

static void check_dispatch(const Context& ctx, const Pipeline& p, std::span<const BufferRange> bindings,
                           size_t push_size, Groups groups) {
  const DeviceCaps& caps = ctx.caps();
  const std::string where = "dispatch " + p.name + ": ";
  if (bindings.size() != p.bindings) {
    throw Error(where + "expected " + std::to_string(p.bindings) + " buffer bindings, got " +
                std::to_string(bindings.size()));
  }
  for (size_t i = 0; i < bindings.size(); ++i) {
    const BufferRange& b = bindings[i];
    const std::string binding = "binding " + std::to_string(i) + ": ";
    if (b.buffer == VK_NULL_HANDLE || b.size == 0) throw Error(where + binding + "empty buffer range");
    if ((p.uniform_bindings >> i) & 1u) {
      if (b.size > caps.max_uniform_range) {
        throw Error(where + binding + format_bytes(b.size) + " exceeds maxUniformBufferRange " +
                    format_bytes(caps.max_uniform_range));
      }
      if (b.offset % caps.uniform_offset_alignment != 0) {
        throw Error(where + binding + "offset " + std::to_string(b.offset) + " is not a multiple of " +
                    std::to_string(caps.uniform_offset_alignment) + " (minUniformBufferOffsetAlignment)");
      }
      continue;
    }
    if (b.size > caps.max_storage_range) {
      throw Error(where + binding + format_bytes(b.size) + " exceeds maxStorageBufferRange " +
                  format_bytes(caps.max_storage_range) + " (split the tensor: Arena::allocate_split)");
    }
    if (b.offset % caps.storage_offset_alignment != 0) {
      throw Error(where + binding + "offset " + std::to_string(b.offset) + " is not a multiple of " +
                  std::to_string(caps.storage_offset_alignment) + " (minStorageBufferOffsetAlignment)");
    }
  }
  if (push_size != p.push_size) {
    throw Error(where + "push constants are " + std::to_string(push_size) + " bytes, the shader's block is " +
                std::to_string(p.push_size));
  }
  const uint32_t counts[3] = {groups.x, groups.y, groups.z};
  for (int i = 0; i < 3; ++i) {
    if (counts[i] > caps.max_workgroup_count[i]) {
      throw Error(where + "group count[" + std::to_string(i) + "] = " + std::to_string(counts[i]) +
                  " exceeds maxComputeWorkGroupCount " + std::to_string(caps.max_workgroup_count[i]));
    }
  }
}

// Binds the pipeline, its buffers and push constants (after the checks).
static void bind_for_dispatch(CommandBuffer& cmd, const Pipeline& p, std::span<const BufferRange> bindings,
                              const void* push, size_t push_size) {
  fault_point(FaultPoint::Record);
  VkCommandBuffer c = cmd.handle();
  std::vector<VkDescriptorBufferInfo> infos(bindings.size());
  std::vector<VkWriteDescriptorSet> writes(bindings.size());
  for (uint32_t i = 0; i < bindings.size(); ++i) {
    infos[i] = {bindings[i].buffer, bindings[i].offset, bindings[i].size};
    writes[i] = vk_struct<VkWriteDescriptorSet>(VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET);
    writes[i].dstBinding = i;
    writes[i].descriptorCount = 1;
    writes[i].descriptorType = binding_descriptor_type(p.uniform_bindings, i);
    writes[i].pBufferInfo = &infos[i];
  }
  vkCmdBindPipeline(c, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
  if (!bindings.empty()) {
    if (p.push_descriptors) {
      vkCmdPushDescriptorSetKHR(c, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0,
                                static_cast<uint32_t>(writes.size()), writes.data());
    } else {
      VkDescriptorSet set = cmd.allocate_descriptor_set(p.set_layout);
      for (auto& w : writes) w.dstSet = set;
      vkUpdateDescriptorSets(cmd.context().device(), static_cast<uint32_t>(writes.size()), writes.data(), 0, nullptr);
      vkCmdBindDescriptorSets(c, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &set, 0, nullptr);
    }
  }
  if (push_size) {
    vkCmdPushConstants(c, p.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, static_cast<uint32_t>(push_size), push);
  }
}

void dispatch(CommandBuffer& cmd, const Pipeline& p, std::span<const BufferRange> bindings, const void* push,
              size_t push_size, Groups groups) {
  if (!cmd.recording()) throw Error("dispatch " + p.name + ": command buffer is not recording (call begin())");
  check_dispatch(cmd.context(), p, bindings, push_size, groups);
  bind_for_dispatch(cmd, p, bindings, push, push_size);
  vkCmdDispatch(cmd.handle(), groups.x, groups.y, groups.z);
  ++record_counts().dispatches;
}

void dispatch_indirect(CommandBuffer& cmd, const Pipeline& p, std::span<const BufferRange> bindings, const void* push,
                       size_t push_size, const BufferRange& args) {
  const std::string where = "dispatch " + p.name + " (indirect): ";
  if (!cmd.recording()) throw Error(where + "command buffer is not recording (call begin())");
  check_dispatch(cmd.context(), p, bindings, push_size, {});
  if (args.buffer == VK_NULL_HANDLE || args.size < 12 || args.offset % 4 != 0) {
    throw Error(where + "the arguments need 12 bytes at a multiple of 4, got " + std::to_string(args.size) +
                " bytes at offset " + std::to_string(args.offset));
  }
  bind_for_dispatch(cmd, p, bindings, push, push_size);
  vkCmdDispatchIndirect(cmd.handle(), args.buffer, args.offset);
  ++record_counts().dispatches;
}

static void memory_barrier(CommandBuffer& cmd, VkPipelineStageFlags src_stage, VkAccessFlags src_access,
                           VkPipelineStageFlags dst_stage, VkAccessFlags dst_access) {
  auto barrier = vk_struct<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
  barrier.srcAccessMask = src_access;
  barrier.dstAccessMask = dst_access;
  vkCmdPipelineBarrier(cmd.handle(), src_stage, dst_stage, 0, 1, &barrier, 0, nullptr, 0, nullptr);
  ++record_counts().barriers;
}

// Destinations of the barriers into compute work: shaders, and the indirect dispatch
// arguments an earlier shader wrote (moe_part_args).
constexpr VkPipelineStageFlags kComputeStages =
    VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_DRAW_INDIRECT_BIT;
constexpr VkAccessFlags kComputeReads =
    VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_INDIRECT_COMMAND_READ_BIT;

void barrier_compute_to_compute(CommandBuffer& cmd) {
  memory_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT, kComputeStages, kComputeReads);
}

void barrier_transfer_to_compute(CommandBuffer& cmd) {
  memory_barrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT, kComputeStages, kComputeReads);
}

void barrier_previous_work(CommandBuffer& cmd) {
  // Also orders work submitted earlier on the queue (submission order) without a host wait
  // in between: a pass chained behind the one still running.
  memory_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                 VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT, kComputeStages, kComputeReads);
}

void barrier_compute_to_transfer(CommandBuffer& cmd) {
  // Earlier copies too: a copy that writes where an earlier one wrote (logits read back
  // pass after pass) is a write-after-write.
  memory_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                 VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_TRANSFER_BIT,
                 VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
}

void barrier_to_host(CommandBuffer& cmd) {
  memory_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                 VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT, VK_PIPELINE_STAGE_HOST_BIT,
                 VK_ACCESS_HOST_READ_BIT);
}

void copy_buffer(CommandBuffer& cmd, const BufferRange& src, const BufferRange& dst) {
  if (src.size > dst.size) {
    throw Error("copy_buffer: " + std::to_string(src.size) + " bytes do not fit a " + std::to_string(dst.size) +
                "-byte destination");
  }
  VkBufferCopy region{src.offset, dst.offset, src.size};
  vkCmdCopyBuffer(cmd.handle(), src.buffer, dst.buffer, 1, &region);
}

}  // namespace megrez
