// Expert streaming's host-side pieces, which need no GPU: the slot cache (ExpertCache) and its
// eviction policies, the storage-bandwidth throttle, and the --expert-budget parser.
// Hand-worked cases pin each rule; a seeded property test replays decode-like traces against
// an independent brute-force model of the cache; a small simulation reports LRU vs
// pool-distance hit rates (reported, not asserted: it is a measurement, not a contract).
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "loader/error.h"
#include "runtime/stream/expert_cache.h"
#include "runtime/stream/expert_streamer.h"
#include "runtime/stream/expert_uploader.h"

using megrez::EvictionPolicy;
using megrez::ExpertCache;
using megrez::ExpertPlacement;

namespace {

using Experts = std::vector<uint32_t>;

// (expert, slot, miss) of every entry, in request order.
struct Expected {
  uint32_t expert, slot;
  bool miss;
};

void check_plan(const ExpertPlacement& plan, const std::vector<Expected>& expected, uint64_t wait_for) {
  REQUIRE(plan.entries.size() == expected.size());
  uint32_t misses = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(i);
    CHECK(plan.entries[i].expert == expected[i].expert);
    CHECK(plan.entries[i].slot == expected[i].slot);
    CHECK(plan.entries[i].miss == expected[i].miss);
    misses += expected[i].miss ? 1 : 0;
  }
  CHECK(plan.misses == misses);
  CHECK(plan.hits == expected.size() - misses);
  CHECK(plan.wait_for == wait_for);
}

// Megrez2's layer schedule in miniature: a dense layer, then pools of 3 consecutive layers.
const std::vector<int> kMegrezLikeLayers = {-1, 0, 0, 0, 1, 1, 1};

}  // namespace

TEST_CASE("expert cache: misses take free slots in order, hits keep their slot") {
  ExpertCache cache(4, {8}, {0}, EvictionPolicy::Lru);
  CHECK(cache.slots() == 4);
  CHECK(cache.occupied() == 0);
  CHECK(cache.policy() == EvictionPolicy::Lru);

  Experts first = {3, 1};
  check_plan(cache.place(0, first, 0, 1, 0), {{3, 0, true}, {1, 1, true}}, 0);
  CHECK(cache.occupied() == 2);

  Experts second = {1, 5, 3};
  check_plan(cache.place(0, second, 0, 2, 1), {{1, 1, false}, {5, 2, true}, {3, 0, false}}, 0);
  CHECK(cache.occupied() == 3);
  CHECK(cache.slot_of(0, 3) == 0u);
  CHECK(cache.slot_of(0, 1) == 1u);
  CHECK(cache.slot_of(0, 5) == 2u);
  CHECK_FALSE(cache.slot_of(0, 0).has_value());
  CHECK_FALSE(cache.slot_of(0, 99).has_value());  // out of range: simply not cached
  CHECK_FALSE(cache.slot_of(7, 0).has_value());

  Experts third = {6};
  check_plan(cache.place(0, third, 0, 3, 2), {{6, 3, true}}, 0);
  CHECK(cache.occupied() == 4);

  // Full now. LRU stamps: e3 t5, e1 t3, e5 t4, e6 t6 -> e1 (slot 1, last read by value 2) goes.
  Experts fourth = {7};
  check_plan(cache.place(0, fourth, 0, 4, 3), {{7, 1, true}}, 2);
  CHECK_FALSE(cache.slot_of(0, 1).has_value());
  CHECK(cache.slot_of(0, 7) == 1u);
  CHECK(cache.occupied() == 4);
}

TEST_CASE("expert cache: a request never evicts one of its own experts") {
  ExpertCache cache(3, {8}, {0}, EvictionPolicy::Lru);
  Experts fill = {0, 1, 2};
  check_plan(cache.place(0, fill, 0, 1, 0), {{0, 0, true}, {1, 1, true}, {2, 2, true}}, 0);
  // e0 is the least recently used, but this request needs it: the miss (listed first, before
  // e0's hit refreshes its stamp) must take e1's slot instead.
  Experts mixed = {5, 0};
  check_plan(cache.place(0, mixed, 0, 2, 1), {{5, 1, true}, {0, 0, false}}, 1);
  CHECK(cache.slot_of(0, 0) == 0u);
  CHECK_FALSE(cache.slot_of(0, 1).has_value());

  // A request as large as the cache replaces everything, never one of its own new entries.
  // Stamps now: e0 t5 (slot 0), e5 t4 (slot 1), e2 t3 (slot 2).
  Experts all_new = {6, 7, 3};
  check_plan(cache.place(0, all_new, 0, 3, 2), {{6, 2, true}, {7, 1, true}, {3, 0, true}}, 2);
  CHECK(cache.occupied() == 3);
}

