// The dispatch chokepoint refuses bad calls with megrez::Error before recording anything,
// so the validation layer never sees them.
#include "runtime_test_util.h"
#include "shaders/abi/copy.h"
#include "shaders/abi/reduce_sum.h"

using namespace megrez;

TEST_CASE_FIXTURE(test::GpuTest, "dispatch rejects calls that do not match the pipeline or the device") {
  const DeviceCaps& caps = ctx.caps();
  Arena arena(ctx, "t", MemoryUse::Device, 1 << 20);
  BufferRange a = arena.allocate(1024), b = arena.allocate(1024);
  const Pipeline& copy = ctx.pipeline("copy");
  CommandBuffer cmd(ctx);
  CHECK_THROWS_WITH_AS(dispatch(cmd, copy, {a, b}, abi::CopyPush{1}, {1}), doctest::Contains("not recording"), Error);
  cmd.begin();
  CHECK_THROWS_WITH_AS(dispatch(cmd, copy, {a}, abi::CopyPush{1}, {1}),
                       doctest::Contains("dispatch copy: expected 2 buffer bindings, got 1"), Error);
  CHECK_THROWS_WITH_AS(dispatch(cmd, copy, {a, b, a}, abi::CopyPush{1}, {1}),
                       doctest::Contains("expected 2 buffer bindings, got 3"), Error);
  CHECK_THROWS_WITH_AS(dispatch(cmd, copy, {a, b}, abi::ReduceSumPush{1, 1}, {1}),
                       doctest::Contains("push constants are 8 bytes, the shader's block is 4"), Error);
  CHECK_THROWS_WITH_AS(dispatch(cmd, copy, {a, b}, abi::CopyPush{1}, {caps.max_workgroup_count[0] + 1}),
                       doctest::Contains("group count[0]"), Error);
  CHECK_THROWS_WITH_AS(dispatch(cmd, copy, {a, b}, abi::CopyPush{1}, {1, 1, caps.max_workgroup_count[2] + 1}),
                       doctest::Contains("group count[2]"), Error);
  CHECK_THROWS_WITH_AS(dispatch(cmd, copy, {a, BufferRange{}}, abi::CopyPush{1}, {1}),
                       doctest::Contains("binding 1: empty buffer range"), Error);
  if (caps.storage_offset_alignment > 4) {
    CHECK_THROWS_WITH_AS(dispatch(cmd, copy, {a.slice(4, 64), b}, abi::CopyPush{1}, {1}),
                         doctest::Contains("binding 0: offset"), Error);
  }
  BufferRange too_big{a.buffer, 0, caps.max_storage_range + 4, nullptr};
  CHECK_THROWS_WITH_AS(dispatch(cmd, copy, {too_big, b}, abi::CopyPush{1}, {1}),
                       doctest::Contains("exceeds maxStorageBufferRange"), Error);
  // A correct call still records after all the refused ones.
  dispatch(cmd, copy, {a, b}, abi::CopyPush{256}, {4});
  cmd.submit_and_wait();
  CHECK(group_count(0, 64) == 0);
  CHECK(group_count(65, 64) == 2);
  CHECK(group_count(uint64_t{64} * UINT32_MAX, 64) == UINT32_MAX);
  CHECK_THROWS_AS(group_count(uint64_t{64} * UINT32_MAX + 1, 64), Error);
  CHECK_THROWS_AS(group_count(5, 0), Error);
}

TEST_CASE_FIXTURE(test::GpuTest, "dependent dispatches with barriers in one command buffer") {
  Arena arena(ctx, "t", MemoryUse::Device, 1 << 20);
  std::vector<uint32_t> data(1000);
  for (uint32_t i = 0; i < data.size(); ++i) data[i] = i * 2654435761u;
  BufferRange a = test::upload_vector(ctx, arena, data);
  BufferRange b = arena.allocate(4000), c = arena.allocate(4000), d = arena.allocate(4000);
  const Pipeline& copy = ctx.pipeline("copy");
  CommandBuffer cmd(ctx);
  cmd.begin();
  dispatch(cmd, copy, {a, b}, abi::CopyPush{1000}, {16});
  barrier_compute_to_compute(cmd);
  dispatch(cmd, copy, {b, c}, abi::CopyPush{1000}, {16});
  barrier_compute_to_transfer(cmd);
  copy_buffer(cmd, c, d);
  barrier_transfer_to_compute(cmd);
  dispatch(cmd, copy, {d, a}, abi::CopyPush{1000}, {16});
  cmd.submit_and_wait();
  CHECK(test::download_vector<uint32_t>(ctx, a) == data);
  CHECK(test::download_vector<uint32_t>(ctx, d) == data);
  CHECK_THROWS_AS(copy_buffer(cmd, arena.allocate(8), arena.allocate(4)), Error);
}
