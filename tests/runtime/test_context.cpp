// Context creation: device selection, profiles, the validation counter (and that sync
// validation is really on), the device report.
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <optional>

#include "runtime/vk/device_caps.h"
#include "runtime/vk/device_report.h"
#include "runtime_test_util.h"
#include "shaders/abi/copy.h"

using namespace megrez;

namespace {

ContextOptions options_for_device(const std::string& device) {
  ContextOptions options = test::validated_options();
  options.device = device;
  options.pipeline_cache = "off";
  return options;
}

}  // namespace

TEST_CASE("device selection by index, name substring, and clear errors") {
  const std::vector<std::string> devices = list_devices();
  REQUIRE(!devices.empty());
  CHECK(devices[0].rfind("0: ", 0) == 0);
  {
    Context by_index(options_for_device("0"));
    CHECK(by_index.info().index == 0);
    // The same device by a case-swapped piece of its name.
    std::string name = by_index.info().name().substr(0, 4);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) {
      return std::isupper(c) ? std::tolower(c) : std::toupper(c);
    });
    Context by_name(options_for_device(name));
    CHECK(by_name.info().name() == by_index.info().name());
    test::check_no_validation_messages(by_index, 0);
    test::check_no_validation_messages(by_name, 0);
  }
  const std::string past_end = std::to_string(devices.size());
  CHECK_THROWS_WITH_AS(Context(options_for_device(past_end)),
                       doctest::Contains(("device index " + past_end + " out of range").c_str()), Error);
  CHECK_THROWS_WITH_AS(Context(options_for_device("99999999999999999999")), doctest::Contains("out of range"), Error);
  CHECK_THROWS_WITH_AS(Context(options_for_device("no-such-gpu-xyz")),
                       doctest::Contains("no usable device matches 'no-such-gpu-xyz'"), Error);
}

TEST_CASE("built-in profiles cap the real limits and never raise them") {
  DeviceCaps real;
  real.max_storage_range = 1ull << 32;
  real.storage_offset_alignment = 16;
  real.max_shared_memory = 49152;
  real.max_workgroup_invocations = 1024;
  for (int i = 0; i < 3; ++i) real.max_workgroup_size[i] = 1024, real.max_workgroup_count[i] = 1u << 31;
  real.max_push_constants = 256;
  real.max_allocation_size = 1ull << 32;
  real.subgroup_arithmetic = real.fp16_arithmetic = real.int8_arithmetic = real.push_descriptors = true;
  real.storage_16bit = real.storage_8bit = true;

  DeviceCaps minimum = real;
  apply_profile(minimum, "minimum");
  CHECK(minimum.profile == "minimum");
  CHECK(minimum.max_storage_range == 128u << 20);
  CHECK(minimum.max_shared_memory == 16384);
  CHECK(minimum.max_workgroup_invocations == 128);
  CHECK(minimum.storage_offset_alignment == 256);
  CHECK(minimum.max_workgroup_count[0] == 65535);
  CHECK_FALSE(minimum.fp16_arithmetic);
  CHECK_FALSE(minimum.use_subgroup_reduce());
  CHECK_FALSE(minimum.push_descriptors);
  CHECK(minimum.storage_16bit);  // 16-bit storage may be required (gpu-targets.md)

  DeviceCaps adreno = real;
  apply_profile(adreno, "adreno-7xx");
  CHECK(adreno.max_shared_memory == 32768);
  CHECK_FALSE(adreno.use_subgroup_reduce());
  CHECK(real.max_prefill_chunk == 0);  // the quirk: no limit unless a profile or the vendor sets one
  CHECK(adreno.max_prefill_chunk == 32);
  DeviceCaps stricter = adreno;
  apply_profile_json(stricter, R"({"name": "s", "max_prefill_chunk": 8})", "test");
  CHECK(stricter.max_prefill_chunk == 8);
  apply_profile_json(stricter, R"({"name": "s", "max_prefill_chunk": 64})", "test");
  CHECK(stricter.max_prefill_chunk == 8);
  DeviceCaps mali = real;
  apply_profile(mali, "mali-g7xx");
  CHECK(mali.max_workgroup_invocations == 512);
  CHECK(mali.use_subgroup_reduce());

  DeviceCaps weak = real;
  weak.max_shared_memory = 8192;
  weak.fp16_arithmetic = false;
  apply_profile_json(weak, R"({"name": "big", "max_shared_memory": 65536, "fp16_arithmetic": true})", "test");
  CHECK(weak.max_shared_memory == 8192);
  CHECK_FALSE(weak.fp16_arithmetic);
  // The phones and the GPU-kernels baseline are GPUs to the kernel choice; the real device
  // keeps its type.
  CHECK_FALSE(adreno.sum_rows_per_invocation());
  CHECK_FALSE(mali.sum_rows_per_invocation());
  DeviceCaps gpu_kernels = real;
  apply_profile(gpu_kernels, "gpu-kernels");
  CHECK_FALSE(gpu_kernels.sum_rows_per_invocation());
  CHECK(real.sum_rows_per_invocation() == real.cpu_device);
  DeviceCaps not_cpu = real;
  not_cpu.cpu_device = false;
  apply_profile_json(not_cpu, R"({"name": "cpu", "cpu_device": true})", "test");  // cannot switch it on
  CHECK_FALSE(not_cpu.cpu_device);
  CHECK(builtin_profile_names() == std::vector<std::string>{"adreno-7xx", "gpu-kernels", "mali-g7xx", "minimum"});
}

