#pragma once
// Vulkan through volk only (no libvulkan link). Every failing call becomes a megrez::Error that
// names the call and the VkResult.
#include <volk.h>

#include <cstdint>
#include <string>

#include "loader/error.h"

namespace megrez {

const char* vk_result_name(VkResult result);

[[noreturn]] void throw_vk_error(VkResult result, const char* call);

inline void vk_check(VkResult result, const char* call) {
  if (result != VK_SUCCESS) throw_vk_error(result, call);
}

// A Vulkan info struct with its sType set and every other member zeroed.
template <class T>
T vk_struct(VkStructureType type) {
  T value{};
  value.sType = type;
  return value;
}

}  // namespace megrez
