#include "runtime/engine/kv_cache.h"

#include <string>

#include "loader/error.h"
#include "runtime/vk/context.h"

namespace megrez {

namespace {

uint64_t layer_bytes(const ModelConfig& config, uint64_t capacity, KvType type) {
  return capacity * kv_cache_row_bytes(type, static_cast<uint32_t>(config.num_key_value_heads),
                                       static_cast<uint32_t>(config.head_dim));
}

}  // namespace

const char* kv_type_name(KvType type) { return type == KvType::F16 ? "f16" : "f32"; }

uint64_t KvCache::bytes_needed(const ModelConfig& config, uint32_t capacity, KvType type) {
  return 2 * uint64_t(config.num_hidden_layers) * layer_bytes(config, capacity, type);
}

uint64_t KvCache::max_capacity_for_binding(const ModelConfig& config, KvType type, uint64_t max_storage_range) {
  return max_storage_range / layer_bytes(config, 1, type);
}

KvCache::KvCache(Context& ctx, const ModelConfig& config, uint32_t capacity, KvType type)
    : type_(type),
      capacity_(capacity),
      // One block for the whole cache where the device allows; the arena splits otherwise.
      arena_(ctx, "kv-cache", MemoryUse::Device, std::max<uint64_t>(bytes_needed(config, capacity, type), 1)) {
  if (capacity == 0) throw Error("KV cache: the context length must be at least 1 token");
  const uint64_t per_layer = layer_bytes(config, capacity, type);
  const uint64_t max_range = ctx.caps().max_storage_range;
  if (per_layer > max_range) {
    throw Error("KV cache: a context of " + std::to_string(capacity) + " tokens needs " + format_bytes(per_layer) +
                " per layer for K (" + kv_type_name(type) + "), over the device's largest binding of " +
                format_bytes(max_range) + "; the longest context that fits is " +
                std::to_string(max_capacity_for_binding(config, type, max_range)) + " tokens");
  }
  for (int64_t layer = 0; layer < config.num_hidden_layers; ++layer) {
    keys_.push_back(arena_.allocate(per_layer));
    values_.push_back(arena_.allocate(per_layer));
  }
}

}  // namespace megrez