TEST_CASE("expert cache: eviction prefers completed slots; wait_for is the evicted slots' last reader") {
  ExpertCache cache(3, {8}, {0}, EvictionPolicy::Lru);
  Experts e0 = {0}, e1 = {1}, e2 = {2};
  cache.place(0, e0, 0, 4, 0);  // slot 0, stamp 1, read by value 4
  cache.place(0, e1, 0, 2, 0);  // slot 1, stamp 2, read by value 2
  cache.place(0, e2, 0, 3, 0);  // slot 2, stamp 3, read by value 3

  // Completed up to 2: only slot 1 is safe; it wins over the older but in-flight slot 0.
  Experts e3 = {3};
  check_plan(cache.place(0, e3, 0, 5, 2), {{3, 1, true}}, 2);
  // Everything in flight: plain LRU among them (slot 0), and the upload waits for value 4.
  Experts e4 = {4};
  check_plan(cache.place(0, e4, 0, 6, 2), {{4, 0, true}}, 4);
  // Completed up to 3: slot 2 (value 3) is safe; slots 0 (6) and 1 (5) are not.
  Experts e5 = {5};
  check_plan(cache.place(0, e5, 0, 7, 3), {{5, 2, true}}, 3);
  // Two evictions, both completed: LRU e3 (slot 1, value 5) then e4 (slot 0, value 6);
  // wait_for is the max, 6. The cache reports it even though 6 <= completed; such a wait
  // is already satisfied (the streamer drops values <= completed before enqueueing).
  Experts two = {6, 7};
  check_plan(cache.place(0, two, 0, 8, 7), {{6, 1, true}, {7, 0, true}}, 6);
  // A hit never raises wait_for, and keeps its slot's last reader at the max use value.
  Experts hit = {6};
  check_plan(cache.place(0, hit, 0, 9, 7), {{6, 1, false}}, 0);
}

TEST_CASE("expert cache: LRU and pool distance choose different victims on a Megrez2-like schedule") {
  // Slots 3; pool 0 = layers 1..3, pool 1 = layers 4..6 (layer 0 dense).
  for (EvictionPolicy policy : {EvictionPolicy::Lru, EvictionPolicy::PoolDistance}) {
    const std::string policy_name = megrez::eviction_policy_name(policy);
    CAPTURE(policy_name);
    ExpertCache cache(3, {10, 10}, kMegrezLikeLayers, policy);
    Experts p0e5 = {5}, p1e7 = {7}, p1e8 = {8}, p1e9 = {9};
    cache.place(0, p0e5, 3, 1, 0);  // slot 0
    cache.place(1, p1e7, 4, 2, 0);  // slot 1
    cache.place(1, p1e8, 5, 3, 0);  // slot 2
    // At layer 6, pool 0 is next needed at layer 1 of the next token (2 layers on), pool 1 at
    // layer 4 (5 layers on). LRU evicts the oldest (pool 0's e5, slot 0); pool distance keeps
    // pool 0 and evicts pool 1's least recent expert (e7, slot 1).
    const ExpertPlacement plan = cache.place(1, p1e9, 6, 4, 3);
    if (policy == EvictionPolicy::Lru) {
      check_plan(plan, {{9, 0, true}}, 1);
      CHECK_FALSE(cache.slot_of(0, 5).has_value());
      CHECK(cache.slot_of(1, 7) == 1u);
    } else {
      check_plan(plan, {{9, 1, true}}, 2);
      CHECK(cache.slot_of(0, 5) == 0u);
      CHECK_FALSE(cache.slot_of(1, 7).has_value());
    }
  }
  // The other direction: at layer 3 (pool 0's last layer) pool 1 is 1 layer away and pool 0 is
  // 5 away, so pool distance evicts pool 0's older expert; LRU evicts pool 1's older one.
  for (EvictionPolicy policy : {EvictionPolicy::Lru, EvictionPolicy::PoolDistance}) {
    const std::string policy_name = megrez::eviction_policy_name(policy);
    CAPTURE(policy_name);
    ExpertCache cache(3, {10, 10}, kMegrezLikeLayers, policy);
    Experts p1e0 = {0}, p0e0 = {0}, p0e1 = {1}, p0e2 = {2};
    cache.place(1, p1e0, 4, 1, 0);  // slot 0
    cache.place(0, p0e0, 1, 2, 0);  // slot 1
    cache.place(0, p0e1, 2, 3, 0);  // slot 2
    const ExpertPlacement plan = cache.place(0, p0e2, 3, 4, 3);
    check_plan(plan, {{2, policy == EvictionPolicy::Lru ? 0u : 1u, true}}, policy == EvictionPolicy::Lru ? 1 : 2);
    CHECK(cache.slot_of(1, 0).has_value() == (policy == EvictionPolicy::PoolDistance));
  }
}

