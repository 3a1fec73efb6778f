#ifndef MEGREZ_ABI_ROUTER_H
#define MEGREZ_ABI_ROUTER_H
// Push constants of shaders/router.comp (variants router_<fmt>[_shmem]): the Megrez2 router
// ("noaux_tc" with sigmoid scores, group-limited top-k), one workgroup per token.
//
// Bindings: 0 pre_gate [tokens, dim] f32 (the previous layer's post-attention-norm output)
//           1 router weight [n_experts, dim] in the variant's format (uint words)
//           2 correction bias [n_experts] f32
//           3 ids      [tokens, top_k] uint (out; best biased score first)
//           4 weights  [tokens, top_k] f32  (out; weights[k] belongs to ids[k])
//           5 scores   [tokens, n_experts] f32 (out; the unbiased sigmoid scores)
// Limits: n_experts <= 256 (ROUTER_MAX_EXPERTS), top_k <= 16, n_group divides n_experts,
// 1 <= topk_group <= n_group, top_k <= topk_group * n_experts / n_group; dim % 32 == 0 for
// q8_0 / q4_0. The host checks these (the shader clamps only to stay in bounds).
#include "prelude.h"

#define ROUTER_MAX_EXPERTS 256
#define ROUTER_MAX_TOP_K 16

MEGREZ_ABI_BEGIN
struct RouterPush {
  uint tokens;          // rows of pre_gate (= workgroups dispatched)
  uint dim;             // D, hidden size
  uint n_experts;       // E
  uint top_k;           // num_experts_per_tok
  uint n_group;         // 1: plain top-k
  uint topk_group;      // groups kept when n_group > 1
  uint norm_topk_prob;  // 1: weights renormalised to sum 1 before scaling
  float routed_scaling_factor;
};
MEGREZ_ABI_END

MEGREZ_ABI_CHECK_SIZE(megrez::abi::RouterPush, 32)
MEGREZ_ABI_CHECK_OFFSET(megrez::abi::RouterPush, routed_scaling_factor, 28)

#endif
