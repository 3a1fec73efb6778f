#include "runtime/vk/memory.h"

#include <algorithm>
#include <cstdio>

#include "runtime/vk/context.h"

namespace megrez {

namespace {

constexpr VkDeviceSize align_up(VkDeviceSize value, VkDeviceSize alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

const char* use_name(MemoryUse use) {
  switch (use) {
    case MemoryUse::Device: return "device";
    case MemoryUse::Staging: return "staging";
    case MemoryUse::Readback: return "readback";
  }
  return "?";
}

}  // namespace

BufferRange BufferRange::slice(VkDeviceSize sub_offset, VkDeviceSize length) const {
  if (sub_offset > size || length > size - sub_offset) {
    throw Error("buffer slice [" + std::to_string(sub_offset) + ", +" + std::to_string(length) +
                ") is outside a range of " + std::to_string(size) + " bytes");
  }
  return {buffer, offset + sub_offset, length, mapped ? mapped + sub_offset : nullptr};
}

SplitBuffer::Location SplitBuffer::locate(VkDeviceSize offset) const {
  if (offset >= size || part_bytes == 0) {
    throw Error("split buffer offset " + std::to_string(offset) + " is outside its " +
                std::to_string(size) + " bytes");
  }
  return {static_cast<size_t>(offset / part_bytes), offset % part_bytes};
}

uint32_t choose_memory_type(const VkPhysicalDeviceMemoryProperties& memory, uint32_t type_bits,
                            MemoryUse use, bool unified_memory) {
  constexpr VkMemoryPropertyFlags local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
  constexpr VkMemoryPropertyFlags mappable =
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  constexpr VkMemoryPropertyFlags cached = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
  struct Want {
    VkMemoryPropertyFlags required, avoided;
  };
  // Preference lists, best first. Vulkan lists types fastest first, so the first index that
  // matches a preference wins.
  std::vector<Want> wants;
  switch (use) {
    case MemoryUse::Device:
      if (unified_memory) wants.push_back({local | mappable, 0});
      wants.push_back({local, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT});  // VRAM, not the BAR window
      wants.push_back({local, 0});
      wants.push_back({0, 0});
      break;
    case MemoryUse::Staging:
      // On discrete GPUs keep staging in system RAM and leave device-local memory to kernels.
      if (!unified_memory) wants.push_back({mappable, local});
      wants.push_back({mappable, 0});
      break;
    case MemoryUse::Readback:
      wants.push_back({mappable | cached, 0});
      wants.push_back({mappable, 0});
      break;
  }
  for (const Want& want : wants) {
    for (uint32_t t = 0; t < memory.memoryTypeCount; ++t) {
      const VkMemoryPropertyFlags flags = memory.memoryTypes[t].propertyFlags;
      if ((type_bits & (1u << t)) && (flags & want.required) == want.required && !(flags & want.avoided)) {
        return t;
      }
    }
  }
  throw Error(std::string("no Vulkan memory type suits ") + use_name(use) +
              " memory (needs host-visible, coherent memory for staging/readback)");
}

Arena::Arena(Context& ctx, std::string name, MemoryUse use, VkDeviceSize block_size, VkDeviceSize budget)
    : ctx_(ctx), name_(std::move(name)), use_(use), block_size_(block_size), budget_(budget) {
  if (block_size_ == 0) throw Error("arena '" + name_ + "': block size must be > 0");
  block_size_ = std::min<VkDeviceSize>(block_size_, ctx.caps().max_allocation_size);
  choose_memory_type();
}

Arena::~Arena() {
  for (Block& b : blocks_) {
    vkDestroyBuffer(ctx_.device(), b.buffer, nullptr);
    vkFreeMemory(ctx_.device(), b.memory, nullptr);  // unmaps implicitly
  }
}

static VkBuffer create_buffer(Context& ctx, VkDeviceSize size) {
  auto info = vk_struct<VkBufferCreateInfo>(VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO);
  info.size = size;
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_UNIFORM_BUFFER_BIT |
               VK_BUFFER_USAGE_INDIRECT_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
               VK_BUFFER_USAGE_TRANSFER_DST_BIT;
  // Concurrent sharing between the compute and transfer families (when they differ) instead
  // of ownership transfers: every buffer may be filled by the transfer queue.
  const auto& families = ctx.queue_families();
  info.sharingMode = families.size() > 1 ? VK_SHARING_MODE_CONCURRENT : VK_SHARING_MODE_EXCLUSIVE;
  info.queueFamilyIndexCount = families.size() > 1 ? static_cast<uint32_t>(families.size()) : 0;
  info.pQueueFamilyIndices = families.size() > 1 ? families.data() : nullptr;
  VkBuffer buffer = VK_NULL_HANDLE;
  vk_check(vkCreateBuffer(ctx.device(), &info, nullptr, &buffer), "vkCreateBuffer");
  return buffer;
}

// The type is fixed per arena: probe the requirements of a small buffer with the same usage.
void Arena::choose_memory_type() {
  VkBuffer probe = create_buffer(ctx_, 256);
  VkMemoryRequirements reqs;
  vkGetBufferMemoryRequirements(ctx_.device(), probe, &reqs);
  vkDestroyBuffer(ctx_.device(), probe, nullptr);
  const auto& memory = ctx_.info().memory;
  memory_type_ = megrez::choose_memory_type(memory, reqs.memoryTypeBits, use_, ctx_.caps().unified_memory);
  const VkMemoryPropertyFlags flags = memory.memoryTypes[memory_type_].propertyFlags;
  const bool can_map = (flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && (flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
  // Device data is mapped only on unified memory; elsewhere (or under a profile that turns
  // unified_memory off) uploads go through staging like on a discrete GPU.
  mapped_ = can_map && (use_ != MemoryUse::Device || ctx_.caps().unified_memory);
}

Arena::Block& Arena::add_block(VkDeviceSize min_size) {
  const VkDeviceSize size = std::max(block_size_, min_size);
  const auto& caps = ctx_.caps();
  if (size > caps.max_allocation_size) {
    throw Error("arena '" + name_ + "': allocation of " + format_bytes(size) +
                " exceeds the device's maxMemoryAllocationSize " + format_bytes(caps.max_allocation_size));
  }
  if (budget_ && reserved() + size > budget_) {
    throw Error("arena '" + name_ + "': budget of " + format_bytes(budget_) + " exceeded (holds " +
                format_bytes(reserved()) + ", needs a new block of " + format_bytes(size) + ")");
  }
  Block block;
  block.size = size;
  block.buffer = create_buffer(ctx_, size);
  VkMemoryRequirements reqs;
  vkGetBufferMemoryRequirements(ctx_.device(), block.buffer, &reqs);
  auto alloc = vk_struct<VkMemoryAllocateInfo>(VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO);
  alloc.allocationSize = reqs.size;
  alloc.memoryTypeIndex = memory_type_;
  VkResult result = vkAllocateMemory(ctx_.device(), &alloc, nullptr, &block.memory);
  if (result != VK_SUCCESS) {
    vkDestroyBuffer(ctx_.device(), block.buffer, nullptr);
    const auto& memory = ctx_.info().memory;
    const uint32_t heap = memory.memoryTypes[memory_type_].heapIndex;
    const bool oom = result == VK_ERROR_OUT_OF_DEVICE_MEMORY || result == VK_ERROR_OUT_OF_HOST_MEMORY;
    const std::string why = oom ? "out of memory" : vk_result_name(result);
    throw Error("arena '" + name_ + "': " + why + " allocating " + format_bytes(reqs.size) +
                " (memory type " + std::to_string(memory_type_) + ", heap " + std::to_string(heap) + " of " +
                format_bytes(memory.memoryHeaps[heap].size) + "; arena already holds " +
                format_bytes(reserved()) + ")", oom ? ErrorKind::OutOfMemory : ErrorKind::Device);
  }
  try {
    vk_check(vkBindBufferMemory(ctx_.device(), block.buffer, block.memory, 0), "vkBindBufferMemory");
    if (mapped_) {
      void* host = nullptr;
      vk_check(vkMapMemory(ctx_.device(), block.memory, 0, VK_WHOLE_SIZE, 0, &host), "vkMapMemory");
      block.mapped = static_cast<std::byte*>(host);
    }
  } catch (...) {
    vkDestroyBuffer(ctx_.device(), block.buffer, nullptr);
    vkFreeMemory(ctx_.device(), block.memory, nullptr);
    throw;
  }
  blocks_.push_back(block);
  return blocks_.back();
}

BufferRange Arena::allocate(VkDeviceSize size, VkDeviceSize alignment) {
  if (size == 0) throw Error("arena '" + name_ + "': zero-byte allocation");
  if (alignment == 0) alignment = ctx_.caps().storage_offset_alignment;
  alignment = std::max<VkDeviceSize>(alignment, 4);
  if ((alignment & (alignment - 1)) != 0) {
    throw Error("arena '" + name_ + "': alignment " + std::to_string(alignment) + " is not a power of two");
  }
  if (size > ctx_.caps().max_allocation_size) {
    throw Error("arena '" + name_ + "': " + format_bytes(size) + " exceeds maxMemoryAllocationSize " +
                format_bytes(ctx_.caps().max_allocation_size) + "; allocate it with allocate_split");
  }
  Block* target = nullptr;
  VkDeviceSize offset = 0;
  for (Block& b : blocks_) {
    offset = align_up(b.used, alignment);
    if (offset <= b.size && size <= b.size - offset) {
      target = &b;
      break;
    }
  }
  if (!target) {
    target = &add_block(size);
    offset = 0;
  }
  target->used = offset + size;
  return {target->buffer, offset, size, target->mapped ? target->mapped + offset : nullptr};
}

SplitBuffer Arena::allocate_split(VkDeviceSize size, VkDeviceSize row_bytes) {
  const VkDeviceSize max_range = ctx_.caps().max_storage_range;
  if (size == 0 || row_bytes == 0 || size % row_bytes != 0) {
    throw Error("arena '" + name_ + "': split buffer of " + std::to_string(size) +
                " bytes is not a positive whole number of " + std::to_string(row_bytes) + "-byte rows");
  }
  if (row_bytes > max_range) {
    throw Error("arena '" + name_ + "': one row of " + format_bytes(row_bytes) +
                " exceeds maxStorageBufferRange " + format_bytes(max_range));
  }
  SplitBuffer split;
  split.size = size;
  split.part_bytes = std::min(size, max_range / row_bytes * row_bytes);
  for (VkDeviceSize done = 0; done < size; done += split.part_bytes) {
    split.parts.push_back(allocate(std::min(split.part_bytes, size - done)));
  }
  return split;
}

void Arena::reset() {
  for (Block& b : blocks_) b.used = 0;
}

VkDeviceSize Arena::used() const {
  VkDeviceSize total = 0;
  for (const Block& b : blocks_) total += b.used;
  return total;
}

VkDeviceSize Arena::reserved() const {
  VkDeviceSize total = 0;
  for (const Block& b : blocks_) total += b.size;
  return total;
}

std::string format_bytes(uint64_t bytes) {
  char text[64];
  if (bytes >= (uint64_t{1} << 30)) {
    std::snprintf(text, sizeof text, "%.2f GiB", static_cast<double>(bytes) / (1 << 30));
  } else if (bytes >= (uint64_t{1} << 20)) {
    std::snprintf(text, sizeof text, "%.2f MiB", static_cast<double>(bytes) / (1 << 20));
  } else if (bytes >= 1024) {
    std::snprintf(text, sizeof text, "%.1f KiB", static_cast<double>(bytes) / 1024);
  } else {
    std::snprintf(text, sizeof text, "%llu bytes", static_cast<unsigned long long>(bytes));
  }
  return text;
}

}  // namespace megrez