TEST_CASE("bad profiles fail with a message naming the key, and change nothing") {
  DeviceCaps caps;
  caps.max_storage_range = 1000;
  const DeviceCaps before = caps;
  auto fails = [&](const std::string& json, const char* message) {
    CAPTURE(json);
    CHECK_THROWS_WITH_AS(apply_profile_json(caps, json, "p.json"), doctest::Contains(message), Error);
    CHECK(caps.max_storage_range == before.max_storage_range);
  };
  fails("{", "not valid JSON");
  fails("[1]", "expected a JSON object");
  fails(R"({"max_storage_range": 10})", "missing string key 'name'");
  fails(R"({"name": "x", "max_storage_rang": 10})", "unknown key 'max_storage_rang'");
  fails(R"({"name": "x", "max_storage_range": -5})", "key 'max_storage_range': expected a non-negative integer");
  fails(R"({"name": "x", "max_storage_range": 0})", "must be > 0");
  fails(R"({"name": "x", "max_storage_range": 10, "fp16_arithmetic": "no"})", "key 'fp16_arithmetic': expected true or false");
  fails(R"({"name": "x", "storage_offset_alignment": 48})", "must be a power of two");
  fails(R"({"name": "x", "max_workgroup_size": [1, 2]})", "expected an array of 3 integers");
  fails(R"({"name": "x", "max_prefill_chunk": 0})", "must be between 1 and");
  CHECK_THROWS_WITH_AS(apply_profile(caps, "no-such-profile"), doctest::Contains("unknown device profile 'no-such-profile'"), Error);
  CHECK_THROWS_WITH_AS(apply_profile(caps, "/nonexistent/dir/p.json"), doctest::Contains("cannot open file"), Error);

  ContextOptions options = test::validated_options();
  options.profile = "no-such-profile";
  CHECK_THROWS_WITH_AS(Context{options}, doctest::Contains("unknown device profile"), Error);
}

TEST_CASE("a profile switching features off also leaves them off on the VkDevice") {
  auto ctx = test::context_with_profile(R"({"name": "no-fp16", "fp16_arithmetic": false, "push_descriptors": false})");
  CHECK(ctx->caps().profile == "no-fp16");
  CHECK_FALSE(ctx->caps().fp16_arithmetic);
  CHECK_FALSE(ctx->caps().push_descriptors);
  // Descriptor-pool path: the copy kernel still works, validation stays silent.
  Arena arena(*ctx, "t", MemoryUse::Device, 1 << 16);
  std::vector<uint32_t> data = {1, 2, 3, 4, 5};
  BufferRange src = test::upload_vector(*ctx, arena, data);
  BufferRange dst = test::upload_vector(*ctx, arena, std::vector<uint32_t>(5, 0));
  CommandBuffer cmd(*ctx);
  for (int round = 0; round < 2; ++round) {  // second round reuses the reset descriptor pool
    cmd.begin();
    for (int i = 0; i < 300; ++i) {  // more sets than one pool holds
      dispatch(cmd, ctx->pipeline("copy"), {src, dst}, abi::CopyPush{5}, {1});
    }
    cmd.submit_and_wait();
  }
  CHECK(test::download_vector<uint32_t>(*ctx, dst) == data);
  test::check_no_validation_messages(*ctx, 0);
}

