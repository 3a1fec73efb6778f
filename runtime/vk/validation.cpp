#include "runtime/vk/validation.h"
#include "loader/log.h"

#include <cstdio>

namespace megrez {

VkBool32 ValidationLog::callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                 VkDebugUtilsMessageTypeFlagsEXT types,
                                 const VkDebugUtilsMessengerCallbackDataEXT* data, void* user) {
  static_cast<ValidationLog*>(user)->record(severity, types, data && data->pMessage ? data->pMessage : "");
  return VK_FALSE;  // never abort the call: the counter is how failures surface
}

void ValidationLog::record(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                           VkDebugUtilsMessageTypeFlagsEXT types, const char* text) {
  const bool counted = types & (VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                                VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT);
  const char* level = severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? "error" : "warning";
  std::string line = std::string("vulkan ") + level + ": " + text;
  if (print_ || !counted) log_line(line);
  if (!counted) return;
  std::lock_guard lock(mutex_);
  count_.fetch_add(1);
  messages_.push_back(std::move(line));
  if (messages_.size() > kKeep) messages_.pop_front();
}

std::vector<std::string> ValidationLog::messages() const {
  std::lock_guard lock(mutex_);
  return {messages_.begin(), messages_.end()};
}

VkDebugUtilsMessengerCreateInfoEXT ValidationLog::create_info(ValidationLog* log) {
  auto info = vk_struct<VkDebugUtilsMessengerCreateInfoEXT>(VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT);
  info.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT |
                         VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  info.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                     VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  info.pfnUserCallback = &ValidationLog::callback;
  info.pUserData = log;
  return info;
}

}  // namespace megrez