TEST_CASE("expert cache: pool distance still prefers completed slots, and evicts unscheduled pools first") {
  {
    // Same setup as above at layer 6, but pool 1's slots are still being read: pool 0's
    // completed slot goes despite its nearer next use.
    ExpertCache cache(3, {10, 10}, kMegrezLikeLayers, EvictionPolicy::PoolDistance);
    Experts p0e5 = {5}, p1e7 = {7}, p1e8 = {8}, p1e9 = {9};
    cache.place(0, p0e5, 3, 1, 0);
    cache.place(1, p1e7, 4, 2, 0);
    cache.place(1, p1e8, 5, 3, 0);
    check_plan(cache.place(1, p1e9, 6, 4, 1), {{9, 0, true}}, 1);
  }
  {
    // Pool 2 is used by no layer: its next use is "never", so it goes first even when it is
    // the most recently used. LRU would evict pool 0's older slot.
    ExpertCache pool(2, {4, 4, 4}, {0, 1}, EvictionPolicy::PoolDistance);
    ExpertCache lru(2, {4, 4, 4}, {0, 1}, EvictionPolicy::Lru);
    for (ExpertCache* cache : {&pool, &lru}) {
      Experts one = {0};
      cache->place(0, one, 0, 1, 0);  // slot 0
      cache->place(2, one, 1, 2, 0);  // slot 1
    }
    Experts one = {0};
    check_plan(pool.place(1, one, 1, 3, 2), {{0, 1, true}}, 2);
    check_plan(lru.place(1, one, 1, 3, 2), {{0, 0, true}}, 1);
  }
}

TEST_CASE("expert cache: free slots keep each pool's experts in few store parts") {
  // 3 parts of 4 slots; pools 0 and 1 of 8 experts. Hand-worked: pool 0 starts in part 0 (all
  // empty: lowest), pool 1 in the emptiest part (1), and each pool fills its own part first;
  // when a pool's part is full it spills into the emptiest remaining part.
  ExpertCache cache(12, {8, 8}, {-1, 0, 0, 0, 1, 1, 1}, EvictionPolicy::Lru, 4);
  auto slot_of = [](const ExpertPlacement& plan, size_t i) { return plan.entries[i].slot; };
  const ExpertPlacement a = cache.place(0, Experts{0, 1, 2}, 1, 1, 0);
  CHECK(slot_of(a, 0) == 0);
  CHECK(slot_of(a, 1) == 1);
  CHECK(slot_of(a, 2) == 2);
  const ExpertPlacement b = cache.place(1, Experts{0, 1}, 4, 2, 0);
  CHECK(slot_of(b, 0) == 4);
  CHECK(slot_of(b, 1) == 5);
  const ExpertPlacement c = cache.place(0, Experts{3, 4}, 2, 3, 0);
  CHECK(slot_of(c, 0) == 3);  // the last free slot of pool 0's part
  CHECK(slot_of(c, 1) == 8);  // part 0 is full: the emptiest part (2), not pool 1's part
  const ExpertPlacement d = cache.place(1, Experts{2, 3}, 5, 4, 0);
  CHECK(slot_of(d, 0) == 6);
  CHECK(slot_of(d, 1) == 7);
  // Without parts (the default: one part) free slots are simply taken in order.
  ExpertCache flat(12, {8, 8}, {-1, 0, 0, 0, 1, 1, 1}, EvictionPolicy::Lru);
  flat.place(0, Experts{0, 1, 2}, 1, 1, 0);
  CHECK(slot_of(flat.place(1, Experts{0}, 4, 2, 0), 0) == 3);
}

