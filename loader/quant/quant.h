#pragma once
// Scalar conversions and ggml block (de)quantisation. Plain C++: the CPU reference, the
// converter and the kernel tests all use these, so the GPU kernels are checked against
// an independent decoding of the same bytes.
#include <cstdint>
#include <span>
#include <vector>

#include "loader/tensor.h"

namespace megrez {

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);    // round to nearest even, overflow to inf
float bf16_to_f32(uint16_t b);
uint16_t f32_to_bf16(float f);   // round to nearest even, NaN stays NaN

// Decode one row of `n` elements stored as `t` into `out` (size n).
void dequantize_row(DType t, const uint8_t* src, float* out, int64_t n);
// Encode `n` floats as `t`, appending row_bytes(t, n) bytes to `dst`.
// Q8_0/Q4_0 follow ggml's reference quantisers exactly (so files match llama.cpp's).
void quantize_row(DType t, const float* src, int64_t n, std::vector<uint8_t>& dst);

// Whole-tensor helpers.
std::vector<float> dequantize(const TensorView& t);
std::vector<uint8_t> quantize(DType t, std::span<const float> values, int64_t cols);

}  // namespace megrez
