#include "runtime/vk/device_caps.h"

#include <cstdlib>

#include "loader/formats/json_strict.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace megrez {

// Generated into the build tree by runtime/CMakeLists.txt from runtime/vk/profiles/*.json.
struct BuiltinProfile {
  const char* name;
  const char* json;
};
std::vector<BuiltinProfile> builtin_profiles();

namespace {

// llvmpipe names its LLVM: "llvmpipe (LLVM 15.0.6, 128 bits)". The driver runs in this
// process, so the architecture it compiles for is ours.
bool llvmpipe_aarch64_llvm15_or_older([[maybe_unused]] const DeviceInfo& info) {
#if defined(__aarch64__)
  const std::string name = info.name();
  const size_t at = name.find("(LLVM ");
  if (name.rfind("llvmpipe", 0) != 0 || at == std::string::npos) return false;
  return std::atoi(name.c_str() + at + 6) <= 15;
#else
  return false;
#endif
}

}  // namespace

DeviceCaps caps_from_device(const DeviceInfo& info, uint32_t compute_family) {
  const VkPhysicalDeviceLimits& limits = info.props.limits;
  DeviceCaps caps;
  caps.max_storage_range = limits.maxStorageBufferRange;
  caps.storage_offset_alignment = limits.minStorageBufferOffsetAlignment;
  caps.max_uniform_range = limits.maxUniformBufferRange;
  caps.uniform_offset_alignment = limits.minUniformBufferOffsetAlignment;
  caps.max_allocation_size = info.props11.maxMemoryAllocationSize;
  caps.max_shared_memory = limits.maxComputeSharedMemorySize;
  caps.max_workgroup_invocations = limits.maxComputeWorkGroupInvocations;
  for (int i = 0; i < 3; ++i) {
    caps.max_workgroup_size[i] = limits.maxComputeWorkGroupSize[i];
    caps.max_workgroup_count[i] = limits.maxComputeWorkGroupCount[i];
  }
  caps.max_push_constants = limits.maxPushConstantsSize;

  caps.subgroup_size = std::max(1u, info.props11.subgroupSize);
  caps.min_subgroup_size = caps.max_subgroup_size = caps.subgroup_size;
  if (info.has_subgroup_size_control) {
    caps.subgroup_size_control = info.subgroup_size_control_features.subgroupSizeControl;
    caps.min_subgroup_size = info.subgroup_size_control.minSubgroupSize;
    caps.max_subgroup_size = info.subgroup_size_control.maxSubgroupSize;
  }
  const bool compute_subgroups = info.props11.subgroupSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT;
  const VkSubgroupFeatureFlags ops = info.props11.subgroupSupportedOperations;
  caps.subgroup_arithmetic = compute_subgroups && (ops & VK_SUBGROUP_FEATURE_BASIC_BIT) &&
                             (ops & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
  caps.subgroup_shuffle = compute_subgroups && (ops & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);

  caps.fp16_arithmetic = info.features12.shaderFloat16;
  caps.int8_arithmetic = info.features12.shaderInt8;
  caps.int16_arithmetic = info.features.shaderInt16;
  caps.storage_16bit = info.features11.storageBuffer16BitAccess;
  caps.storage_8bit = info.features12.storageBuffer8BitAccess;

  caps.push_descriptors = info.has_push_descriptor;
  caps.max_push_descriptors = info.push_descriptor.maxPushDescriptors;
  // Unified memory: the device type says so, or the only device-local heap's memory can be
  // mapped (a discrete GPU's small BAR window does not count: it is a second heap).
  const auto type = info.props.deviceType;
  bool one_heap_mappable = false;
  if (info.memory.memoryHeapCount == 1) {
    for (uint32_t t = 0; t < info.memory.memoryTypeCount; ++t) {
      const auto flags = info.memory.memoryTypes[t].propertyFlags;
      one_heap_mappable |= (flags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT) &&
                           (flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
    }
  }
  caps.unified_memory = type == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU ||
                        type == VK_PHYSICAL_DEVICE_TYPE_CPU || one_heap_mappable;
  caps.cpu_device = type == VK_PHYSICAL_DEVICE_TYPE_CPU;
  caps.timestamp_valid_bits = info.queue_families.at(compute_family).timestampValidBits;
  caps.timestamps = caps.timestamp_valid_bits > 0 && limits.timestampPeriod > 0;
  caps.timestamp_period_ns = limits.timestampPeriod;

  constexpr uint32_t kQualcommVendorId = 0x5143;
  if (info.props.vendorID == kQualcommVendorId) caps.max_prefill_chunk = 32;
  caps.half_conversions = !llvmpipe_aarch64_llvm15_or_older(info);
  return caps;
}

// ---------------------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------------------

namespace {

using nlohmann::json;

struct ProfileReader {
  const json& doc;
  const std::string& origin;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error("device profile " + origin + ": key '" + key + "': " + what);
  }
  uint64_t number(const std::string& key, const json& value) const {
    if (!value.is_number_unsigned()) fail(key, "expected a non-negative integer, got " + json_preview(value));
    return value.get<uint64_t>();
  }
  // Limits only go down.
  template <class T>
  void lower(const char* key, T& field) const {
    if (!doc.contains(key)) return;
    uint64_t v = number(key, doc[key]);
    if (v == 0) fail(key, "must be > 0");
    field = static_cast<T>(std::min<uint64_t>(field, v));
  }
  template <class T>
  void lower3(const char* key, T (&field)[3]) const {
    if (!doc.contains(key)) return;
    const json& v = doc[key];
    if (!v.is_array() || v.size() != 3) fail(key, "expected an array of 3 integers, got " + json_preview(v));
    for (int i = 0; i < 3; ++i) {
      uint64_t n = number(key, v[i]);
      if (n == 0) fail(key, "entries must be > 0");
      field[i] = static_cast<T>(std::min<uint64_t>(field[i], n));
    }
  }
  // A quirk limit where 0 means "none": any limit is stricter than none.
  void lower_quirk(const char* key, uint32_t& field) const {
    if (!doc.contains(key)) return;
    uint64_t v = number(key, doc[key]);
    if (v == 0 || v > UINT32_MAX) fail(key, "must be between 1 and 4294967295");
    field = field == 0 ? uint32_t(v) : std::min(field, uint32_t(v));
  }
  // Alignments only go up, and stay powers of two.
  void raise_alignment(const char* key, uint64_t& field) const {
    if (!doc.contains(key)) return;
    uint64_t v = number(key, doc[key]);
    if (v == 0 || (v & (v - 1)) != 0) fail(key, "must be a power of two, got " + std::to_string(v));
    field = std::max(field, v);
  }
  // Features only switch off.
  void feature(const char* key, bool& field) const {
    if (!doc.contains(key)) return;
    if (!doc[key].is_boolean()) fail(key, "expected true or false, got " + json_preview(doc[key]));
    field = field && doc[key].get<bool>();
  }
};

const char* const kKnownKeys[] = {
    "name", "description", "max_storage_range", "storage_offset_alignment", "max_uniform_range",
    "uniform_offset_alignment",
    "max_allocation_size", "max_shared_memory", "max_workgroup_invocations",
    "max_workgroup_size", "max_workgroup_count", "max_push_constants", "subgroup_arithmetic",
    "subgroup_shuffle", "subgroup_size_control", "fp16_arithmetic", "int8_arithmetic",
    "int16_arithmetic", "storage_16bit", "storage_8bit", "push_descriptors", "unified_memory",
    "max_prefill_chunk", "half_conversions", "cpu_device"};

}  // namespace

void apply_profile_json(DeviceCaps& caps, const std::string& json_text, const std::string& origin) {
  const json doc = parse_json_strict(json_text, "device profile " + origin);
  if (!doc.is_object()) throw Error("device profile " + origin + ": expected a JSON object");
  for (const auto& [key, value] : doc.items()) {
    if (std::find(std::begin(kKnownKeys), std::end(kKnownKeys), key) == std::end(kKnownKeys)) {
      std::string known;
      for (const char* k : kKnownKeys) known += std::string(known.empty() ? "" : ", ") + k;
      throw Error("device profile " + origin + ": unknown key '" + key + "' (known: " + known + ")");
    }
  }
  if (!doc.contains("name") || !doc["name"].is_string() || doc["name"].get<std::string>().empty()) {
    throw Error("device profile " + origin + ": missing string key 'name'");
  }
  DeviceCaps capped = caps;  // all or nothing: a bad key leaves caps untouched
  ProfileReader r{doc, origin};
  r.lower("max_storage_range", capped.max_storage_range);
  r.raise_alignment("storage_offset_alignment", capped.storage_offset_alignment);
  r.lower("max_uniform_range", capped.max_uniform_range);
  r.raise_alignment("uniform_offset_alignment", capped.uniform_offset_alignment);
  r.lower("max_allocation_size", capped.max_allocation_size);
  r.lower("max_shared_memory", capped.max_shared_memory);
  r.lower("max_workgroup_invocations", capped.max_workgroup_invocations);
  r.lower3("max_workgroup_size", capped.max_workgroup_size);
  r.lower3("max_workgroup_count", capped.max_workgroup_count);
  r.lower("max_push_constants", capped.max_push_constants);
  r.lower_quirk("max_prefill_chunk", capped.max_prefill_chunk);
  r.feature("subgroup_arithmetic", capped.subgroup_arithmetic);
  r.feature("subgroup_shuffle", capped.subgroup_shuffle);
  r.feature("subgroup_size_control", capped.subgroup_size_control);
  r.feature("fp16_arithmetic", capped.fp16_arithmetic);
  r.feature("int8_arithmetic", capped.int8_arithmetic);
  r.feature("int16_arithmetic", capped.int16_arithmetic);
  r.feature("storage_16bit", capped.storage_16bit);
  r.feature("storage_8bit", capped.storage_8bit);
  r.feature("push_descriptors", capped.push_descriptors);
  r.feature("unified_memory", capped.unified_memory);
  r.feature("half_conversions", capped.half_conversions);
  r.feature("cpu_device", capped.cpu_device);  // false: the GPU-shaped kernels on a CPU driver
  capped.profile = doc["name"].get<std::string>();
  caps = capped;
}

void apply_profile(DeviceCaps& caps, const std::string& name_or_path) {
  for (const BuiltinProfile& p : builtin_profiles()) {
    if (name_or_path == p.name) return apply_profile_json(caps, p.json, "'" + name_or_path + "'");
  }
  const bool looks_like_path = name_or_path.find('/') != std::string::npos ||
                               name_or_path.ends_with(".json");
  if (!looks_like_path) {
    std::string names;
    for (const std::string& n : builtin_profile_names()) names += (names.empty() ? "" : ", ") + n;
    throw Error("unknown device profile '" + name_or_path + "' (built in: " + names +
                "; or give a path to a .json file)");
  }
  std::ifstream file(name_or_path, std::ios::binary);
  if (!file) throw Error("device profile " + name_or_path + ": cannot open file");
  std::stringstream text;
  text << file.rdbuf();
  apply_profile_json(caps, text.str(), name_or_path);
}

std::vector<std::string> builtin_profile_names() {
  std::vector<std::string> names;
  for (const BuiltinProfile& p : builtin_profiles()) names.emplace_back(p.name);
  return names;
}

}  // namespace megrez
