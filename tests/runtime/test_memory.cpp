// Arenas, sub-allocation, memory-type choice, split buffers, upload/download round trips.
#include <cstring>
#include <numeric>
#include <random>

#include "apps/tools/self_test.h"
#include "runtime_test_util.h"
#include "shaders/abi/copy.h"

using namespace megrez;

TEST_CASE_FIXTURE(test::GpuTest, "arena bump-allocates aligned ranges inside few blocks") {
  const VkDeviceSize align = ctx.caps().storage_offset_alignment;
  Arena arena(ctx, "weights", MemoryUse::Device, 1 << 20);
  CHECK(arena.block_count() == 0);  // no memory until the first allocation
  BufferRange a = arena.allocate(100);
  BufferRange b = arena.allocate(100);
  BufferRange c = arena.allocate(100, 1024);
  CHECK(a.buffer == b.buffer);
  CHECK(a.offset == 0);
  CHECK(b.offset == (100 + align - 1) / align * align);
  CHECK(c.offset == 1024);  // explicit alignment above the device's
  CHECK(arena.block_count() == 1);
  CHECK(arena.used() == 1024 + 100);
  CHECK(arena.reserved() == (1 << 20));

  // Too large for the current block's tail: a second block, earlier tail still usable.
  BufferRange big = arena.allocate(1 << 20);
  CHECK(arena.block_count() == 2);
  CHECK(big.buffer != a.buffer);
  CHECK(big.offset == 0);
  BufferRange small = arena.allocate(16);
  CHECK(small.buffer == a.buffer);

  // Larger than the block size: a dedicated block of that size.
  BufferRange huge = arena.allocate(3 << 20);
  CHECK(arena.block_count() == 3);
  CHECK(huge.size == (3u << 20));
  CHECK(arena.reserved() == (5u << 20));

  arena.reset();
  CHECK(arena.used() == 0);
  CHECK(arena.allocate(100).offset == 0);
  CHECK(arena.block_count() == 3);  // reset keeps the memory
}

TEST_CASE_FIXTURE(test::GpuTest, "arena errors name the arena and the sizes") {
  Arena arena(ctx, "experts", MemoryUse::Device, 1 << 20, 2 << 20);
  CHECK_THROWS_WITH_AS(arena.allocate(0), doctest::Contains("zero-byte"), Error);
  CHECK_THROWS_WITH_AS(arena.allocate(16, 48), doctest::Contains("not a power of two"), Error);
  arena.allocate(1 << 20);
  arena.allocate(1 << 20);
  CHECK_THROWS_WITH_AS(arena.allocate(1), doctest::Contains("arena 'experts': budget of 2.00 MiB exceeded"), Error);
  const uint64_t too_big = ctx.caps().max_allocation_size + 1;
  CHECK_THROWS_WITH_AS(arena.allocate(too_big), doctest::Contains("maxMemoryAllocationSize"), Error);
}

TEST_CASE_FIXTURE(test::GpuTest, "buffer slices are bounds-checked") {
  Arena arena(ctx, "scratch", MemoryUse::Device, 1 << 16);
  BufferRange r = arena.allocate(1000);
  BufferRange s = r.slice(200, 300);
  CHECK(s.offset == r.offset + 200);
  CHECK(s.size == 300);
  CHECK((s.mapped == nullptr) == (r.mapped == nullptr));
  if (r.mapped) CHECK(s.mapped == r.mapped + 200);
  CHECK_THROWS_AS(r.slice(900, 101), Error);
  CHECK_THROWS_AS(r.slice(1001, 0), Error);
}

TEST_CASE("memory types: UMA maps device data, discrete keeps VRAM and system RAM apart") {
  VkPhysicalDeviceMemoryProperties discrete{};
  const VkMemoryPropertyFlags local = VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT;
  const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  const VkMemoryPropertyFlags cached = VK_MEMORY_PROPERTY_HOST_CACHED_BIT;
  // Typical desktop: 0 VRAM, 1 system RAM coherent, 2 system RAM cached, 3 BAR window.
  discrete.memoryTypeCount = 4;
  discrete.memoryTypes[0] = {local, 0};
  discrete.memoryTypes[1] = {host, 1};
  discrete.memoryTypes[2] = {host | cached, 1};
  discrete.memoryTypes[3] = {local | host, 2};
  CHECK(choose_memory_type(discrete, 0xf, MemoryUse::Device, false) == 0);
  CHECK(choose_memory_type(discrete, 0xf, MemoryUse::Staging, false) == 1);
  CHECK(choose_memory_type(discrete, 0xf, MemoryUse::Readback, false) == 2);
  CHECK(choose_memory_type(discrete, 0xe, MemoryUse::Device, false) == 3);  // VRAM not allowed: any device-local
  CHECK_THROWS_AS(choose_memory_type(discrete, 0x1, MemoryUse::Staging, false), Error);

  VkPhysicalDeviceMemoryProperties uma{};
  uma.memoryTypeCount = 2;
  uma.memoryTypes[0] = {local, 0};
  uma.memoryTypes[1] = {local | host | cached, 0};
  CHECK(choose_memory_type(uma, 0x3, MemoryUse::Device, true) == 1);
  CHECK(choose_memory_type(uma, 0x3, MemoryUse::Staging, true) == 1);
}

