#pragma once
// Which routed experts occupy the device's expert slots in streaming mode: a cache keyed by
// (pool, expert), pure host bookkeeping (no Vulkan), so its policy is tested on its own.
//
// Safety comes from the compute timeline, not from guesses: every slot remembers the value of
// the compute submission that last reads it. A slot may be given to another expert once the
// upload into it waits for that value (ExpertPlacement::wait_for). Eviction prefers slots whose
// readers have completed, so uploads rarely wait; it never takes a slot that the request itself
// uses. Free slots are used before anything is evicted, grouped by pool (free_slot()).
//
// Policies (EvictionPolicy):
//   Lru          least recently used first.
//   PoolDistance Belady at pool granularity: a pool serves consecutive layers, and layers run
//                in order every token, so the next use of each pool is known. Evict from the
//                pool needed furthest in the future (cyclic over the layers), LRU inside it.
//                Under plain LRU a cache smaller than one token's working set evicts exactly
//                what the next token needs first; this keeps a stable share of pools instead.
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace megrez {

enum class EvictionPolicy { Lru, PoolDistance };
bool eviction_policy_from_name(std::string_view name, EvictionPolicy& out);  // "lru", "pool"
const char* eviction_policy_name(EvictionPolicy policy);

struct ExpertPlacement {
  struct Entry {
    uint32_t expert = 0;
    uint32_t slot = 0;
    bool miss = false;            // the expert must be uploaded into `slot`
  };
  std::vector<Entry> entries;     // one per requested expert, in request order
  uint32_t hits = 0, misses = 0;
  uint64_t wait_for = 0;          // compute timeline value the uploads must wait for (0: none)
};

class ExpertCache {
 public:
  // slots: capacity (>= 1). experts_per_pool[p]: routed experts of pool p.
  // layer_pools[l]: pool of layer l, -1 for dense layers (the PoolDistance policy's schedule).
  // slots_per_part: slots per binding of the store (0: one part); free slots are chosen so a
  // pool's experts share parts.
  ExpertCache(uint32_t slots, std::vector<uint32_t> experts_per_pool, std::vector<int> layer_pools,
              EvictionPolicy policy, uint32_t slots_per_part = 0);

  // Gives each of the distinct `experts` of `pool` a slot, for `layer`, whose kernels run in the
  // compute submission `use_value`. `completed`: the compute value known to have finished.
  // Requires experts.size() <= slots(). Hits keep their slot. A miss takes a free slot, else a
  // slot evicted by policy among those not in this request, preferring slots whose last reader
  // has completed (<= completed).
  ExpertPlacement place(uint32_t pool, std::span<const uint32_t> experts, int layer, uint64_t use_value,
                        uint64_t completed);

  std::optional<uint32_t> slot_of(uint32_t pool, uint32_t expert) const;
  uint32_t slots() const { return uint32_t(slot_key_.size()); }
  uint32_t occupied() const { return occupied_; }
  EvictionPolicy policy() const { return policy_; }
  void clear();

 private:
  static constexpr uint32_t kNone = 0xFFFFFFFFu;
  struct Key {
    uint32_t pool = kNone, expert = kNone;
  };
  uint32_t& slot_ref(uint32_t pool, uint32_t expert) { return expert_slot_[pool_first_[pool] + expert]; }
  // Layers from `layer` (exclusive) to the next layer of `pool`, cycling into the next token.
  uint32_t next_use_distance(uint32_t pool, int layer) const;
  uint32_t free_slot(uint32_t pool) const;
  uint32_t choose_victim(std::span<const uint8_t> requested, uint32_t pool, int layer, uint64_t completed) const;

  EvictionPolicy policy_;
  std::vector<uint32_t> experts_per_pool_, pool_first_;
  std::vector<int> layer_pools_;
  uint32_t slots_per_part_;
  std::vector<uint32_t> expert_slot_;  // (pool, expert) -> slot or kNone
  std::vector<Key> slot_key_;          // slot -> (pool, expert)
  std::vector<uint64_t> last_use_;     // slot -> compute value of its last reader
  std::vector<uint64_t> last_touch_;   // slot -> LRU stamp
  uint64_t clock_ = 0;
  uint32_t occupied_ = 0;
};

}  // namespace megrez
