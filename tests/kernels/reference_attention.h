#pragma once
// Plain C++ references for the attention kernels, accumulating in double. Independent of the
// shaders' tricks: angles with std::cos/std::sin on a double angle, softmax with std::exp
// after subtracting the exact row max.
#include <cstdint>
#include <vector>

namespace megrez::test {

// Rotates one head in place (NeoX rotate_half): for i < Dh/2, a = pos * theta^(-2i/Dh),
// (x[i], x[i+Dh/2]) -> (x[i] cos a - x[i+Dh/2] sin a, x[i+Dh/2] cos a + x[i] sin a).
void rope_head_reference(double* head, uint32_t head_dim, uint64_t pos, double theta);

// RoPE over a [tokens][row_stride] float buffer: heads of head_dim from `offset`, token t at
// position pos0 + t. Returns the whole buffer as double; elements outside the heads unchanged.
std::vector<double> rope_reference(const std::vector<float>& x, uint32_t tokens, uint32_t heads, uint32_t head_dim,
                                   uint32_t offset, uint32_t row_stride, uint32_t pos0, double theta);

struct AttentionRefShape {
  uint32_t q_heads, kv_heads, head_dim;
};

// Causal GQA attention. q: [tokens][q_heads*head_dim]; keys, values: [rows][kv_heads*head_dim]
// (exactly what the cache holds, f16-rounded when the cache is f16). Query t sees rows
// 0 .. pos0+t; q head j reads kv head j / (q_heads / kv_heads). Returns [tokens][q_heads*head_dim].
std::vector<double> attention_reference(const std::vector<float>& q, const std::vector<float>& keys,
                                        const std::vector<float>& values, uint32_t tokens, uint32_t pos0,
                                        const AttentionRefShape& shape, double scale);

}  // namespace megrez::test
