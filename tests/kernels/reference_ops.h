#pragma once
// Plain C++ references for the dense kernels (matvec, matmul, rmsnorm, add, embed, argmax)
// and the random inputs the kernel tests feed them. Weights are decoded with loader/quant/quant.h's
// dequantize_row: the same bytes the GPU reads, decoded by independent code. Sums are
// taken in double so the reference is far more accurate than the fp32 kernels under test.
#include <cstdint>
#include <vector>

#include "loader/tensor.h"

namespace megrez::test {

// An encoded weight matrix [rows, cols] as the GPU binds it: row_bytes(dtype, cols) * rows
// bytes, zero-padded to a multiple of 4 (the kernels read whole words).
struct EncodedMatrix {
  DType dtype = DType::F32;
  uint32_t rows = 0, cols = 0;
  std::vector<uint8_t> bytes;
  size_t row_size() const { return row_bytes(dtype, cols); }
  // The padded bytes as 32-bit words, for upload.
  std::vector<uint32_t> words() const;
  // All weights decoded with dequantize_row, row-major.
  std::vector<float> decode() const;
};

// Random weights of every representable kind: float formats get values spread over several
// binades (plus a few f16 subnormals); quantized formats get random scales and every quant
// code, including q8_0's -128 that ggml's quantizer never writes.
EncodedMatrix random_matrix(DType dtype, uint32_t rows, uint32_t cols, uint32_t seed);
std::vector<float> random_vector(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

// Result of a dot-product reference: the value and sum |w_c x_c|, the scale of the fp32
// rounding error a correct kernel can make.
struct RefDot {
  double value = 0;
  double magnitude = 0;
};

// y[r] = sum_c W[r, c] x[c] for decoded W [rows, cols].
std::vector<RefDot> ref_matvec(const std::vector<float>& w, uint32_t rows, uint32_t cols, const std::vector<float>& x);
// Y[t, r] = sum_c W[r, c] X[t, c] for X [tokens, cols]; result [tokens, rows].
std::vector<RefDot> ref_matmul(const std::vector<float>& w, uint32_t rows, uint32_t cols, const std::vector<float>& x,
                               uint32_t tokens);
// y = x / sqrt(mean(x^2) + eps) * w over rows of dim.
std::vector<double> ref_rmsnorm(const std::vector<float>& x, const std::vector<float>& w, uint32_t rows, uint32_t dim,
                                double eps);
// Index of the largest value, ties to the lower index, NaN counted as -infinity.
uint32_t ref_argmax(const std::vector<float>& logits);

}  // namespace megrez::test
