#pragma once
// Collects what the Khronos validation layer reports through VK_EXT_debug_utils. Tests fail
// on any counted message; apps print them as they arrive.
#include <atomic>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/vk/vk_check.h"

namespace megrez {

class ValidationLog {
 public:
  explicit ValidationLog(bool print) : print_(print) {}

  static VKAPI_ATTR VkBool32 VKAPI_CALL callback(
      VkDebugUtilsMessageSeverityFlagBitsEXT severity, VkDebugUtilsMessageTypeFlagsEXT types,
      const VkDebugUtilsMessengerCallbackDataEXT* data, void* user);

  // Warnings and errors of the validation and performance kinds. General messages (loader
  // chatter) are printed but not counted: they say nothing about our API use.
  uint32_t count() const { return count_.load(); }
  std::vector<std::string> messages() const;

  static VkDebugUtilsMessengerCreateInfoEXT create_info(ValidationLog* log);

 private:
  void record(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
              VkDebugUtilsMessageTypeFlagsEXT types, const char* text);

  static constexpr size_t kKeep = 64;  // most recent messages kept for test reports
  bool print_;
  std::atomic<uint32_t> count_{0};
  mutable std::mutex mutex_;
  std::deque<std::string> messages_;
};

}  // namespace megrez
