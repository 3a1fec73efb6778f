#pragma once
// Small helpers shared by the dense-kernel tests (test_matvec, test_matmul, test_norm_add,
// test_embed, test_argmax).
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "kernels/reference_ops.h"
#include "runtime/ops/linear.h"
#include "runtime/vk/context.h"

namespace megrez::test {

inline constexpr DType kAllFormats[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0};

// The reduction flavours this device runs: shared memory always, subgroups where the caps allow.
inline std::vector<Reduce> reduce_flavours(const Context& ctx) {
  if (ctx.caps().use_subgroup_reduce()) return {Reduce::Subgroup, Reduce::SharedMemory};
  return {Reduce::SharedMemory};
}

// The same plus the per-invocation flavour when the operands fit it (rows_per_invocation_fit):
// every device runs it, CPU devices pick it by default.
inline std::vector<Reduce> matvec_flavours(const Context& ctx, bool rows_fit) {
  std::vector<Reduce> flavours = reduce_flavours(ctx);
  if (rows_fit) flavours.push_back(Reduce::PerInvocation);
  return flavours;
}

// The prefill kernels to compare: the tiled one always, the per-invocation one where it fits.
inline std::vector<MatmulKernel> matmul_kernels(bool rows_fit) {
  if (rows_fit) return {MatmulKernel::Tiled, MatmulKernel::Rows};
  return {MatmulKernel::Tiled};
}

inline const char* flavour_name(Reduce r) {
  return r == Reduce::Subgroup            ? "subgroup"
         : r == Reduce::SharedMemory      ? "shmem"
         : r == Reduce::PerInvocation     ? "rows"
                                          : "auto";
}

// Compares GPU dot products with the fp64 reference: |got - (base + ref)| must be within
// rel * sqrt(cols) * sum|w x| (fp32 accumulation error) plus half an ulp of a nonzero base
// (accumulate mode). Returns "" or a description of the first mismatch and the count.
inline std::string compare_dots(const std::vector<float>& got, const std::vector<RefDot>& ref, size_t got_offset,
                                uint32_t cols, double rel, const std::vector<float>* base = nullptr) {
  size_t bad = 0;
  std::string first;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double b = base ? double((*base)[got_offset + i]) : 0.0;
    const double expected = b + ref[i].value;
    const double tolerance = rel * std::sqrt(double(cols)) * ref[i].magnitude + 6e-8 * std::fabs(b) + 1e-30;
    const double g = got[got_offset + i];
    if (!(std::fabs(g - expected) <= tolerance)) {
      if (bad++ == 0) {
        char text[200];
        std::snprintf(text, sizeof text, "element %zu: got %.9g, expected %.9g (tolerance %.3g)", i, g, expected,
                      tolerance);
        first = text;
      }
    }
  }
  return bad ? first + " and " + std::to_string(bad - 1) + " more" : "";
}

}  // namespace megrez::test
