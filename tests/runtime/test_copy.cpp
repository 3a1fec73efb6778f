// The copy kernel end to end: upload random words, dispatch, download, compare bit-exact.
#include <numeric>
#include <random>

#include "apps/tools/self_test.h"
#include "common/gpu_fixture.h"
#include "shaders/abi/copy.h"

using namespace megrez;

TEST_CASE_FIXTURE(test::GpuTest, "copy kernel copies bit-exact, any size, any group count") {
  Arena arena(ctx, "copy-test", MemoryUse::Device, 4 << 20);
  for (uint32_t words : {1u, 63u, 64u, 65u, 4097u, 100000u}) {
    CAPTURE(words);
    std::mt19937 rng(words);
    std::vector<uint32_t> input(words);
    for (auto& w : input) w = rng();
    arena.reset();
    BufferRange src = test::upload_vector(ctx, arena, input);
    BufferRange dst = test::upload_vector(ctx, arena, std::vector<uint32_t>(words, 0xdeadbeefu));
    const Pipeline& copy = ctx.pipeline("copy", {{64, 1, 1}, {}});
    CommandBuffer cmd(ctx);
    cmd.begin();
    dispatch(cmd, copy, {src, dst}, abi::CopyPush{words}, {std::min(group_count(words, 64), 7u)});
    cmd.submit_and_wait();
    CHECK(test::download_vector<uint32_t>(ctx, dst) == input);
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "copy_vec4 leaves bytes past its count untouched") {
  Arena arena(ctx, "copy-test", MemoryUse::Device, 1 << 20);
  std::vector<uint32_t> input(4 * 1000);
  std::iota(input.begin(), input.end(), 1u);
  BufferRange src = test::upload_vector(ctx, arena, input);
  BufferRange dst = test::upload_vector(ctx, arena, std::vector<uint32_t>(input.size(), 0));
  CommandBuffer cmd(ctx);
  cmd.begin();
  dispatch(cmd, ctx.pipeline("copy_vec4", {{32, 1, 1}, {}}), {src, dst}, abi::CopyPush{999}, {4});
  cmd.submit_and_wait();
  std::vector<uint32_t> expected = input;
  std::fill(expected.begin() + 4 * 999, expected.end(), 0u);
  CHECK(test::download_vector<uint32_t>(ctx, dst) == expected);
}

TEST_CASE_FIXTURE(test::GpuTest, "every registered self-test passes on this device") {
  REQUIRE(!self_test_table().empty());
  for (const SelfTest& t : self_test_table()) {
    SelfTestResult r = t.run(ctx);
    CHECK_MESSAGE(r.ok, t.name << ": " << r.detail);
  }
}
