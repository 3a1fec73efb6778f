#pragma once
// Shared GPU test context for every GPU suite. Validation and synchronization validation are
// always ON (the suite fails if VK_LAYER_KHRONOS_validation is missing: apt install
// vulkan-validationlayers); the device and profile come from MEGREZ_DEVICE / MEGREZ_PROFILE
// so ctest_matrix.cmake can run the same tests under several device caps.
//
// Use:  TEST_CASE_FIXTURE(megrez::test::GpuTest, "my kernel") { ... ctx ... }
// GpuTest's destructor CHECKs that no validation message was emitted during the test case
// and prints the messages if one was.
#include <doctest/doctest.h>

#include <span>
#include <vector>

#include "runtime/vk/blocking_transfers.h"
#include "runtime/vk/commands.h"
#include "runtime/vk/context.h"
#include "runtime/vk/dispatch.h"
#include "runtime/vk/memory.h"

namespace megrez::test {

// Options every test context uses: validation + sync validation, messages not echoed
// (the fixture prints them with the failing check).
ContextOptions validated_options();

// The shared context, created on first use and kept for the whole run.
Context& gpu();

// CHECKs that `ctx` logged no validation message since its counter read `since`.
void check_no_validation_messages(const Context& ctx, uint32_t since);

struct GpuTest {
  GpuTest();
  ~GpuTest();
  GpuTest(const GpuTest&) = delete;
  GpuTest& operator=(const GpuTest&) = delete;

  Context& ctx;
  uint32_t messages_before;
};

// Upload a host vector into a fresh range of `arena`.
template <class T>
BufferRange upload_vector(Context& ctx, Arena& arena, const std::vector<T>& data) {
  BufferRange range = arena.allocate(data.size() * sizeof(T));
  upload(ctx, range, std::span<const T>(data));
  return range;
}

template <class T>
std::vector<T> download_vector(Context& ctx, const BufferRange& range) {
  std::vector<T> data(range.size / sizeof(T));
  download(ctx, range, std::span<T>(data));
  return data;
}

}  // namespace megrez::test
