#ifndef MEGREZ_ABI_MOE_SORT_H
#define MEGREZ_ABI_MOE_SORT_H
// Push constants of shaders/moe_sort.comp (variant moe_sort): ONE workgroup groups the T*K
// (token, k) entries of a batch by expert for the batched expert products (moe_matmul.comp).
//
// Bindings: 0 ids [entries] uint (the router's [T, K] ids)
//           1 expert_offsets [n_experts + 1] uint (out): expert e's entries are sorted
//             positions offsets[e] .. offsets[e+1]-1
//           2 sorted [entries] uint (out): entry indices t*K+k grouped by expert, ascending
//             within an expert (so the order never depends on scheduling)
//           3 tiles [1 + 3 * max_tiles] uint (out): see MOE_TILE_WORDS in abi/moe.h
// Ids >= n_experts are left out of every list.
#include "prelude.h"

#define MOE_SORT_MAX_EXPERTS 256

MEGREZ_ABI_BEGIN
struct MoeSortPush {
  uint entries;      // T * K
  uint n_experts;    // E <= MOE_SORT_MAX_EXPERTS
  uint tile_tokens;  // entries per tile (>= 1; moe_matmul loops over a tile in its own steps)
  uint max_tiles;    // capacity of the tile list: ceil(entries / tile_tokens) + min(E, entries)
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::MoeSortPush, 16)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::MoeSortPush, max_tiles, 12)

#endif
