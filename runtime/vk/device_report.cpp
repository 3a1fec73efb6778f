// The one-screen device report printed by megrez-info.
#include "runtime/vk/device_report.h"

#include <cstdarg>
#include <cstdio>

#include "runtime/stream/expert_uploader.h"
#include "runtime/vk/context.h"

namespace megrez {

namespace {

void line(std::string& out, const char* format, ...) {
  char buffer[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  out += buffer;
  out += '\n';
}

std::string queue_flags(VkQueueFlags flags) {
  std::string s;
  if (flags & VK_QUEUE_GRAPHICS_BIT) s += "graphics ";
  if (flags & VK_QUEUE_COMPUTE_BIT) s += "compute ";
  if (flags & VK_QUEUE_TRANSFER_BIT) s += "transfer ";
  if (flags & VK_QUEUE_SPARSE_BINDING_BIT) s += "sparse ";
  if (!s.empty()) s.pop_back();
  return s;
}

std::string memory_flags(VkMemoryPropertyFlags flags) {
  std::string s;
  if (flags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) s += "device-local ";
  if (flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) s += "host-visible ";
  if (flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) s += "coherent ";
  if (flags & VK_MEMORY_PROPERTY_HOST_CACHED_BIT) s += "cached ";
  if (flags & VK_MEMORY_PROPERTY_LAZILY_ALLOCATED_BIT) s += "lazy ";
  if (!s.empty()) s.pop_back();
  return s.empty() ? "-" : s;
}

std::string subgroup_ops(VkSubgroupFeatureFlags ops) {
  const std::pair<VkSubgroupFeatureFlags, const char*> names[] = {
      {VK_SUBGROUP_FEATURE_BASIC_BIT, "basic"}, {VK_SUBGROUP_FEATURE_VOTE_BIT, "vote"},
      {VK_SUBGROUP_FEATURE_ARITHMETIC_BIT, "arithmetic"}, {VK_SUBGROUP_FEATURE_BALLOT_BIT, "ballot"},
      {VK_SUBGROUP_FEATURE_SHUFFLE_BIT, "shuffle"}, {VK_SUBGROUP_FEATURE_SHUFFLE_RELATIVE_BIT, "shuffle-relative"},
      {VK_SUBGROUP_FEATURE_CLUSTERED_BIT, "clustered"}, {VK_SUBGROUP_FEATURE_QUAD_BIT, "quad"}};
  std::string s;
  for (const auto& [bit, name] : names) {
    if (ops & bit) s += std::string(s.empty() ? "" : " ") + name;
  }
  return s;
}

const char* yes(bool b) { return b ? "yes" : "no"; }

}  // namespace

std::string device_report(const Context& ctx) {
  const DeviceInfo& info = ctx.info();
  const DeviceCaps& caps = ctx.caps();
  const VkPhysicalDeviceLimits& limits = info.props.limits;
  std::string out;
  line(out, "Device %u: %s (%s)", info.index, info.name().c_str(), device_type_name(info.props.deviceType));
  line(out, "  driver: %s, %s; Vulkan %s", info.props12.driverName, info.props12.driverInfo,
       api_version_string(info.props.apiVersion).c_str());
  for (uint32_t f = 0; f < info.queue_families.size(); ++f) {
    const auto& q = info.queue_families[f];
    std::string roles;
    if (f == ctx.queue(QueueRole::Compute).family) roles += " <- compute";
    if (f == ctx.queue(QueueRole::Transfer).family) roles += " <- transfer";
    line(out, "  queue family %u: %s x%u, timestamp bits %u%s", f, queue_flags(q.queueFlags).c_str(), q.queueCount,
         q.timestampValidBits, roles.c_str());
  }
  line(out, "  transfer queue: %s", transfer_queue_kind_name(ctx.transfer_kind()));
  line(out, "  expert streaming uploads: %s",
       describe_expert_upload_path(ctx, default_expert_upload_path(ctx)).c_str());
  for (uint32_t h = 0; h < info.memory.memoryHeapCount; ++h) {
    std::string types;
    for (uint32_t t = 0; t < info.memory.memoryTypeCount; ++t) {
      if (info.memory.memoryTypes[t].heapIndex == h) {
        types += " [" + std::to_string(t) + ": " + memory_flags(info.memory.memoryTypes[t].propertyFlags) + "]";
      }
    }
    line(out, "  heap %u: %s%s;%s", h, format_bytes(info.memory.memoryHeaps[h].size).c_str(),
         (info.memory.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) ? " device-local" : "", types.c_str());
  }
  line(out, "  subgroup: size %u (control: %s, %u..%u), stages%s%s, ops: %s", info.props11.subgroupSize,
       yes(info.has_subgroup_size_control && info.subgroup_size_control_features.subgroupSizeControl),
       caps.min_subgroup_size, caps.max_subgroup_size,
       (info.props11.subgroupSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) ? " compute" : "",
       (info.props11.subgroupSupportedStages & VK_SHADER_STAGE_FRAGMENT_BIT) ? " fragment" : "",
       subgroup_ops(info.props11.subgroupSupportedOperations).c_str());
  line(out, "  maxStorageBufferRange %s, maxComputeSharedMemorySize %s, maxPushConstantsSize %u",
       format_bytes(limits.maxStorageBufferRange).c_str(), format_bytes(limits.maxComputeSharedMemorySize).c_str(),
       limits.maxPushConstantsSize);
  line(out, "  maxComputeWorkGroupSize %u x %u x %u, Count %u x %u x %u, Invocations %u",
       limits.maxComputeWorkGroupSize[0], limits.maxComputeWorkGroupSize[1], limits.maxComputeWorkGroupSize[2],
       limits.maxComputeWorkGroupCount[0], limits.maxComputeWorkGroupCount[1], limits.maxComputeWorkGroupCount[2],
       limits.maxComputeWorkGroupInvocations);
  line(out, "  timestampPeriod %.3f ns, maxMemoryAllocationSize %s, minStorageBufferOffsetAlignment %llu",
       limits.timestampPeriod, format_bytes(info.props11.maxMemoryAllocationSize).c_str(),
       static_cast<unsigned long long>(limits.minStorageBufferOffsetAlignment));
  line(out, "  fp16 arithmetic %s, int8 arithmetic %s, 16-bit storage %s, 8-bit storage %s, push descriptors %s",
       yes(info.features12.shaderFloat16), yes(info.features12.shaderInt8),
       yes(info.features11.storageBuffer16BitAccess), yes(info.features12.storageBuffer8BitAccess),
       yes(info.has_push_descriptor));
  line(out, "Caps%s%s: storage range %s, shared memory %s, workgroup <= %u, reductions: %s, fp16 math %s, "
       "memory: %s, descriptors: %s",
       caps.profile.empty() ? "" : " (profile ", caps.profile.empty() ? "" : (caps.profile + ")").c_str(),
       format_bytes(caps.max_storage_range).c_str(), format_bytes(caps.max_shared_memory).c_str(),
       caps.max_workgroup_invocations, caps.use_subgroup_reduce() ? "subgroup" : "shared memory",
       yes(caps.fp16_arithmetic), caps.unified_memory ? "unified (mapped)" : "staged",
       caps.push_descriptors ? "push" : "pools");
  if (caps.max_prefill_chunk || !caps.half_conversions) {
    line(out, "Quirks: prefill chunk <= %s, f16 conversions %s",
         caps.max_prefill_chunk ? std::to_string(caps.max_prefill_chunk).c_str() : "any",
         caps.half_conversions ? "yes" : "no (f32/bf16 weights with an f32 KV cache only)");
  }
  line(out, "Validation: %s", ctx.validation_enabled() ? "on" : "off");
  return out;
}

}  // namespace megrez
