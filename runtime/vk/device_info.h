#pragma once
// Everything the runtime reads about a physical device, queried once. DeviceCaps, device
// selection and the device report are all computed from this.
#include <string>
#include <string_view>
#include <vector>

#include "runtime/vk/vk_check.h"

namespace megrez {

struct DeviceInfo {
  VkPhysicalDevice handle = VK_NULL_HANDLE;
  uint32_t index = 0;                     // position in vkEnumeratePhysicalDevices order
  VkPhysicalDeviceProperties props{};
  bool vulkan12 = false;                  // device API >= 1.2: the structs below are filled
  VkPhysicalDeviceVulkan11Properties props11{};
  VkPhysicalDeviceVulkan12Properties props12{};
  VkPhysicalDeviceFeatures features{};
  VkPhysicalDeviceVulkan11Features features11{};
  VkPhysicalDeviceVulkan12Features features12{};
  bool has_subgroup_size_control = false;  // VK_EXT_subgroup_size_control (core in 1.3)
  VkPhysicalDeviceSubgroupSizeControlPropertiesEXT subgroup_size_control{};
  VkPhysicalDeviceSubgroupSizeControlFeaturesEXT subgroup_size_control_features{};
  bool has_push_descriptor = false;       // VK_KHR_push_descriptor
  VkPhysicalDevicePushDescriptorPropertiesKHR push_descriptor{};
  VkPhysicalDeviceMemoryProperties memory{};
  std::vector<VkQueueFamilyProperties> queue_families;
  std::vector<std::string> extensions;

  std::string name() const { return props.deviceName; }
  bool has_extension(std::string_view name) const;
};

DeviceInfo query_device_info(VkPhysicalDevice device, uint32_t index);

const char* device_type_name(VkPhysicalDeviceType type);
std::string api_version_string(uint32_t version);

}  // namespace megrez
