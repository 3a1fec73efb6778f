#pragma once
// Compute pipelines by variant name (shaders/variants.cmake) and specialization constants,
// created from the embedded SPIR-V on first use and kept for the Context's lifetime. Backed
// by a VkPipelineCache persisted to disk (first-use compiles cost seconds on phone drivers).
#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "runtime/vk/vk_check.h"

namespace megrez {

class Context;
struct EmbeddedShader;

struct Specialization {
  std::array<uint32_t, 3> workgroup = {64, 1, 1};  // constant_id 0, 1, 2
  std::vector<uint32_t> constants;                 // constant_id 3, 4, ... (see abi/prelude.h)
  auto operator<=>(const Specialization&) const = default;
};

// The descriptor type of binding `b` for a pipeline's uniform-binding mask.
inline VkDescriptorType binding_descriptor_type(uint32_t uniform_bindings, uint32_t b) {
  return (uniform_bindings >> b) & 1u ? VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER : VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
}

struct Pipeline {
  std::string name;
  Specialization spec;
  uint32_t bindings = 0;         // buffers at set 0, bindings 0..bindings-1
  uint32_t uniform_bindings = 0; // bit b: binding b is a uniform buffer (else storage), from reflection
  uint32_t push_size = 0;        // bytes of the ABI push-constant struct
  bool push_descriptors = false; // descriptors recorded with vkCmdPushDescriptorSetKHR
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkPipeline pipeline = VK_NULL_HANDLE;
};

class PipelineRegistry {
 public:
  enum class CacheState { Disabled, Missing, Loaded, Rejected };

  // cache_path: file, "off", or "" for the default location.
  PipelineRegistry(Context& ctx, const std::string& cache_path);
  ~PipelineRegistry();  // saves the cache when pipelines were built (warning on failure)
  PipelineRegistry(const PipelineRegistry&) = delete;
  PipelineRegistry& operator=(const PipelineRegistry&) = delete;

  // The pipeline for a variant name; built on first request. Throws megrez::Error for an
  // unknown name (listing the known ones), a workgroup over the device limits, or a variant
  // table row that disagrees with the module's reflection.
  const Pipeline& get(std::string_view name, const Specialization& spec = {});
  bool contains(std::string_view name) const;
  std::vector<std::string> names() const;

  // Writes the cache file now (atomically: temp file + rename). Returns false with a warning
  // on stderr when it cannot be written.
  bool save_cache();
  CacheState cache_state() const { return cache_state_; }
  const std::string& cache_path() const { return cache_path_; }
  size_t cache_loaded_bytes() const { return cache_loaded_bytes_; }

 private:
  VkDescriptorSetLayout set_layout(uint32_t bindings, uint32_t uniform_bindings, bool push);
  std::unique_ptr<Pipeline> build(const EmbeddedShader& shader, const Specialization& spec);
  void load_cache();

  Context& ctx_;
  std::string cache_path_;
  CacheState cache_state_ = CacheState::Disabled;
  size_t cache_loaded_bytes_ = 0;
  bool cache_dirty_ = false;
  VkPipelineCache cache_ = VK_NULL_HANDLE;
  mutable std::mutex mutex_;
  std::map<std::tuple<uint32_t, uint32_t, bool>, VkDescriptorSetLayout> set_layouts_;
  std::map<std::pair<std::string, Specialization>, std::unique_ptr<Pipeline>, std::less<>> pipelines_;
};

// Checks a pipeline-cache blob's header (VkPipelineCacheHeaderVersionOne) against a device;
// "" when it matches, else why not.
std::string check_pipeline_cache_header(std::span<const uint8_t> data, const VkPhysicalDeviceProperties& props);

// The file a pipeline cache is kept in, keyed by the device, its driver and this library's
// shaders: pipeline-cache-<vendor>-<device>-<driver>-<pipelineCacheUUID>-<shader build>.bin.
std::string pipeline_cache_file_name(const VkPhysicalDeviceProperties& props);
// $XDG_CACHE_HOME or ~/.cache, /megrez/<pipeline_cache_file_name>; "" when neither HOME nor
// XDG_CACHE_HOME is set (Android: the app passes its cache directory instead).
std::string default_pipeline_cache_path(const VkPhysicalDeviceProperties& props);
// Where EngineOptions/ContextOptions::pipeline_cache points: "off" -> "" (no cache), "" -> the
// default path, an existing directory (or a path ending in '/') -> that directory /
// pipeline_cache_file_name, anything else -> that file.
std::string resolve_pipeline_cache_path(const std::string& option, const VkPhysicalDeviceProperties& props);

// 64-bit FNV-1a of every embedded SPIR-V module and its name: a cache written by a library
// with other shaders is not used.
uint64_t shader_build_hash();

// The file format: a 40-byte envelope (magic "MEGREZPC", format version, payload bytes, FNV-1a
// of the payload, shader_build_hash) and the driver's VkPipelineCache data. The checksum is
// what keeps a corrupt or truncated file from ever reaching the driver.
std::vector<uint8_t> wrap_pipeline_cache(std::span<const uint8_t> driver_data);
// The driver data inside `file`, or why it cannot be used ("" when it can).
std::string unwrap_pipeline_cache(std::span<const uint8_t> file, const VkPhysicalDeviceProperties& props,
                                  std::span<const uint8_t>& driver_data);

}  // namespace megrez
