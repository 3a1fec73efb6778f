// Pipeline registry: lookup, specialization, limits, reflection vs the variant table, and
// the on-disk pipeline cache.
#include <cstring>
#include <fstream>
#include <string_view>

#include "runtime/vk/dispatch.h"
#include "runtime/vk/embedded_shaders.h"
#include "runtime/vk/pipelines.h"
#include "runtime/vk/spirv_reflect.h"
#include "runtime_test_util.h"
#include "shaders/abi/matvec.h"

using namespace megrez;

TEST_CASE("every embedded module matches its variant-table row") {
  REQUIRE(embedded_shaders().size() >= 4);
  for (const EmbeddedShader& shader : embedded_shaders()) {
    CAPTURE(shader.name);
    REQUIRE(shader.word_count > 5);
    CHECK(shader.words[0] == 0x07230203u);
    ShaderReflection r = reflect_spirv({shader.words, shader.word_count}, shader.name);
    CHECK(r.bindings.size() == shader.bindings);
    for (uint32_t i = 0; i < r.bindings.size(); ++i) CHECK(r.bindings[i] == i);
    CHECK(r.push_size == shader.push_size);
    // Only the *_ubo variants read uniform buffers, and only as their input x: binding 1, and
    // in the prefill products (one per token of 8) bindings 1 and 3-9.
    const std::string_view name = shader.name;
    const bool ubo = name.ends_with("_ubo") || name.ends_with("_ubo_shuffle");
    const bool per_token = ubo && name.starts_with("matmul_");
    CHECK(r.uniform_bindings == (per_token ? 0x3fau : ubo ? 2u : 0u));
    CHECK(find_embedded_shader(shader.name) == &shader);
  }
  CHECK(find_embedded_shader("no_such_variant") == nullptr);
  // Known rows, checked independently of the generator.
  const EmbeddedShader* copy = find_embedded_shader("copy");
  REQUIRE(copy != nullptr);
  CHECK(copy->bindings == 2);
  CHECK(copy->push_size == 4);
  CHECK(std::string(copy->source) == "copy.comp");
  for (const char* name : {"matvec_q8_0_rows_ubo", "matvec_q4_0_rows_wide_ubo", "moe_gate_up_q8_0_rows_wide_ubo",
                           "moe_down_f16_rows_ubo", "swiglu_fused_bf16_rows_ubo", "matmul_q4_0_rows_ubo"}) {
    CAPTURE(name);
    CHECK(find_embedded_shader(name) != nullptr);
  }
}

// OpLoopMerge instructions whose loop control asks for unrolling (SPIR-V: opcode 246, operands
// merge block, continue target, loop control; Unroll = 0x1).
static int unrolled_loops(const EmbeddedShader& shader) {
  int count = 0;
  for (size_t i = 5; i < shader.word_count;) {
    const uint32_t words = shader.words[i] >> 16, opcode = shader.words[i] & 0xffffu;
    if (words == 0 || i + words > shader.word_count) return -1;  // malformed: fails the checks below
    if (opcode == 246 && words >= 4 && (shader.words[i + 3] & 0x1u) != 0) ++count;
    i += words;
  }
  return count;
}

TEST_CASE("the per-invocation row kernels' inner loops are marked for unrolling") {
  // Mesa's unroller left the quantized block loop of row_dot.glsl rolled, and llvmpipe then
  // kept its private arrays in memory (2x slower q8_0 products): the loops carry [[unroll]].
  int checked = 0;
  for (const EmbeddedShader& shader : embedded_shaders()) {
    const std::string_view name = shader.name;
    if (name.find("_rows") == std::string_view::npos || name.starts_with("attention")) continue;
    CAPTURE(name);
    const bool quantized = name.find("q8_0") != std::string_view::npos || name.find("q4_0") != std::string_view::npos;
    // Quantized: the rows' unit loads, the blocks, x, the decoding and the sums (at least 6).
    CHECK(unrolled_loops(shader) >= (quantized ? 6 : 2));
    ++checked;
  }
  CHECK(checked >= 40);
}

