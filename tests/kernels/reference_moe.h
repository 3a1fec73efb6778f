#pragma once
// Plain C++ references and host-side helpers for the router / SwiGLU / MoE kernel tests.
// Weights are encoded with loader/quant/quant.h and decoded back with dequantize_row, so the GPU
// kernels are checked against an independent decoding of the very same bytes.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "loader/tensor.h"
#include "runtime/ops/moe.h"

namespace megrez::test {

// A [rows, cols] weight matrix: its bytes as the GPU reads them and the values those bytes
// decode to on the CPU (loader/quant/quant.h dequantize_row).
struct HostMatrix {
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // [rows * cols]

  TensorView view(const std::string& name) const;
  float at(int64_t r, int64_t c) const { return values[size_t(r * cols + c)]; }
};

// Random weights in [-scale, scale], quantised to `dtype` the ggml way.
HostMatrix random_matrix(DType dtype, int64_t rows, int64_t cols, float scale, std::mt19937& rng);

// Weights on a coarse grid that every format stores exactly and whose dot products with
// inputs from exact_inputs() are exact in fp32 in any summation order (see the .cpp).
HostMatrix exact_matrix(DType dtype, int64_t rows, int64_t cols, std::mt19937& rng);
std::vector<float> exact_inputs(size_t n, std::mt19937& rng);

std::vector<float> random_vector(size_t n, float scale, std::mt19937& rng);

// Bytes padded to whole 32-bit words (the shaders read weights as uint words).
std::vector<uint32_t> to_words(const std::vector<uint8_t>& bytes);

// The formats every weight kernel supports, and their variant-name suffixes.
std::vector<DType> all_weight_formats();
std::string format_suffix(DType dtype);  // "f32", "q4_0", ...

// ---- CPU references (fp64 accumulation) ----------------------------------------------------

float silu(float x);
// y[r] = sum_c m[r, c] * x[c]
std::vector<float> matvec(const HostMatrix& m, const float* x);
// h = silu(gate x) * (up x)
std::vector<float> swiglu_mlp_hidden(const HostMatrix& gate, const HostMatrix& up, const float* x);

// ---- Experts --------------------------------------------------------------------------------
struct HostExpert {
  HostMatrix gate, up, down;
};
HostExpert random_expert(DType gate_up, DType down, int64_t dim, int64_t inter, std::mt19937& rng);

// Bytes of `n_slots` slots (runtime/ops/moe.h layout) with expert e in slot slot_of[e]
// (other slots zero).
std::vector<uint8_t> pack_slots(const std::vector<HostExpert>& experts, const std::vector<uint32_t>& slot_of,
                                uint32_t n_slots, const ExpertSlotLayout& layout);

// y = shared + sum_k w[k] * down_e(silu(gate_e x) * up_e x), e = ids[k]; expert_of[e] holds
// expert e's weights (several ids may share one HostExpert).
std::vector<float> moe_token(const std::vector<const HostExpert*>& expert_of, const uint32_t* ids,
                             const float* weights, uint32_t top_k, const float* x, const float* shared);

// Normalised squared error sum (a-b)^2 / sum b^2 (0 when both are zero).
double nmse(const std::vector<float>& got, const std::vector<float>& expected);
// Largest |got - expected| / (|expected| + floor).
double max_rel_error(const std::vector<float>& got, const std::vector<float>& expected, double floor);

}  // namespace megrez::test
