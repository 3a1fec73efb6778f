#pragma once
// A tensor as the loader hands it out: a typed, shaped view of bytes that live in a
// memory-mapped model file or in storage owned by the Model. No Vulkan here.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace megrez {

// Weight formats. Q8_0 and Q4_0 use ggml's block layouts: 32 weights per block along the
// row (the input dimension), an f16 scale first.
//   Q8_0 block (34 bytes): f16 d; int8 qs[32];            w = d * qs[j]
//   Q4_0 block (18 bytes): f16 d; uint8 qs[16];           w[j] = d * ((qs[j] & 15) - 8),
//                                                          w[j+16] = d * ((qs[j] >> 4) - 8)
enum class DType : uint8_t { F32, F16, BF16, Q8_0, Q4_0 };

constexpr int64_t kQuantBlock = 32;

const char* dtype_name(DType t);
bool dtype_from_name(const std::string& name, DType& out);  // "f32", "q4_0", ...
bool dtype_is_quantized(DType t);
// Bytes for a row of `n` elements (n must be a multiple of 32 for quantized types).
size_t row_bytes(DType t, int64_t n);

struct TensorView {
  std::string name;                 // name in the source file, for error messages
  DType dtype = DType::F32;
  std::vector<int64_t> shape;       // Hugging Face order: [out, in] for matrices, [n] for vectors
  std::span<const uint8_t> bytes;   // exactly row_bytes(dtype, shape.back()) * rows

  bool empty() const { return bytes.empty(); }
  int64_t rows() const;             // product of all but the last dim (1 for vectors)
  int64_t cols() const { return shape.empty() ? 0 : shape.back(); }
  int64_t numel() const { return rows() * cols(); }
  const uint8_t* row(int64_t r) const { return bytes.data() + r * row_bytes(dtype, cols()); }
};

}  // namespace megrez
