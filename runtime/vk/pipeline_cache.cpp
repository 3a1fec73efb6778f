// PipelineRegistry's on-disk VkPipelineCache: default path, header check, load and save.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "runtime/vk/context.h"
#include "loader/log.h"
#include "runtime/vk/embedded_shaders.h"
#include "runtime/vk/pipelines.h"

namespace megrez {

namespace {

constexpr char kMagic[8] = {'M', 'E', 'G', 'R', 'E', 'Z', 'P', 'C'};
constexpr uint32_t kFormatVersion = 1;
struct Envelope {
  char magic[8];
  uint32_t version;
  uint32_t reserved;
  uint64_t payload_bytes;
  uint64_t payload_fnv1a;
  uint64_t shader_build;
};
static_assert(sizeof(Envelope) == 40);

uint64_t fnv1a(std::span<const uint8_t> bytes, uint64_t hash = 0xcbf29ce484222325ull) {
  for (uint8_t b : bytes) hash = (hash ^ b) * 0x100000001b3ull;
  return hash;
}

}  // namespace

uint64_t shader_build_hash() {
  static const uint64_t hash = [] {
    uint64_t h = 0xcbf29ce484222325ull;
    for (const EmbeddedShader& shader : embedded_shaders()) {
      const std::string_view name(shader.name);
      h = fnv1a({reinterpret_cast<const uint8_t*>(name.data()), name.size() + 1}, h);
      h = fnv1a({reinterpret_cast<const uint8_t*>(shader.words), shader.word_count * 4}, h);
    }
    return h;
  }();
  return hash;
}

std::string pipeline_cache_file_name(const VkPhysicalDeviceProperties& props) {
  char file[128];
  uint32_t uuid = 0;  // the first 4 bytes of the UUID name it; the header check compares all 16
  std::memcpy(&uuid, props.pipelineCacheUUID, sizeof uuid);
  std::snprintf(file, sizeof file, "pipeline-cache-%04x-%04x-%08x-%08x-%016llx.bin", props.vendorID, props.deviceID,
                props.driverVersion, uuid, static_cast<unsigned long long>(shader_build_hash()));
  return file;
}

std::string default_pipeline_cache_path(const VkPhysicalDeviceProperties& props) {
  std::filesystem::path base;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    base = xdg;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    base = std::filesystem::path(home) / ".cache";
  } else {
    return "";
  }
  return (base / "megrez" / pipeline_cache_file_name(props)).string();
}

std::string resolve_pipeline_cache_path(const std::string& option, const VkPhysicalDeviceProperties& props) {
  if (option == "off") return "";
  if (option.empty()) return default_pipeline_cache_path(props);
  std::error_code error;
  if (option.back() == '/' || std::filesystem::is_directory(option, error)) {
    return (std::filesystem::path(option) / pipeline_cache_file_name(props)).string();
  }
  return option;
}

std::vector<uint8_t> wrap_pipeline_cache(std::span<const uint8_t> driver_data) {
  Envelope e{};
  std::memcpy(e.magic, kMagic, sizeof kMagic);
  e.version = kFormatVersion;
  e.payload_bytes = driver_data.size();
  e.payload_fnv1a = fnv1a(driver_data);
  e.shader_build = shader_build_hash();
  std::vector<uint8_t> file(sizeof e + driver_data.size());
  std::memcpy(file.data(), &e, sizeof e);
  if (!driver_data.empty()) std::memcpy(file.data() + sizeof e, driver_data.data(), driver_data.size());
  return file;
}

