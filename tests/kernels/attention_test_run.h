#pragma once
// Runs the decode and prefill kernels on random data and compares with the fp64 reference.
// Shared by the decode, prefill and timing tests.
#include <optional>

#include "attention_test_util.h"
#include "common/gpu_fixture.h"

namespace megrez::test {

struct AttentionCase {
  AttentionShape shape;
  KvType type = KvType::F32;
  uint32_t tokens = 1;  // queries (decode: 1)
  uint32_t pos0 = 0;    // position of query 0 (decode: n_ctx - 1)
  uint32_t seed = 1;
};

// Max abs error of the GPU output vs attention_reference; CHECKs that output elements
// outside the written heads keep their sentinel. Cache rows past pos0 + tokens hold NaN, so
// reading them would show up as an infinite error. The plan is the automatic one unless given.
double run_decode_case(Context& ctx, const AttentionCase& c, std::optional<DecodePlan> plan = std::nullopt);
double run_prefill_case(Context& ctx, const AttentionCase& c, std::optional<PrefillPlan> plan = std::nullopt);

}  // namespace megrez::test