TEST_CASE("expert cache: clear() empties every slot") {
  ExpertCache cache(2, {4, 4}, {0, 1}, EvictionPolicy::PoolDistance);
  Experts two = {2, 3};
  cache.place(1, two, 1, 5, 0);
  CHECK(cache.occupied() == 2);
  cache.clear();
  CHECK(cache.occupied() == 0);
  for (uint32_t p = 0; p < 2; ++p)
    for (uint32_t e = 0; e < 4; ++e) CHECK_FALSE(cache.slot_of(p, e).has_value());
  // Free slots again: taken in order, no eviction, nothing to wait for.
  check_plan(cache.place(1, two, 1, 6, 0), {{2, 0, true}, {3, 1, true}}, 0);
}

TEST_CASE("expert cache: invalid requests throw and leave the cache unchanged") {
  CHECK_THROWS_AS(ExpertCache(0, {4}, {0}, EvictionPolicy::Lru), megrez::Error);
  ExpertCache cache(3, {4, 6}, {0, 1}, EvictionPolicy::Lru);
  Experts start = {1};
  cache.place(1, start, 1, 1, 0);
  Experts twice = {2, 2}, too_many = {0, 1, 2, 3}, out_of_range = {0, 6}, fine = {0};
  CHECK_THROWS_AS(cache.place(1, twice, 1, 2, 1), megrez::Error);
  CHECK_THROWS_AS(cache.place(1, too_many, 1, 2, 1), megrez::Error);
  CHECK_THROWS_AS(cache.place(1, out_of_range, 1, 2, 1), megrez::Error);  // pool 1 has 6 experts
  CHECK_THROWS_AS(cache.place(2, fine, 1, 2, 1), megrez::Error);          // 2 pools
  CHECK_THROWS_WITH_AS(cache.place(0, out_of_range, 0, 2, 1), "expert cache: expert 6 of pool 0 out of range",
                       megrez::Error);
  // Nothing above was placed: e0 of pool 1 (a miss listed before the bad expert) included.
  CHECK(cache.occupied() == 1);
  CHECK(cache.slot_of(1, 1) == 0u);
  CHECK_FALSE(cache.slot_of(1, 0).has_value());
  CHECK_FALSE(cache.slot_of(0, 0).has_value());
  check_plan(cache.place(1, fine, 1, 2, 1), {{0, 1, true}}, 0);
}

TEST_CASE("expert cache: eviction policy names") {
  EvictionPolicy policy = EvictionPolicy::Lru;
  CHECK(megrez::eviction_policy_from_name("pool", policy));
  CHECK(policy == EvictionPolicy::PoolDistance);
  CHECK(megrez::eviction_policy_from_name("lru", policy));
  CHECK(policy == EvictionPolicy::Lru);
  CHECK_FALSE(megrez::eviction_policy_from_name("LRU", policy));
  CHECK_FALSE(megrez::eviction_policy_from_name("", policy));
  CHECK(policy == EvictionPolicy::Lru);  // unchanged on failure
  CHECK(std::string(megrez::eviction_policy_name(EvictionPolicy::Lru)) == "lru");
  CHECK(std::string(megrez::eviction_policy_name(EvictionPolicy::PoolDistance)) == "pool");
}

// ---- Property test: random decode-like traces against a brute-force model -------------------

namespace {

// The cache's contract restated as plainly as possible: a list of slots, each either empty or
// holding (pool, expert) with the value of its last reader and a recency stamp. Victims are
// found by filtering candidates step by step, not by a combined sort key.
class ReferenceCache {
 public:
  ReferenceCache(uint32_t slots, std::vector<int> layer_pools, EvictionPolicy policy)
      : slots_(slots), layer_pools_(std::move(layer_pools)), policy_(policy) {}

