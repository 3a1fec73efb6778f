// PipelineRegistry's on-disk VkPipelineCache: default path, header check, load and save.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "runtime/vk/context.h"
#include "runtime/vk/pipelines.h"

namespace megrez {

std::string default_pipeline_cache_path(const VkPhysicalDeviceProperties& props) {
  std::filesystem::path base;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) {
    base = xdg;
  } else if (const char* home = std::getenv("HOME"); home && *home) {
    base = std::filesystem::path(home) / ".cache";
  } else {
    return "";
  }
  char file[96];
  std::snprintf(file, sizeof file, "pipeline-cache-%04x-%04x-%08x.bin", props.vendorID, props.deviceID,
                props.driverVersion);
  return (base / "megrez" / file).string();
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
    data.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    const std::string problem = check_pipeline_cache_header(data, ctx_.info().props);
    if (problem.empty()) {
      cache_state_ = CacheState::Loaded;
      cache_loaded_bytes_ = data.size();
    } else {
      std::fprintf(stderr, "megrez: warning: ignoring pipeline cache %s: %s\n", cache_path_.c_str(), problem.c_str());
      cache_state_ = CacheState::Rejected;
      data.clear();
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
    std::fprintf(stderr, "megrez: warning: cannot write pipeline cache %s\n", cache_path_.c_str());
    return false;
  }
  cache_dirty_ = false;
  return true;
}

}  // namespace megrez
