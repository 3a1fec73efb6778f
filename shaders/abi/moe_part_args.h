#ifndef MEGREZ_ABI_MOE_PART_ARGS_H
#define MEGREZ_ABI_MOE_PART_ARGS_H
// Push constants of shaders/moe_part_args.comp (variant moe_part_args): the workgroup counts
// of a decode step's expert products over a slot store cut into parts (abi/moe.h), for
// vkCmdDispatchIndirect, so that only the parts holding a selected expert launch workgroups.
//
// Bindings: 0 ids [tokens * top_k] uint (the router's ids), 1 slot table [n_experts] uint,
//           2 args [parts][2] VkDispatchIndirectCommand (out): for part p, the gate/up
//             product's (top_k, gate_up_groups, tokens) and the down product's
//             (top_k, down_groups, tokens), with x = 0 where no selected expert's slot lies
//             in part p.
// Grid: ceil(parts / workgroup size) workgroups, one invocation per part.
#include "prelude.h"

#define MOE_PART_ARGS_WORDS 6u  // words per part: two VkDispatchIndirectCommand

MEGREZ_ABI_BEGIN
struct MoePartArgsPush {
  uint tokens;          // T
  uint top_k;           // K
  uint n_experts;       // slot-table length; ids >= n_experts select nothing
  uint slots_per_part;  // slots in every part (>= 1)
  uint parts;           // parts of the slot store
  uint gate_up_groups;  // workgroups in y of the gate/up product (record_moe_gate_up's grid)
  uint down_groups;     // and of the down product
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::MoePartArgsPush, 28)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::MoePartArgsPush, down_groups, 24)

#endif