TEST_CASE_FIXTURE(test::GpuTest, "upload/download round trip, odd sizes and offsets") {
  Arena arena(ctx, "io", MemoryUse::Device, 1 << 20);
  std::mt19937 rng(7);
  for (size_t bytes : {size_t{1}, size_t{3}, size_t{4099}, size_t{200000}}) {
    CAPTURE(bytes);
    std::vector<std::byte> data(bytes), back(bytes);
    for (auto& b : data) b = std::byte(rng());
    BufferRange r = arena.allocate(bytes + 64).slice(0, bytes);
    ctx.blocking_transfers().upload(r, data);
    ctx.blocking_transfers().download(r, back);
    CHECK(std::memcmp(data.data(), back.data(), bytes) == 0);
  }
  std::vector<std::byte> too_many(65);
  CHECK_THROWS_AS(ctx.blocking_transfers().upload(arena.allocate(64), too_many), Error);
}

// The staging path (discrete GPUs) on a unified-memory device: a profile turning unified
// memory off leaves device arenas unmapped, so transfers go through staging buffers.
TEST_CASE("staged upload/download round trip, larger than the staging buffer") {
  auto ctx = test::context_with_profile(R"({"name": "staged", "unified_memory": false})");
  CHECK_FALSE(ctx->caps().unified_memory);
  {
    Arena arena(*ctx, "io", MemoryUse::Device, 64 << 20);
    CHECK_FALSE(arena.host_visible());
    const size_t words = (20u << 20) / 4 + 3;  // 20 MiB + 12 bytes: two 16 MiB staging chunks
    std::vector<uint32_t> data(words), back(words, 0);
    std::iota(data.begin(), data.end(), 0x1234u);
    BufferRange r = arena.allocate(words * 4);
    CHECK_FALSE(r.host_visible());
    upload(*ctx, r, std::span<const uint32_t>(data));
    download(*ctx, r, std::span<uint32_t>(back));
    CHECK(back == data);
    // Kernels see staged data and their results come back: the copy self-test end to end.
    for (const SelfTest& t : self_test_table()) {
      SelfTestResult result = t.run(*ctx);
      CHECK_MESSAGE(result.ok, t.name << ": " << result.detail);
    }
  }
  test::check_no_validation_messages(*ctx, 0);
}

TEST_CASE("split buffers keep every part within the (emulated) storage range") {
  // 4 KiB bindings: a 10000-byte tensor of 12-byte rows splits into 4092-byte parts.
  auto ctx = test::context_with_profile(R"({"name": "tiny-range", "max_storage_range": 4096})");
  REQUIRE(ctx->caps().max_storage_range == 4096);
  {
    Arena arena(*ctx, "weights", MemoryUse::Device, 1 << 20);
    const VkDeviceSize row = 12, rows = 1000;
    SplitBuffer split = arena.allocate_split(rows * row, row);
    CHECK(split.size == rows * row);
    CHECK(split.part_bytes == 4092);
    REQUIRE(split.parts.size() == 3);
    CHECK(split.parts[2].size == 12000 - 2 * 4092);
    for (const BufferRange& p : split.parts) {
      CHECK(p.size <= 4096);
      CHECK(p.offset % ctx->caps().storage_offset_alignment == 0);
    }
    CHECK(split.locate(4092).part == 1);
    CHECK(split.locate(4092).offset == 0);
    CHECK(split.locate(11999).part == 2);
    CHECK_THROWS_AS(split.locate(12000), Error);
    CHECK_THROWS_WITH_AS(arena.allocate_split(8192, 8192), doctest::Contains("exceeds maxStorageBufferRange"), Error);
    CHECK_THROWS_AS(arena.allocate_split(100, 12), Error);  // not whole rows

    // Round trip through the parts, then a copy kernel over each part (each binding fits).
    std::vector<uint32_t> data(rows * row / 4);
    std::iota(data.begin(), data.end(), 1u);
    ctx->blocking_transfers().upload(split, std::as_bytes(std::span<const uint32_t>(data)));
    SplitBuffer dst = arena.allocate_split(rows * row, row);
    CommandBuffer cmd(*ctx);
    cmd.begin();
    const Pipeline& copy = ctx->pipeline("copy");
    for (size_t i = 0; i < split.parts.size(); ++i) {
      const auto words = static_cast<uint32_t>(split.parts[i].size / 4);
      dispatch(cmd, copy, {split.parts[i], dst.parts[i]}, abi::CopyPush{words}, {group_count(words, 64)});
    }
    cmd.submit_and_wait();
    std::vector<uint32_t> back(data.size());
    ctx->blocking_transfers().download(dst, std::as_writable_bytes(std::span<uint32_t>(back)));
    CHECK(back == data);

    // A binding over the emulated range is refused by the dispatch chokepoint.
    BufferRange whole = arena.allocate(8192);
    cmd.begin();
    CHECK_THROWS_WITH_AS(dispatch(cmd, copy, {whole, whole}, abi::CopyPush{2048}, {1}),
                         doctest::Contains("exceeds maxStorageBufferRange"), Error);
    cmd.submit_and_wait();
  }
  test::check_no_validation_messages(*ctx, 0);
}
