#ifndef MEGREZ_EXPERT_SLOTS_GLSL
#define MEGREZ_EXPERT_SLOTS_GLSL
// Expert id -> slot indirection shared by the routed-expert kernels (layout: abi/moe.h).
// The includer declares `slot_table` (uint[]) and the push block `pc` (MoePush).
// The same kernels serve resident and streaming execution: only the table's contents differ.

// Byte offset of `expert`'s slot inside the bound part of the slot store. False when the id
// is out of range or the slot lies in another part (or is absent): nothing to compute here.
bool expert_slot_base(uint expert, out uint base) {
  base = 0u;
  if (expert >= pc.n_experts || pc.slots_per_part == 0u) return false;
  uint slot = slot_table[expert];
  if (slot / pc.slots_per_part != pc.part) return false;
  base = (slot % pc.slots_per_part) * pc.slot_bytes;
  return true;
}

#endif
