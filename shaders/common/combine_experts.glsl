#ifndef MEGREZ_COMBINE_EXPERTS_GLSL
#define MEGREZ_COMBINE_EXPERTS_GLSL
// The routed experts' weighted sum for element d of token `token`, k in order 0..K-1, so every
// kernel that combines (moe_combine.comp, rmsnorm.comp's COMBINE_EXPERTS variant), the decode
// and batched paths, and any part split of the slot store give identical bits. The includer
// declares expert_out[] ([T, K, dim] f32) and route_weights[] ([T, K] f32).
// `precise`: no fused multiply-add, so every driver rounds exactly like the CPU check.
float combine_experts(uint token, uint top_k, uint dim, uint d) {
  precise float routed = 0.0;
  for (uint k = 0u; k < top_k; ++k) {
    const uint entry = token * top_k + k;
    routed += route_weights[entry] * expert_out[entry * dim + d];
  }
  return routed;
}

#endif  // MEGREZ_COMBINE_EXPERTS_GLSL
