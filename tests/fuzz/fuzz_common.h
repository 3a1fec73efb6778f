#pragma once
// Shared by the loader fuzz targets: touch every byte of a tensor view (through the same
// decoder the CPU reference uses) so AddressSanitizer sees any view that points outside
// its buffer.
#include <cstdint>
#include <vector>

#include "loader/quant/quant.h"
#include "loader/tensor.h"

namespace fuzz {

inline void touch(const megrez::TensorView& t) {
  if (t.shape.empty() || t.bytes.empty() || t.numel() > (int64_t(1) << 22)) return;
  const std::vector<float> values = megrez::dequantize(t);
  volatile float sink = 0;
  for (float v : values) sink = sink + v;
}

}  // namespace fuzz