TEST_CASE_FIXTURE(test::GpuTest, "a variant's uniform-buffer binding gets a uniform descriptor and its limits") {
  const Pipeline& p = ctx.pipeline("matvec_f32_rows_ubo", {{8, 1, 1}, {ctx.caps().subgroup_size}});
  CHECK(p.uniform_bindings == 2u);
  CHECK(binding_descriptor_type(p.uniform_bindings, 0) == VK_DESCRIPTOR_TYPE_STORAGE_BUFFER);
  CHECK(binding_descriptor_type(p.uniform_bindings, 1) == VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER);
  CHECK(ctx.pipeline("matvec_f32_rows", {{8, 1, 1}, {ctx.caps().subgroup_size}}).uniform_bindings == 0u);
  // dispatch() holds a uniform binding to maxUniformBufferRange, not the storage limit.
  Arena arena(ctx, "ubo-test", MemoryUse::Device, 1 << 20);
  const BufferRange w = arena.allocate(64), y = arena.allocate(64);
  const BufferRange too_big = arena.allocate(ctx.caps().max_uniform_range + 16);
  CommandBuffer cmd(ctx);
  cmd.begin();
  CHECK_THROWS_WITH_AS(dispatch(cmd, p, {w, too_big, y}, abi::MatvecPush{1, 4, 0, 0, 0, 0}, {1}),
                       doctest::Contains("exceeds maxUniformBufferRange"), Error);
}

TEST_CASE("reflection rejects malformed modules") {
  const uint32_t not_spirv[] = {1, 2, 3, 4, 5, 6};
  CHECK_THROWS_WITH_AS(reflect_spirv(not_spirv, "bad"), doctest::Contains("shader bad: not a SPIR-V module"), Error);
  const EmbeddedShader* copy = find_embedded_shader("copy");
  REQUIRE(copy != nullptr);
  std::vector<uint32_t> truncated(copy->words, copy->words + copy->word_count);
  truncated[5] = (0xffffu << 16) | (truncated[5] & 0xffff);  // first instruction claims 65535 words
  CHECK_THROWS_WITH_AS(reflect_spirv(truncated, "cut"), doctest::Contains("truncated"), Error);
}

TEST_CASE_FIXTURE(test::GpuTest, "pipelines are found by name and cached per specialization") {
  const Pipeline& a = ctx.pipeline("copy", {{64, 1, 1}, {}});
  const Pipeline& b = ctx.pipeline("copy", {{64, 1, 1}, {}});
  const Pipeline& c = ctx.pipeline("copy", {{32, 1, 1}, {}});
  CHECK(&a == &b);
  CHECK(&a != &c);
  CHECK(a.pipeline != c.pipeline);
  CHECK(a.bindings == 2);
  CHECK(a.push_size == 4);
  CHECK(a.push_descriptors == ctx.caps().push_descriptors);
  CHECK(ctx.pipelines().contains("copy_vec4"));
  CHECK_FALSE(ctx.pipelines().contains("nope"));
  CHECK_THROWS_WITH_AS(ctx.pipeline("nope"), doctest::Contains("no shader variant named 'nope' (known: copy,"), Error);
  const uint32_t too_wide = ctx.caps().max_workgroup_size[0] + 1;
  CHECK_THROWS_WITH_AS(ctx.pipeline("copy", {{too_wide, 1, 1}, {}}), doctest::Contains("workgroup size[0]"), Error);
  const uint32_t side = ctx.caps().max_workgroup_invocations;
  if (side <= ctx.caps().max_workgroup_size[1]) {
    CHECK_THROWS_WITH_AS(ctx.pipeline("copy", {{side, 2, 1}, {}}), doctest::Contains("maxComputeWorkGroupInvocations"),
                         Error);
  }
  CHECK_THROWS_AS(ctx.pipeline("copy", {{0, 1, 1}, {}}), Error);
}

namespace {

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// A context on `path`: its cache state once loaded; it builds a pipeline and stays silent.
PipelineRegistry::CacheState open_with(ContextOptions options, const std::string& path) {
  options.pipeline_cache = path;
  Context ctx(options);
  const PipelineRegistry::CacheState state = ctx.pipelines().cache_state();
  ctx.pipeline("copy");
  test::check_no_validation_messages(ctx, 0);
  return state;  // the destructor rewrites a valid cache
}

}  // namespace

