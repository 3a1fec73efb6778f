#version 450
// Which parts of a slot store a decode step's selected experts live in, written as the
// indirect workgroup counts of its expert products (abi/moe_part_args.h). Resident experts
// are spread over every part of a pool; without this, each product launched workgroups in
// every part, most of which found no selected expert and returned.
#extension GL_GOOGLE_include_directive : require
#include "common/workgroup.glsl"
#include "abi/moe_part_args.h"

layout(set = 0, binding = 0) readonly buffer Ids { uint ids[]; };
layout(set = 0, binding = 1) readonly buffer SlotTable { uint slot_table[]; };
layout(set = 0, binding = 2) writeonly buffer Args { uint args[]; };
layout(push_constant) uniform Push { MoePartArgsPush pc; };

void main() {
  const uint part = gl_GlobalInvocationID.x;
  if (part >= pc.parts) return;
  bool selected = false;
  for (uint e = 0u; e < pc.tokens * pc.top_k; ++e) {
    const uint expert = ids[e];
    if (expert >= pc.n_experts) continue;
    const uint slot = slot_table[expert];
    if (slot != 0xFFFFFFFFu && slot / pc.slots_per_part == part) selected = true;
  }
  const uint x = selected ? pc.top_k : 0u, first = part * MOE_PART_ARGS_WORDS;
  args[first + 0u] = x;
  args[first + 1u] = pc.gate_up_groups;
  args[first + 2u] = pc.tokens;
  args[first + 3u] = x;
  args[first + 4u] = pc.down_groups;
  args[first + 5u] = pc.tokens;
}
