#pragma once
// Helpers shared by the runtime tests: temporary files and contexts under custom profiles.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <unistd.h>

#include "common/gpu_fixture.h"

namespace megrez::test {

// A fresh directory under the system temp dir, removed by the destructor.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("megrez-runtime-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
};

// A validated context capped by an inline profile (JSON text), e.g. to emulate a tiny
// maxStorageBufferRange. The pipeline cache is off so tests leave no files behind.
inline std::unique_ptr<Context> context_with_profile(const std::string& json) {
  TempDir dir;
  ContextOptions options = validated_options();
  options.profile = dir.write("profile.json", json);
  options.pipeline_cache = "off";
  return std::make_unique<Context>(options);
}

}  // namespace megrez::test