  std::optional<uint32_t> find(uint32_t pool, uint32_t expert) const {
    for (uint32_t s = 0; s < slots_.size(); ++s) {
      if (slots_[s].used && slots_[s].pool == pool && slots_[s].expert == expert) return s;
    }
    return std::nullopt;
  }

  ExpertPlacement place(uint32_t pool, const Experts& experts, int layer, uint64_t use, uint64_t completed) {
    std::set<uint32_t> taken;  // slots this request holds: its hits, then its new entries
    for (uint32_t e : experts) {
      if (std::optional<uint32_t> s = find(pool, e)) taken.insert(*s);
    }
    ExpertPlacement plan;
    for (uint32_t e : experts) {
      std::optional<uint32_t> slot = find(pool, e);
      const bool miss = !slot;
      if (miss) {
        slot = victim(taken, layer, completed);
        Slot& s = slots_[*slot];
        if (s.used) plan.wait_for = std::max(plan.wait_for, s.last_use);
        s.used = true;
        s.pool = pool;
        s.expert = e;
        taken.insert(*slot);
      }
      Slot& s = slots_[*slot];
      s.last_use = std::max(s.last_use, use);
      s.stamp = ++clock_;
      plan.entries.push_back({e, *slot, miss});
      (miss ? plan.misses : plan.hits) += 1;
    }
    return plan;
  }

  uint32_t occupied() const {
    return uint32_t(std::count_if(slots_.begin(), slots_.end(), [](const Slot& s) { return s.used; }));
  }

 private:
  struct Slot {
    bool used = false;
    uint32_t pool = 0, expert = 0;
    uint64_t last_use = 0, stamp = 0;
  };

  // Layers until `pool` runs again after `layer`, walking the schedule token after token.
  uint32_t layers_until(uint32_t pool, int layer) const {
    const size_t n = layer_pools_.size();
    size_t l = size_t(layer);
    for (uint32_t steps = 1; steps <= n; ++steps) {
      l = (l + 1) % n;
      if (layer_pools_[l] == int(pool)) return steps;
    }
    return uint32_t(n) + 1;
  }

  uint32_t victim(const std::set<uint32_t>& taken, int layer, uint64_t completed) const {
    std::vector<uint32_t> candidates;
    for (uint32_t s = 0; s < slots_.size(); ++s) {
      if (!taken.count(s) && !slots_[s].used) return s;  // the first free slot
      if (!taken.count(s)) candidates.push_back(s);
    }
    std::vector<uint32_t> done;
    for (uint32_t s : candidates) {
      if (slots_[s].last_use <= completed) done.push_back(s);
    }
    if (!done.empty()) candidates = done;
    if (policy_ == EvictionPolicy::PoolDistance) {
      uint32_t furthest = 0;
      for (uint32_t s : candidates) furthest = std::max(furthest, layers_until(slots_[s].pool, layer));
      std::erase_if(candidates, [&](uint32_t s) { return layers_until(slots_[s].pool, layer) != furthest; });
    }
    return *std::min_element(candidates.begin(), candidates.end(),
                             [&](uint32_t a, uint32_t b) { return slots_[a].stamp < slots_[b].stamp; });
  }

  std::vector<Slot> slots_;
  std::vector<int> layer_pools_;
  EvictionPolicy policy_;
  uint64_t clock_ = 0;
};

// Deterministic across standard libraries: mt19937's sequence is fixed by the standard, and
// ranges come from a plain modulo (std::uniform_int_distribution is implementation-defined).
struct Rng {
  std::mt19937 engine;
  uint32_t below(uint32_t n) { return uint32_t(engine() % n); }
  Experts distinct(uint32_t count, uint32_t of) {  // partial Fisher-Yates
    Experts all(of);
    for (uint32_t i = 0; i < of; ++i) all[i] = i;
    for (uint32_t i = 0; i < count; ++i) std::swap(all[i], all[i + below(of - i)]);
    all.resize(count);
    return all;
  }
};

std::vector<int> megrez_schedule(uint32_t pools, uint32_t layers_per_pool) {
  std::vector<int> layers = {-1};
  for (uint32_t p = 0; p < pools; ++p) layers.insert(layers.end(), layers_per_pool, int(p));
  return layers;
}

// The cache's full mapping agrees with the model and is a bijection onto occupied slots.
void check_mapping(const ExpertCache& cache, const ReferenceCache& model, uint32_t pools, uint32_t experts) {
  std::set<uint32_t> slots_used;
  uint32_t cached = 0;
  for (uint32_t p = 0; p < pools; ++p) {
    for (uint32_t e = 0; e < experts; ++e) {
      const std::optional<uint32_t> slot = cache.slot_of(p, e);
      REQUIRE(slot == model.find(p, e));
      if (!slot) continue;
      REQUIRE(*slot < cache.slots());
      REQUIRE(slots_used.insert(*slot).second);  // no slot holds two experts
      ++cached;
    }
  }
  REQUIRE(cached == cache.occupied());
  REQUIRE(cached == model.occupied());
}

}  // namespace

