// argmax vs the C++ reference, exact: the full Megrez2 vocabulary, small and odd counts, ties
// (lower index wins, also across workgroups), NaN (counts as -infinity), all -infinity,
// and the maximum at the first and last index. Both reduction flavours.
#include <doctest/doctest.h>

#include <cstring>
#include <limits>

#include "common/gpu_fixture.h"
#include "kernels/linear_test_util.h"

using namespace megrez;

namespace {

struct ArgmaxResult {
  uint32_t index;
  float value;
};

ArgmaxResult gpu_argmax(Context& ctx, const std::vector<float>& logits, Reduce reduce) {
  const auto count = static_cast<uint32_t>(logits.size());
  Arena arena(ctx, "argmax-test", MemoryUse::Device, 4 << 20);
  const BufferRange lb = test::upload_vector(ctx, arena, logits);
  const BufferRange partials = arena.allocate(argmax_partials_bytes(ctx.caps(), count));
  const BufferRange result = test::upload_vector(ctx, arena, std::vector<uint32_t>{7, 7});
  CommandBuffer cmd(ctx);
  cmd.begin();
  record_argmax(cmd, lb, partials, result, count, reduce);
  cmd.submit_and_wait();
  const std::vector<uint32_t> r = test::download_vector<uint32_t>(ctx, result);
  ArgmaxResult out{r[0], 0.0f};
  std::memcpy(&out.value, &r[1], 4);
  return out;
}

void check_argmax(Context& ctx, const std::vector<float>& logits) {
  const uint32_t expected = test::ref_argmax(logits);
  for (Reduce reduce : test::reduce_flavours(ctx)) {
    CAPTURE(test::flavour_name(reduce));
    const ArgmaxResult got = gpu_argmax(ctx, logits, reduce);
    CHECK(got.index == expected);
    const float v = logits[expected];
    if (!std::isnan(v)) CHECK(got.value == v);
  }
}

constexpr float kInf = std::numeric_limits<float>::infinity();

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "argmax over the Megrez2 vocabulary is exact") {
  const uint32_t vocab = 128880;
  std::vector<float> logits = test::random_vector(vocab, 1, -20.0f, 20.0f);
  check_argmax(ctx, logits);
  logits[vocab - 1] = 100.0f;  // maximum at the last index
  check_argmax(ctx, logits);
  logits[0] = 100.0f;  // tie between the first and the last index: first wins
  check_argmax(ctx, logits);
  logits[0] = std::numeric_limits<float>::quiet_NaN();  // NaN never wins
  logits[77777] = 100.0f;                               // tie in another workgroup's share
  check_argmax(ctx, logits);
}

TEST_CASE_FIXTURE(test::GpuTest, "argmax ties go to the lower index across workgroup shares") {
  // Equal maxima at indices far apart and close together (different workgroups of stage 0,
  // different invocations of one workgroup).
  std::vector<float> logits(40000, 1.0f);
  for (uint32_t i : {39999u, 20000u, 257u, 256u, 9u}) logits[i] = 5.0f;
  check_argmax(ctx, logits);  // 9
  check_argmax(ctx, std::vector<float>(40000, 3.0f));  // all equal: 0
}

TEST_CASE_FIXTURE(test::GpuTest, "argmax on small and odd counts, infinities and NaN") {
  check_argmax(ctx, {2.5f});
  check_argmax(ctx, {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.0f, 2.9f});
  check_argmax(ctx, std::vector<float>(1001, -kInf));  // all -inf: index 0
  check_argmax(ctx, std::vector<float>(33, std::numeric_limits<float>::quiet_NaN()));  // all NaN: index 0
  std::vector<float> with_inf = test::random_vector(4097, 3);
  with_inf[4000] = kInf;
  with_inf[100] = std::numeric_limits<float>::quiet_NaN();
  check_argmax(ctx, with_inf);
  for (uint32_t n : {2u, 255u, 256u, 257u, 2049u}) {
    CAPTURE(n);
    check_argmax(ctx, test::random_vector(n, n));
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "argmax launcher checks its ranges") {
  Arena arena(ctx, "argmax-test", MemoryUse::Device, 1 << 20);
  const BufferRange logits = arena.allocate(1000 * 4), result = arena.allocate(8);
  const BufferRange partials = arena.allocate(argmax_partials_bytes(ctx.caps(), 1000));
  CommandBuffer cmd(ctx);
  cmd.begin();
  CHECK_THROWS_WITH_AS(record_argmax(cmd, logits, partials, result, 1001), doctest::Contains("logits binding"), Error);
  CHECK_THROWS_AS(record_argmax(cmd, logits, partials, result, 0), Error);
  CHECK_THROWS_WITH_AS(record_argmax(cmd, logits, partials, result.slice(0, 4), 1000),
                       doctest::Contains("result binding"), Error);
  cmd.submit_and_wait();  // nothing was recorded
}