TEST_CASE("pipeline cache: written, reloaded, corrupt or foreign files ignored") {
  test::TempDir dir;
  const std::string path = (dir.path / "sub" / "cache.bin").string();
  ContextOptions options = test::validated_options();
  options.pipeline_cache = path;
  {
    Context ctx(options);
    CHECK(ctx.pipelines().cache_state() == PipelineRegistry::CacheState::Missing);
    ctx.pipeline("copy");
    CHECK(ctx.pipelines().save_cache());
    test::check_no_validation_messages(ctx, 0);
  }
  const std::vector<uint8_t> file = read_bytes(path);
  REQUIRE(file.size() >= 40 + 32);
  Context probe(options);
  const VkPhysicalDeviceProperties& props = probe.info().props;
  CHECK(probe.pipelines().cache_state() == PipelineRegistry::CacheState::Loaded);
  CHECK(probe.pipelines().cache_loaded_bytes() == file.size());
  std::span<const uint8_t> driver;
  REQUIRE(unwrap_pipeline_cache(file, props, driver).empty());
  CHECK(driver.size() == file.size() - 40);
  CHECK(check_pipeline_cache_header(driver, props).empty());
  const std::vector<uint8_t> driver_data(driver.begin(), driver.end());

  // Each damaged file: the reason, then a context that ignores it and still works.
  auto rejected = [&](std::span<const uint8_t> bytes, const std::string& reason) {
    std::span<const uint8_t> unused;
    CHECK(unwrap_pipeline_cache(bytes, props, unused) == reason);
    write_bytes(path, bytes);
    CHECK(open_with(options, path) == PipelineRegistry::CacheState::Rejected);
    CHECK(open_with(options, path) == PipelineRegistry::CacheState::Loaded);  // rewritten
  };
  std::vector<uint8_t> flipped = file;
  flipped[file.size() - 1] ^= 0x40;
  rejected(flipped, "corrupt (checksum mismatch)");
  rejected(std::span(file).first(file.size() - 7), "truncated or extended (size does not match its header)");
  rejected(std::span(file).first(20), "shorter than its header");
  std::vector<uint8_t> garbage(4096);
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = uint8_t(i * 131 + 7);
  rejected(garbage, "not a megrez pipeline cache");
  // Well-formed envelopes around another device's or driver's data.
  std::vector<uint8_t> foreign = driver_data;
  foreign[8] ^= 0xff;
  rejected(wrap_pipeline_cache(foreign), "written for another device");
  std::vector<uint8_t> uuid = driver_data;
  uuid[16] ^= 1;
  rejected(wrap_pipeline_cache(uuid), "written by another driver version");
  CHECK(check_pipeline_cache_header(std::span(driver_data).first(31), props) == "shorter than a pipeline cache header");
  std::vector<uint8_t> other_shaders = file;
  other_shaders[32] ^= 1;  // the shader build hash
  rejected(other_shaders, "written by a build with other shaders");

  // A directory: the cache is kept in it under the keyed file name.
  const std::string in_dir = resolve_pipeline_cache_path(dir.path.string(), props);
  CHECK(in_dir == (dir.path / pipeline_cache_file_name(props)).string());
  CHECK(open_with(options, dir.path.string()) == PipelineRegistry::CacheState::Missing);
  CHECK(open_with(options, dir.path.string()) == PipelineRegistry::CacheState::Loaded);
  CHECK(resolve_pipeline_cache_path("off", props).empty());

  options.pipeline_cache = "off";
  Context off(options);
  CHECK(off.pipelines().cache_state() == PipelineRegistry::CacheState::Disabled);
  CHECK_FALSE(off.pipelines().save_cache());
}

TEST_CASE("default pipeline cache path names vendor, device, driver and shader build") {
  VkPhysicalDeviceProperties props{};
  props.vendorID = 0x10de;
  props.deviceID = 0x2684;
  props.driverVersion = 0x87654321;
  const char* home = std::getenv("HOME");
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  props.pipelineCacheUUID[0] = 0xab;
  const std::string path = default_pipeline_cache_path(props);
  char build[32];
  std::snprintf(build, sizeof build, "%016llx", static_cast<unsigned long long>(shader_build_hash()));
  CHECK(path.ends_with("/megrez/pipeline-cache-10de-2684-87654321-000000ab-" + std::string(build) + ".bin"));
  if (xdg && *xdg) {
    CHECK(path.rfind(xdg, 0) == 0);
  } else if (home && *home) {
    CHECK(path.rfind(std::string(home) + "/.cache/", 0) == 0);
  }
}