TEST_CASE("expert cache: random decode traces match a brute-force model (property)") {
  constexpr uint32_t kExperts = 16, kTopK = 4, kTokens = 30;
  uint64_t places = 0, total_hits = 0, total_misses = 0, waits = 0;
  for (uint32_t pools : {2u, 3u}) {
    const std::vector<int> layers = megrez_schedule(pools, 3);
    for (uint32_t slots = kTopK + 1; slots <= pools * kExperts; ++slots) {
      for (EvictionPolicy policy : {EvictionPolicy::Lru, EvictionPolicy::PoolDistance}) {
        CAPTURE(pools);
        CAPTURE(slots);
        const std::string policy_name = megrez::eviction_policy_name(policy);
        CAPTURE(policy_name);
        ExpertCache cache(slots, std::vector<uint32_t>(pools, kExperts), layers, policy);
        ReferenceCache model(slots, layers, policy);
        Rng rng{std::mt19937(1000 * pools + slots)};
        std::vector<Experts> previous(layers.size());
        uint64_t use = 0;
        for (uint32_t token = 0; token < kTokens; ++token) {
          for (size_t layer = 0; layer < layers.size(); ++layer) {
            if (layers[layer] < 0) continue;
            const uint32_t pool = uint32_t(layers[layer]);
            // Mostly top-k with some temporal locality; now and then a prefill-sized request.
            Experts request = rng.below(8) == 0 ? rng.distinct(1 + rng.below(std::min(slots, kExperts)), kExperts)
                                                : rng.distinct(kTopK, kExperts);
            if (request.size() == kTopK && rng.below(2) == 0) {
              // Keep up to two of last token's experts for this layer (temporal locality).
              const size_t keep = std::min<size_t>(2, previous[layer].size());
              std::copy_n(previous[layer].begin(), keep, request.begin());
              std::sort(request.begin(), request.end());
              request.erase(std::unique(request.begin(), request.end()), request.end());
            }
            previous[layer] = request;
            ++use;
            const uint64_t completed = use - 1 - std::min<uint64_t>(use - 1, rng.below(4));  // 0..3 in flight
            std::vector<bool> was_cached;
            for (uint32_t e : request) was_cached.push_back(model.find(pool, e).has_value());

            const ExpertPlacement got = cache.place(pool, request, int(layer), use, completed);
            const ExpertPlacement want = model.place(pool, request, int(layer), use, completed);
            REQUIRE(got.entries.size() == request.size());
            REQUIRE(got.hits + got.misses == request.size());
            std::set<uint32_t> request_slots;
            for (size_t i = 0; i < request.size(); ++i) {
              CAPTURE(token);
              CAPTURE(layer);
              CAPTURE(i);
              REQUIRE(got.entries[i].expert == request[i]);
              REQUIRE(got.entries[i].miss == !was_cached[i]);  // hit exactly when the model had it
              REQUIRE(got.entries[i].slot == want.entries[i].slot);
              REQUIRE(cache.slot_of(pool, request[i]) == got.entries[i].slot);
              REQUIRE(request_slots.insert(got.entries[i].slot).second);
            }
            REQUIRE(got.hits == want.hits);
            REQUIRE(got.wait_for == want.wait_for);
            check_mapping(cache, model, pools, kExperts);
            ++places;
            total_hits += got.hits;
            total_misses += got.misses;
            waits += got.wait_for > completed ? 1 : 0;
          }
        }
      }
    }
  }
  // The trace exercises every path: hits, misses, and evictions of in-flight slots.
  CHECK(total_hits > 0);
  CHECK(total_misses > 0);
  CHECK(waits > 0);
  MESSAGE("property trace: " << places << " placements, " << total_hits << " hits, " << total_misses
                             << " misses, " << waits << " waited on in-flight compute");
}

