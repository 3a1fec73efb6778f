// Queues, timeline semaphores between the compute and transfer queues, GPU timestamps.
#include <numeric>

#include "apps/tools/bandwidth.h"
#include "runtime/vk/profiler.h"
#include "runtime_test_util.h"
#include "shaders/abi/copy.h"

using namespace megrez;

TEST_CASE_FIXTURE(test::GpuTest, "queue plan follows the device's queue families") {
  const QueueInfo& compute = ctx.queue(QueueRole::Compute);
  const QueueInfo& transfer = ctx.queue(QueueRole::Transfer);
  REQUIRE(compute.queue != VK_NULL_HANDLE);
  REQUIRE(transfer.queue != VK_NULL_HANDLE);
  CHECK((ctx.info().queue_families[compute.family].queueFlags & VK_QUEUE_COMPUTE_BIT) != 0);
  switch (ctx.transfer_kind()) {
    case TransferQueueKind::SharedWithCompute:
      CHECK(transfer.queue == compute.queue);
      CHECK_FALSE(ctx.has_separate_transfer_queue());
      break;
    case TransferQueueKind::SecondComputeQueue:
      CHECK(transfer.family == compute.family);
      CHECK(transfer.index == 1);
      break;
    default:
      CHECK(transfer.family != compute.family);
      CHECK(ctx.queue_families().size() == 2);
  }
  // lavapipe: one family, one queue.
  if (ctx.info().props12.driverID == VK_DRIVER_ID_MESA_LLVMPIPE) {
    CHECK(ctx.transfer_kind() == TransferQueueKind::SharedWithCompute);
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "timeline semaphore orders a transfer-queue copy before a compute dispatch") {
  Arena arena(ctx, "t", MemoryUse::Device, 1 << 20);
  std::vector<uint32_t> data(5000);
  std::iota(data.begin(), data.end(), 17u);
  BufferRange a = test::upload_vector(ctx, arena, data);
  BufferRange b = arena.allocate(data.size() * 4);
  BufferRange c = test::upload_vector(ctx, arena, std::vector<uint32_t>(data.size(), 0));
  TimelineSemaphore timeline(ctx, 10);
  CHECK(timeline.value() == 10);

  // Transfer queue: a -> b, signals 11. Compute queue waits for 11: b -> c, signals 12.
  CommandBuffer transfer(ctx, QueueRole::Transfer);
  transfer.begin();
  copy_buffer(transfer, a, b);
  transfer.submit({}, {SemaphoreSignal{&timeline, 11}});
  CommandBuffer compute(ctx, QueueRole::Compute);
  compute.begin();
  dispatch(compute, ctx.pipeline("copy"), {b, c}, abi::CopyPush{5000}, {group_count(5000, 64)});
  compute.submit({SemaphoreWait{&timeline, 11, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT}},
                 {SemaphoreSignal{&timeline, 12}});
  timeline.wait(12);
  CHECK(timeline.value() == 12);
  transfer.wait();
  compute.wait();
  CHECK(test::download_vector<uint32_t>(ctx, c) == data);
}

TEST_CASE_FIXTURE(test::GpuTest, "GPU work waits for a host signal (wait-before-signal)") {
  Arena arena(ctx, "t", MemoryUse::Device, 1 << 16);
  std::vector<uint32_t> data = {9, 8, 7, 6};
  BufferRange a = test::upload_vector(ctx, arena, data);
  BufferRange b = test::upload_vector(ctx, arena, std::vector<uint32_t>(4, 0));
  TimelineSemaphore gate(ctx);
  CommandBuffer cmd(ctx);
  cmd.begin();
  dispatch(cmd, ctx.pipeline("copy"), {a, b}, abi::CopyPush{4}, {1});
  cmd.submit({SemaphoreWait{&gate, 1, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT}}, {SemaphoreSignal{&gate, 2}});
  CHECK(gate.value() == 0);  // nothing ran: the host has not signalled
  gate.signal(1);
  gate.wait(2);
  cmd.wait();
  CHECK(test::download_vector<uint32_t>(ctx, b) == data);
}

TEST_CASE("a wait that nothing signals times out with an error instead of hanging") {
  ContextOptions options = test::validated_options();
  options.pipeline_cache = "off";
  options.gpu_timeout = std::chrono::milliseconds(50);
  Context ctx(options);
  {
    TimelineSemaphore never(ctx);
    CHECK_THROWS_WITH_AS(never.wait(1), doctest::Contains("did not complete within 50 ms"), Error);
  }
  test::check_no_validation_messages(ctx, 0);
}

TEST_CASE_FIXTURE(test::GpuTest, "timestamps are monotone and scopes measure their work") {
  REQUIRE(ctx.caps().timestamps);
  Arena arena(ctx, "t", MemoryUse::Device, 8 << 20);
  const uint32_t words = 1 << 20;
  BufferRange a = arena.allocate(words * 4), b = arena.allocate(words * 4);
  GpuProfiler profiler(ctx, 8);
  CommandBuffer cmd(ctx);
  cmd.begin();
  profiler.reset(cmd);
  const uint32_t all = profiler.begin(cmd, "all");
  for (int i = 0; i < 3; ++i) {
    const uint32_t scope = profiler.begin(cmd, "copy " + std::to_string(i));
    dispatch(cmd, ctx.pipeline("copy"), {a, b}, abi::CopyPush{words}, {group_count(words, 64)});
    barrier_compute_to_compute(cmd);
    profiler.end(cmd, scope);
  }
  profiler.end(cmd, all);
  cmd.submit_and_wait();
  const auto scopes = profiler.results();
  REQUIRE(scopes.size() == 4);
  CHECK(scopes[0].name == "all");
  uint64_t previous_end = scopes[0].begin_ticks;
  double sum_ms = 0;
  for (size_t i = 1; i < scopes.size(); ++i) {
    CAPTURE(i);
    CHECK(scopes[i].begin_ticks >= previous_end);  // each scope starts after the previous ended
    CHECK(scopes[i].end_ticks > scopes[i].begin_ticks);  // copying 4 MiB takes time
    CHECK(scopes[i].ms > 0.0);
    previous_end = scopes[i].end_ticks;
    sum_ms += scopes[i].ms;
  }
  CHECK(scopes[0].end_ticks >= previous_end);
  CHECK(scopes[0].ms >= sum_ms * 0.999);
  CHECK_THROWS_WITH_AS(profiler.begin(cmd, "late"), doctest::Contains("not recording"), Error);
  cmd.begin();
  CHECK_THROWS_WITH_AS(profiler.end(cmd, 0), doctest::Contains("scope 0 is not open"), Error);  // already ended
  profiler.reset(cmd);
  for (int i = 0; i < 8; ++i) profiler.begin(cmd, "x");
  CHECK_THROWS_WITH_AS(profiler.begin(cmd, "too many"), doctest::Contains("more than 8 scopes"), Error);
  cmd.submit_and_wait();
  CHECK_THROWS_WITH_AS(profiler.results(), doctest::Contains("scope 'x' was never ended"), Error);
}

TEST_CASE_FIXTURE(test::GpuTest, "copy bandwidth baseline is measured from timestamps") {
  const BandwidthResult bw = measure_copy_bandwidth(ctx, 4 << 20, 3);
  CHECK(bw.bytes == (4u << 20));
  CHECK(bw.ms > 0.0);
  CHECK(bw.gb_per_s == doctest::Approx(2.0 * (4 << 20) / (bw.ms * 1e6)));
  CHECK(measure_copy_bandwidth(ctx, 100, 1).bytes == 96);  // whole 16-byte vectors
  CHECK_THROWS_AS(measure_copy_bandwidth(ctx, 8, 1), Error);
}
