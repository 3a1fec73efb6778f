#pragma once
// Device memory in few large allocations: an Arena owns blocks (one VkDeviceMemory bound to
// one VkBuffer each) and hands out aligned BufferRanges by bumping an offset. One arena per
// use: weights, activations/scratch (reset() and reuse), expert slots, staging.
// Ranges never straddle blocks; tensors larger than maxStorageBufferRange are allocated as a
// SplitBuffer whose parts each fit one binding.
#include <cstddef>
#include <span>
#include <string>
#include <vector>

#include "runtime/vk/vk_check.h"

namespace megrez {

class Context;

// A piece of a VkBuffer: what a shader binding or a copy refers to.
struct BufferRange {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceSize offset = 0;
  VkDeviceSize size = 0;
  std::byte* mapped = nullptr;  // host address of `offset` when the memory is mapped, else null

  bool host_visible() const { return mapped != nullptr; }
  // [offset, offset + length) of this range; throws megrez::Error when out of bounds.
  BufferRange slice(VkDeviceSize offset, VkDeviceSize length) const;
};

// A logical buffer stored as consecutive parts, each small enough for one binding.
struct SplitBuffer {
  std::vector<BufferRange> parts;
  VkDeviceSize size = 0;        // total bytes
  VkDeviceSize part_bytes = 0;  // bytes in every part but the last (a multiple of the row size)

  // The part holding byte `offset` of the logical buffer, and where in that part it is.
  struct Location {
    size_t part;
    VkDeviceSize offset;
  };
  Location locate(VkDeviceSize offset) const;
};

enum class MemoryUse {
  Device,    // kernel data: device-local (mapped too on unified memory)
  Staging,   // host writes, GPU reads: host-visible, coherent
  Readback,  // GPU writes, host reads: host-visible, coherent, cached if possible
};

class Arena {
 public:
  // block_size: bytes per VkDeviceMemory (a larger single allocation gets its own block).
  // budget: most bytes this arena may hold in total (0: no limit besides the device's).
  Arena(Context& ctx, std::string name, MemoryUse use, VkDeviceSize block_size,
        VkDeviceSize budget = 0);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // `alignment` 0: the device's storage-binding offset alignment (DeviceCaps).
  BufferRange allocate(VkDeviceSize size, VkDeviceSize alignment = 0);
  // A buffer of `size` bytes in parts of whole rows, each part <= max_storage_range.
  SplitBuffer allocate_split(VkDeviceSize size, VkDeviceSize row_bytes);
  // Forgets every allocation (ranges handed out become invalid); keeps the memory.
  void reset();

  const std::string& name() const { return name_; }
  MemoryUse use() const { return use_; }
  bool host_visible() const { return mapped_; }
  uint32_t memory_type() const { return memory_type_; }
  VkDeviceSize used() const;      // bytes handed out, including alignment padding
  VkDeviceSize reserved() const;  // bytes of device memory held
  size_t block_count() const { return blocks_.size(); }

 private:
  struct Block {
    VkDeviceMemory memory = VK_NULL_HANDLE;
    VkBuffer buffer = VK_NULL_HANDLE;
    VkDeviceSize size = 0;
    VkDeviceSize used = 0;
    std::byte* mapped = nullptr;
  };
  Block& add_block(VkDeviceSize min_size);
  void choose_memory_type();

  Context& ctx_;
  std::string name_;
  MemoryUse use_;
  VkDeviceSize block_size_;
  VkDeviceSize budget_;
  uint32_t memory_type_ = 0;
  bool mapped_ = false;
  std::vector<Block> blocks_;
};

// Memory type for `use` among `type_bits` (from VkMemoryRequirements); UMA-aware: on unified
// memory device data goes to a host-visible device-local type so uploads are memcpy.
uint32_t choose_memory_type(const VkPhysicalDeviceMemoryProperties& memory, uint32_t type_bits,
                            MemoryUse use, bool unified_memory);

// Human-readable byte counts for reports and error messages ("1.50 GiB", "16.0 KiB", "12 bytes").
std::string format_bytes(uint64_t bytes);

}  // namespace megrez