// ---- Simulation: LRU vs pool distance on Megrez2's schedule (reported, not asserted) ----------

TEST_CASE("expert cache: simulated decode hit rates, LRU vs pool distance (report)") {
  // Megrez2: 10 pools x 3 layers after a dense layer, 64 experts per pool, top-6. Routing is
  // uniform random per layer, a pessimistic stand-in: real routers repeat experts across
  // tokens and across a pool's layers, which raises every policy's hit rate.
  constexpr uint32_t kPools = 10, kExperts = 64, kTopK = 6, kWarmup = 20, kTokens = 200;
  const std::vector<int> layers = megrez_schedule(kPools, 3);
  for (uint32_t percent : {25u, 50u}) {
    const uint32_t slots = kPools * kExperts * percent / 100;
    double rate[2] = {};
    for (EvictionPolicy policy : {EvictionPolicy::Lru, EvictionPolicy::PoolDistance}) {
      ExpertCache cache(slots, std::vector<uint32_t>(kPools, kExperts), layers, policy);
      Rng rng{std::mt19937(7)};  // the same routing trace for both policies
      uint64_t hits = 0, requests = 0, use = 0;
      for (uint32_t token = 0; token < kWarmup + kTokens; ++token) {
        for (size_t layer = 1; layer < layers.size(); ++layer) {
          const Experts request = rng.distinct(kTopK, kExperts);
          ++use;
          const ExpertPlacement plan = cache.place(uint32_t(layers[layer]), request, int(layer), use, use - 1);
          if (token < kWarmup) continue;
          hits += plan.hits;
          requests += request.size();
        }
      }
      rate[policy == EvictionPolicy::PoolDistance] = double(hits) / double(requests);
    }
    MESSAGE("budget " << percent << "% (" << slots << " of " << kPools * kExperts << " experts), random routing, "
                      << kTokens << " decode tokens: hit rate LRU " << 100 * rate[0] << "%, pool distance "
                      << 100 * rate[1] << "%");
  }
}

// ---- StorageThrottle -------------------------------------------------------------------------

