#include "runtime/stream/expert_cache.h"

#include <algorithm>
#include <tuple>

#include "loader/error.h"

namespace megrez {

bool eviction_policy_from_name(std::string_view name, EvictionPolicy& out) {
  if (name == "lru") out = EvictionPolicy::Lru;
  else if (name == "pool") out = EvictionPolicy::PoolDistance;
  else return false;
  return true;
}

const char* eviction_policy_name(EvictionPolicy policy) {
  return policy == EvictionPolicy::Lru ? "lru" : "pool";
}

ExpertCache::ExpertCache(uint32_t slots, std::vector<uint32_t> experts_per_pool, std::vector<int> layer_pools,
                         EvictionPolicy policy, uint32_t slots_per_part)
    : policy_(policy),
      experts_per_pool_(std::move(experts_per_pool)),
      layer_pools_(std::move(layer_pools)),
      slots_per_part_(slots_per_part ? std::min(slots_per_part, slots) : slots) {
  if (slots == 0) throw Error("expert cache: no slots");
  uint32_t total = 0;
  for (uint32_t n : experts_per_pool_) {
    pool_first_.push_back(total);
    total += n;
  }
  expert_slot_.assign(total, kNone);
  slot_key_.assign(slots, Key{});
  last_use_.assign(slots, 0);
  last_touch_.assign(slots, 0);
}

void ExpertCache::clear() {
  std::fill(expert_slot_.begin(), expert_slot_.end(), kNone);
  std::fill(slot_key_.begin(), slot_key_.end(), Key{});
  std::fill(last_use_.begin(), last_use_.end(), 0);
  std::fill(last_touch_.begin(), last_touch_.end(), 0);
  occupied_ = 0;
}

std::optional<uint32_t> ExpertCache::slot_of(uint32_t pool, uint32_t expert) const {
  if (pool >= experts_per_pool_.size() || expert >= experts_per_pool_[pool]) return std::nullopt;
  const uint32_t slot = expert_slot_[pool_first_[pool] + expert];
  if (slot == kNone) return std::nullopt;
  return slot;
}

uint32_t ExpertCache::next_use_distance(uint32_t pool, int layer) const {
  const int n = int(layer_pools_.size());
  for (int d = 1; d <= n; ++d) {
    const int l = (layer + d) % n;
    if (layer_pools_[size_t(l)] == int(pool)) return uint32_t(d);
  }
  return uint32_t(n) + 1;  // a pool no layer uses: evict first
}

uint32_t ExpertCache::free_slot(uint32_t pool) const {
  // Keep a pool's experts in few parts of the store: the kernels dispatch once per part that
  // holds a selected expert. Prefer the part with most of this pool's experts, then the part
  // with most free slots (a new pool starts in an empty part), then the lowest slot.
  const uint32_t parts = (slots() + slots_per_part_ - 1) / slots_per_part_;
  std::vector<uint32_t> of_pool(parts, 0), free(parts, 0);
  for (uint32_t s = 0; s < slots(); ++s) {
    if (slot_key_[s].pool == kNone) ++free[s / slots_per_part_];
    else if (slot_key_[s].pool == pool) ++of_pool[s / slots_per_part_];
  }
  uint32_t best_part = kNone;
  for (uint32_t p = 0; p < parts; ++p) {
    if (free[p] == 0) continue;
    if (best_part == kNone || std::pair(of_pool[p], free[p]) > std::pair(of_pool[best_part], free[best_part])) {
      best_part = p;
    }
  }
  if (best_part == kNone) return kNone;
  for (uint32_t s = best_part * slots_per_part_; s < slots(); ++s) {
    if (slot_key_[s].pool == kNone) return s;
  }
  return kNone;
}

uint32_t ExpertCache::choose_victim(std::span<const uint8_t> requested, uint32_t pool, int layer,
                                    uint64_t completed) const {
  if (occupied_ < slots()) return free_slot(pool);
  // Policy order per pool, computed once per choice rather than once per slot.
  std::vector<int64_t> pool_order(experts_per_pool_.size(), 0);
  if (policy_ == EvictionPolicy::PoolDistance) {
    for (uint32_t p = 0; p < pool_order.size(); ++p) pool_order[p] = -int64_t(next_use_distance(p, layer));
  }
  // Smallest key wins: (still being read, policy order, LRU stamp).
  uint32_t best = kNone;
  std::tuple<bool, int64_t, uint64_t> best_key{};
  for (uint32_t s = 0; s < slots(); ++s) {
    if (requested[s]) continue;
    const bool in_flight = last_use_[s] > completed;
    const int64_t order = pool_order[slot_key_[s].pool];
    const std::tuple<bool, int64_t, uint64_t> key{in_flight, order, last_touch_[s]};
    if (best == kNone || key < best_key) {
      best = s;
      best_key = key;
    }
  }
  return best;
}

ExpertPlacement ExpertCache::place(uint32_t pool, std::span<const uint32_t> experts, int layer, uint64_t use_value,
                                   uint64_t completed) {
  if (pool >= experts_per_pool_.size()) throw Error("expert cache: pool " + std::to_string(pool) + " out of range");
  if (experts.size() > slots()) {
    throw Error("expert cache: " + std::to_string(experts.size()) + " experts requested at once, " +
                std::to_string(slots()) + " slots");
  }
  std::vector<uint32_t> sorted(experts.begin(), experts.end());
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    throw Error("expert cache: an expert is requested twice");
  }
  ExpertPlacement plan;
  std::vector<uint8_t> requested(slots(), 0);
  // Hits first, so no miss evicts an expert this request also needs.
  for (uint32_t e : experts) {
    if (e >= experts_per_pool_[pool]) {
      throw Error("expert cache: expert " + std::to_string(e) + " of pool " + std::to_string(pool) + " out of range");
    }
    const uint32_t slot = slot_ref(pool, e);
    if (slot != kNone) requested[slot] = 1;
  }
  for (uint32_t e : experts) {
    uint32_t slot = slot_ref(pool, e);
    const bool miss = slot == kNone;
    if (miss) {
      slot = choose_victim(requested, pool, layer, completed);
      Key& old = slot_key_[slot];
      if (old.pool != kNone) {
        slot_ref(old.pool, old.expert) = kNone;
        plan.wait_for = std::max(plan.wait_for, last_use_[slot]);
      } else {
        ++occupied_;
      }
      old = Key{pool, e};
      slot_ref(pool, e) = slot;
      requested[slot] = 1;
      ++plan.misses;
    } else {
      ++plan.hits;
    }
    last_use_[slot] = std::max(last_use_[slot], use_value);
    last_touch_[slot] = ++clock_;
    plan.entries.push_back({e, slot, miss});
  }
  return plan;
}

}  // namespace megrez