TEST_CASE("the validation counter sees API misuse, and synchronization validation is on") {
  ContextOptions options = test::validated_options();
  options.pipeline_cache = "off";
  Context ctx(options);
  REQUIRE(ctx.validation_enabled());
  // Invalid call: a zero-sized buffer (the layer reports it and does not pass it on).
  auto info = vk_struct<VkBufferCreateInfo>(VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO);
  info.size = 0;
  info.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
  VkBuffer buffer = VK_NULL_HANDLE;
  vkCreateBuffer(ctx.device(), &info, nullptr, &buffer);
  if (buffer) vkDestroyBuffer(ctx.device(), buffer, nullptr);
  CHECK(ctx.validation_message_count() >= 1);
  const uint32_t after_misuse = ctx.validation_message_count();

  // Read-after-write hazard: a copy reads what a dispatch wrote, with no barrier between.
  {
    Arena arena(ctx, "t", MemoryUse::Device, 1 << 16);
    BufferRange src = arena.allocate(256), dst = arena.allocate(256), out = arena.allocate(256);
    CommandBuffer cmd(ctx);
    cmd.begin();
    dispatch(cmd, ctx.pipeline("copy"), {src, dst}, abi::CopyPush{64}, {1});
    copy_buffer(cmd, dst, out);
    cmd.submit_and_wait();
  }
  CHECK(ctx.validation_message_count() == after_misuse + 1);
  CHECK(ctx.validation_messages().back().find("SYNC-HAZARD-READ-AFTER-WRITE") != std::string::npos);

  // The kernel author's usual mistake: a dispatch reading what the previous one wrote,
  // without barrier_compute_to_compute.
  const uint32_t before_chain = ctx.validation_message_count();
  {
    Arena arena(ctx, "t", MemoryUse::Device, 1 << 16);
    BufferRange a = arena.allocate(256), b = arena.allocate(256), c = arena.allocate(256);
    CommandBuffer cmd(ctx);
    cmd.begin();
    dispatch(cmd, ctx.pipeline("copy"), {a, b}, abi::CopyPush{64}, {1});
    dispatch(cmd, ctx.pipeline("copy"), {b, c}, abi::CopyPush{64}, {1});
    cmd.submit_and_wait();
  }
  CHECK(ctx.validation_message_count() == before_chain + 1);
  CHECK(ctx.validation_messages().back().find("SYNC-HAZARD-READ-AFTER-WRITE") != std::string::npos);
}

TEST_CASE_FIXTURE(test::GpuTest, "device report names the device, queues, memory and limits") {
  const std::string report = device_report(ctx);
  CAPTURE(report);
  CHECK(report.find(ctx.info().name()) != std::string::npos);
  for (const char* needle : {"driver:", "queue family 0", "<- compute", "transfer queue:", "heap 0:", "subgroup: size",
                             "maxStorageBufferRange", "maxComputeSharedMemorySize", "maxComputeWorkGroupSize",
                             "maxPushConstantsSize", "timestampPeriod", "fp16 arithmetic", "8-bit storage",
                             "Validation: on"}) {
    CHECK_MESSAGE(report.find(needle) != std::string::npos, needle);
  }
}

namespace {

// Sets an environment variable for one scope, restoring the previous value.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(const char* n, const char* value) : name(n) {
    if (const char* v = std::getenv(n)) old = v;
    ::setenv(n, value, 1);
  }
  ~ScopedEnv() {
    if (old) {
      ::setenv(name.c_str(), old->c_str(), 1);
    } else {
      ::unsetenv(name.c_str());
    }
  }
};

}  // namespace

TEST_CASE("MEGREZ_VALIDATION, MEGREZ_DEVICE and MEGREZ_PROFILE reach the context") {
  ContextOptions options;  // everything from the environment
  options.pipeline_cache = "off";
  options.print_validation = false;
  {
    ScopedEnv validation("MEGREZ_VALIDATION", "1");
    ScopedEnv profile("MEGREZ_PROFILE", "minimum");
    Context ctx(options);
    CHECK(ctx.validation_enabled());
    CHECK(ctx.caps().profile == "minimum");
    CHECK(ctx.caps().max_shared_memory == 16384);
    test::check_no_validation_messages(ctx, 0);
  }
  {
    ScopedEnv validation("MEGREZ_VALIDATION", "0");
    ScopedEnv profile("MEGREZ_PROFILE", "");
    Context ctx(options);
    CHECK_FALSE(ctx.validation_enabled());
    CHECK(ctx.caps().profile.empty());
  }
  ScopedEnv device("MEGREZ_DEVICE", "4096");
  CHECK_THROWS_WITH_AS(Context{options}, doctest::Contains("device index 4096 out of range"), Error);
}