namespace {

std::vector<uint8_t> pattern(size_t n) {
  std::vector<uint8_t> bytes(n);
  for (size_t i = 0; i < n; ++i) bytes[i] = uint8_t(i * 131 + 7);
  return bytes;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

TEST_CASE("storage throttle: unthrottled copy is an exact memcpy") {
  megrez::StorageThrottle throttle;
  CHECK(throttle.bytes_per_second() == 0);
  const std::vector<uint8_t> src = pattern(100003);
  std::vector<uint8_t> dst(src.size() + 2, 0xEE);
  throttle.copy(dst.data() + 1, src.data(), src.size());
  CHECK(std::equal(src.begin(), src.end(), dst.begin() + 1));
  CHECK(dst.front() == 0xEE);  // nothing written outside the range
  CHECK(dst.back() == 0xEE);
  throttle.copy(dst.data(), src.data(), 0);  // zero bytes: allowed, nothing written
  CHECK(dst.front() == 0xEE);
}

TEST_CASE("storage throttle: n bytes at b bytes/s take at least n/b seconds, back to back") {
  constexpr double kBytesPerSecond = 100000;  // 2000 bytes -> 20 ms per copy
  megrez::StorageThrottle throttle(kBytesPerSecond);
  CHECK(throttle.bytes_per_second() == kBytesPerSecond);
  const std::vector<uint8_t> src = pattern(2000);
  std::vector<uint8_t> dst(src.size(), 0);
  const auto start = std::chrono::steady_clock::now();
  throttle.copy(dst.data(), src.data(), src.size());
  const double one = seconds_since(start);
  CHECK(dst == src);
  // The duration is truncated to the clock's nanoseconds: allow that much, and no more.
  CHECK(one >= 0.02 - 1e-9);
  // Reads queue behind each other: three more copies end no earlier than 4 x 20 ms overall.
  for (int i = 0; i < 3; ++i) {
    std::fill(dst.begin(), dst.end(), uint8_t(0));
    throttle.copy(dst.data(), src.data(), src.size());
    CHECK(dst == src);
  }
  CHECK(seconds_since(start) >= 0.08 - 4e-9);
}

// ---- parse_expert_budget ---------------------------------------------------------------------

TEST_CASE("expert budget: percentages of the routed experts' bytes, floored") {
  using megrez::parse_expert_budget;
  CHECK(parse_expert_budget("25%", 1000) == 250);
  CHECK(parse_expert_budget("25%", 1001) == 250);   // 250.25
  CHECK(parse_expert_budget("25%", 1003) == 250);   // 250.75
  CHECK(parse_expert_budget("50%", 7) == 3);        // 3.5
  CHECK(parse_expert_budget("100%", 123456789) == 123456789);
  CHECK(parse_expert_budget("12.5%", 1000) == 125);
  CHECK(parse_expert_budget("0.5%", 1000) == 5);
  CHECK(parse_expert_budget("1%", 99) == 0);        // 0.99: a share too small for one byte
  CHECK(parse_expert_budget("37.5%", uint64_t(1) << 40) == (uint64_t(3) << 40) / 8);
  CHECK(parse_expert_budget("25%", 0) == 0);
}

TEST_CASE("expert budget: sizes with binary units in any case") {
  using megrez::parse_expert_budget;
  constexpr uint64_t KiB = 1024, MiB = KiB * 1024, GiB = MiB * 1024;
  const uint64_t any = 777;  // a size does not depend on the experts' bytes
  CHECK(parse_expert_budget("512MB", any) == 512 * MiB);
  CHECK(parse_expert_budget("1.5GB", any) == 3 * GiB / 2);
  CHECK(parse_expert_budget("300MiB", any) == 300 * MiB);
  CHECK(parse_expert_budget("2G", any) == 2 * GiB);
  CHECK(parse_expert_budget("2g", any) == 2 * GiB);
  CHECK(parse_expert_budget("2gb", any) == 2 * GiB);
  CHECK(parse_expert_budget("2GiB", any) == 2 * GiB);
  CHECK(parse_expert_budget("2gib", any) == 2 * GiB);
  CHECK(parse_expert_budget("3M", any) == 3 * MiB);
  CHECK(parse_expert_budget("3m", any) == 3 * MiB);
  CHECK(parse_expert_budget("3mb", any) == 3 * MiB);
  CHECK(parse_expert_budget("3mib", any) == 3 * MiB);
  CHECK(parse_expert_budget("64K", any) == 64 * KiB);
  CHECK(parse_expert_budget("64k", any) == 64 * KiB);
  CHECK(parse_expert_budget("64KB", any) == 64 * KiB);
  CHECK(parse_expert_budget("64KiB", any) == 64 * KiB);
  CHECK(parse_expert_budget("4096", any) == 4096);   // no unit: bytes
  CHECK(parse_expert_budget("4096B", any) == 4096);
  CHECK(parse_expert_budget("4096b", any) == 4096);
  CHECK(parse_expert_budget("0.25G", any) == GiB / 4);
  CHECK(parse_expert_budget("0.1K", any) == 102);    // 102.4, truncated
  CHECK(parse_expert_budget("1.1M", any) == 1153433); // 1153433.6, truncated
}

TEST_CASE("expert budget: malformed, non-positive and over-100% budgets are rejected") {
  using megrez::parse_expert_budget;
  for (const char* text : {"", "abc", "%", "G", "-5%", "-1G", "0", "0%", "0G", "0.0", "120%", "100.5%", "12XB",
                           "12T", "12TB", "5 %", "5 G", "25%%", "25%B", "1GBs", "nan", "nan%", "inf", "infG",
                           "1e400", "1e400%"}) {
    CAPTURE(text);
    CHECK_THROWS_AS(parse_expert_budget(text, 1000), megrez::Error);
  }
  CHECK_THROWS_WITH_AS(parse_expert_budget("12XB", 1000),
                       "expert budget '12XB': expected a share of the routed experts (\"25%\") or a size "
                       "(\"512MB\", \"1.5GB\")",
                       megrez::Error);
  CHECK_THROWS_WITH_AS(parse_expert_budget("120%", 1000), "expert budget 120% is more than 100%", megrez::Error);
}
