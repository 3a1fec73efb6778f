#pragma once
// The KV cache in device memory: per layer one K and one V buffer of [capacity, Hkv*Dh]
// elements, f16 (default: half the memory, the precision attention needs) or f32. Row p holds
// the token at position p, K already rotated by RoPE (runtime/ops/attention.h documents the
// layout the kernels read). The engine tracks how many rows are filled; this only owns memory.
#include <cstdint>
#include <vector>

#include "loader/formats/config.h"
#include "runtime/ops/attention.h"
#include "runtime/vk/memory.h"

namespace megrez {

class Context;

class KvCache {
 public:
  // Throws megrez::Error when one layer's K or V buffer would exceed the device's largest
  // binding (naming the largest context that fits) or when memory runs out.
  KvCache(Context& ctx, const ModelConfig& config, uint32_t capacity, KvType type);

  // Bytes the cache needs for `capacity` positions (all layers, K and V).
  static uint64_t bytes_needed(const ModelConfig& config, uint32_t capacity, KvType type);
  // The longest context whose per-layer buffers fit one binding of `max_storage_range` bytes.
  static uint64_t max_capacity_for_binding(const ModelConfig& config, KvType type, uint64_t max_storage_range);

  KvType type() const { return type_; }
  uint32_t capacity() const { return capacity_; }
  const BufferRange& keys(size_t layer) const { return keys_.at(layer); }    // [capacity, Hkv*Dh]
  const BufferRange& values(size_t layer) const { return values_.at(layer); }  // [capacity, Hkv*Dh]
  uint64_t bytes() const { return arena_.reserved(); }

 private:
  KvType type_;
  uint32_t capacity_;
  Arena arena_;
  std::vector<BufferRange> keys_, values_;  // [L]
};

const char* kv_type_name(KvType type);  // "f16" / "f32"

}  // namespace megrez
