// Grouping of a batch's (token, k) entries by expert (moe_sort.comp) against a plain C++
// grouping: exact offsets, lists and tiles, independent of scheduling.
#include <algorithm>
#include <numeric>

#include "moe_test_util.h"
#include "shaders/abi/moe.h"

using namespace megrez;

namespace {

struct SortOutput {
  std::vector<uint32_t> offsets, sorted, tiles;
};

SortOutput run_sort(Context& ctx, const std::vector<uint32_t>& ids, uint32_t n_experts, uint32_t tile_tokens) {
  Arena arena(ctx, "sort-test", MemoryUse::Device, 4 << 20);
  MoeBatchScratch scratch = allocate_moe_batch_scratch(arena, ctx.caps(), uint32_t(ids.size()), n_experts);
  if (tile_tokens != scratch.tile_tokens) {  // a tile size other than the device's matmul tile
    scratch.tile_tokens = tile_tokens;
    scratch.max_tiles = moe_max_tiles(scratch.entries, n_experts, tile_tokens);
    scratch.tiles = arena.allocate(4 * (1 + uint64_t{MOE_TILE_WORDS} * scratch.max_tiles));
  }
  BufferRange ids_buf = test::upload_vector(ctx, arena, ids);
  CommandBuffer cmd(ctx);
  cmd.begin();
  record_moe_sort(cmd, ids_buf, scratch);
  cmd.submit_and_wait();
  SortOutput out{test::download_vector<uint32_t>(ctx, scratch.expert_offsets),
                 test::download_vector<uint32_t>(ctx, scratch.sorted), test::download_vector<uint32_t>(ctx, scratch.tiles)};
  out.offsets.resize(n_experts + 1);
  return out;
}

// The grouping computed the obvious way.
void check_sort(const SortOutput& got, const std::vector<uint32_t>& ids, uint32_t n_experts, uint32_t tile_tokens) {
  std::vector<std::vector<uint32_t>> lists(n_experts);
  for (uint32_t i = 0; i < ids.size(); ++i)
    if (ids[i] < n_experts) lists[ids[i]].push_back(i);
  std::vector<uint32_t> offsets{0}, sorted, tiles{0};
  for (uint32_t e = 0; e < n_experts; ++e) {
    for (uint32_t j = 0; j < lists[e].size(); j += tile_tokens) {
      tiles.insert(tiles.end(), {e, offsets.back() + j, std::min<uint32_t>(tile_tokens, uint32_t(lists[e].size()) - j)});
      ++tiles[0];
    }
    sorted.insert(sorted.end(), lists[e].begin(), lists[e].end());
    offsets.push_back(uint32_t(sorted.size()));
  }
  CHECK(got.offsets == offsets);
  CHECK(std::vector<uint32_t>(got.sorted.begin(), got.sorted.begin() + sorted.size()) == sorted);
  REQUIRE(got.tiles.size() >= tiles.size());
  CHECK(std::vector<uint32_t>(got.tiles.begin(), got.tiles.begin() + tiles.size()) == tiles);
}

std::vector<uint32_t> random_ids(uint32_t tokens, uint32_t top_k, uint32_t n_experts, std::mt19937& rng) {
  std::vector<uint32_t> all(n_experts), ids;
  std::iota(all.begin(), all.end(), 0u);
  for (uint32_t t = 0; t < tokens; ++t) {
    std::shuffle(all.begin(), all.end(), rng);
    ids.insert(ids.end(), all.begin(), all.begin() + top_k);
  }
  return ids;
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "moe_sort groups entries by expert, ascending, with exact tiles") {
  struct Case {
    uint32_t tokens, top_k, experts, tile_tokens;
  };
  for (const Case& c : {Case{100, 6, 64, 32}, Case{512, 6, 64, 32}, Case{3, 16, 256, 32}, Case{1, 1, 1, 32},
                        Case{200, 6, 64, 5}, Case{40, 2, 8, 1}}) {
    CAPTURE(c.tokens);
    CAPTURE(c.experts);
    CAPTURE(c.tile_tokens);
    std::mt19937 rng(c.tokens * 7 + c.experts);
    const std::vector<uint32_t> ids = random_ids(c.tokens, c.top_k, c.experts, rng);
    check_sort(run_sort(ctx, ids, c.experts, c.tile_tokens), ids, c.experts, c.tile_tokens);
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "moe_sort skewed routing and out-of-range ids") {
  std::mt19937 rng(3);
  // Every token picks expert 5 first: one expert gets a tile list of its own.
  std::vector<uint32_t> ids = random_ids(300, 4, 16, rng);
  for (size_t i = 0; i < ids.size(); i += 4) {
    const auto five = std::find(ids.begin() + i, ids.begin() + i + 4, 5u);
    if (five != ids.begin() + i + 4) std::iter_swap(five, ids.begin() + i);
    else ids[i] = 5;
  }
  check_sort(run_sort(ctx, ids, 16, 32), ids, 16, 32);
  // Ids >= n_experts are left out of every list (the router never writes them).
  ids[7] = 16;
  ids[100] = 0xFFFFFFFFu;
  check_sort(run_sort(ctx, ids, 16, 32), ids, 16, 32);
}
