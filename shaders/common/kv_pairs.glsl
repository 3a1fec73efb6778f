#ifndef MEGREZ_KV_PAIRS_GLSL
#define MEGREZ_KV_PAIRS_GLSL
// Read-only access to one layer's KV cache, two adjacent elements at a time.
// Layout: [rows][kv_heads * head_dim] elements; head_dim is even, so a pair never straddles
// heads or rows. KV_F16: halves packed two per 32-bit word, even element in the low half
// (packHalf2x16), read with unpackHalf2x16 so neither 16-bit storage nor fp16 arithmetic is
// needed. Otherwise f32, read as vec2.
// Define KV_K_BINDING and KV_V_BINDING before including. Pair index = element index / 2.

#ifdef KV_F16
layout(set = 0, binding = KV_K_BINDING) readonly buffer KCache { uint k_cache_words[]; };
layout(set = 0, binding = KV_V_BINDING) readonly buffer VCache { uint v_cache_words[]; };
vec2 load_k_pair(uint pair) { return unpackHalf2x16(k_cache_words[pair]); }
vec2 load_v_pair(uint pair) { return unpackHalf2x16(v_cache_words[pair]); }
#else
layout(set = 0, binding = KV_K_BINDING) readonly buffer KCache { vec2 k_cache_pairs[]; };
layout(set = 0, binding = KV_V_BINDING) readonly buffer VCache { vec2 v_cache_pairs[]; };
vec2 load_k_pair(uint pair) { return k_cache_pairs[pair]; }
vec2 load_v_pair(uint pair) { return v_cache_pairs[pair]; }
#endif

#endif