std::string unwrap_pipeline_cache(std::span<const uint8_t> file, const VkPhysicalDeviceProperties& props,
                                  std::span<const uint8_t>& driver_data) {
  Envelope e;
  if (file.size() < sizeof e) return "shorter than its header";
  std::memcpy(&e, file.data(), sizeof e);
  if (std::memcmp(e.magic, kMagic, sizeof kMagic) != 0) return "not a megrez pipeline cache";
  if (e.version != kFormatVersion) return "format version " + std::to_string(e.version) + ", expected " +
                                          std::to_string(kFormatVersion);
  if (e.payload_bytes != file.size() - sizeof e) return "truncated or extended (size does not match its header)";
  const std::span<const uint8_t> payload = file.subspan(sizeof e);
  if (fnv1a(payload) != e.payload_fnv1a) return "corrupt (checksum mismatch)";
  if (e.shader_build != shader_build_hash()) return "written by a build with other shaders";
  const std::string problem = check_pipeline_cache_header(payload, props);
  if (!problem.empty()) return problem;
  driver_data = payload;
  return "";
}

std::string check_pipeline_cache_header(std::span<const uint8_t> data, const VkPhysicalDeviceProperties& props) {
  VkPipelineCacheHeaderVersionOne header;
  static_assert(sizeof header == 32, "VkPipelineCacheHeaderVersionOne is 32 bytes per the spec");
  if (data.size() < sizeof header) return "shorter than a pipeline cache header";
  std::memcpy(&header, data.data(), sizeof header);
  if (header.headerSize < sizeof header || header.headerSize > data.size()) return "bad header size";
  if (header.headerVersion != VK_PIPELINE_CACHE_HEADER_VERSION_ONE) return "unknown header version";
  if (header.vendorID != props.vendorID || header.deviceID != props.deviceID) return "written for another device";
  if (std::memcmp(header.pipelineCacheUUID, props.pipelineCacheUUID, VK_UUID_SIZE) != 0) {
    return "written by another driver version";
  }
  return "";
}

void PipelineRegistry::load_cache() {
  std::vector<uint8_t> data;
  if (cache_path_.empty()) {
    cache_state_ = CacheState::Disabled;
  } else if (std::ifstream file{cache_path_, std::ios::binary}) {
    std::vector<uint8_t> bytes(std::istreambuf_iterator<char>(file), {});
    std::span<const uint8_t> driver_data;
    const std::string problem = unwrap_pipeline_cache(bytes, ctx_.info().props, driver_data);
    if (problem.empty()) {
      cache_state_ = CacheState::Loaded;
      cache_loaded_bytes_ = bytes.size();
      data.assign(driver_data.begin(), driver_data.end());
    } else {
      log_warning("ignoring pipeline cache " + cache_path_ + ": " + problem);
      cache_state_ = CacheState::Rejected;
    }
  } else {
    cache_state_ = CacheState::Missing;
  }
  auto info = vk_struct<VkPipelineCacheCreateInfo>(VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO);
  info.initialDataSize = data.size();
  info.pInitialData = data.empty() ? nullptr : data.data();
  vk_check(vkCreatePipelineCache(ctx_.device(), &info, nullptr, &cache_), "vkCreatePipelineCache");
}

bool PipelineRegistry::save_cache() {
  std::lock_guard guard(mutex_);
  if (cache_path_.empty()) return false;
  size_t size = 0;
  vk_check(vkGetPipelineCacheData(ctx_.device(), cache_, &size, nullptr), "vkGetPipelineCacheData");
  std::vector<uint8_t> data(size);
  vk_check(vkGetPipelineCacheData(ctx_.device(), cache_, &size, data.data()), "vkGetPipelineCacheData");
  data.resize(size);
  data = wrap_pipeline_cache(data);
  namespace fs = std::filesystem;
  const fs::path path(cache_path_);
  // Unique temp name + rename: concurrent processes (parallel tests) never see a torn file.
  const fs::path temp = path.string() + ".tmp" + std::to_string(::getpid());
  std::error_code error;
  if (path.has_parent_path()) fs::create_directories(path.parent_path(), error);
  {
    std::ofstream file(temp, std::ios::binary | std::ios::trunc);
    file.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    if (!file) error = std::make_error_code(std::errc::io_error);
  }
  if (!error) fs::rename(temp, path, error);
  if (error) {
    fs::remove(temp, error);
    log_warning("cannot write pipeline cache " + cache_path_);
    return false;
  }
  cache_dirty_ = false;
  return true;
}

}  // namespace megrez
