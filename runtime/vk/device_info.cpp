#include "runtime/vk/device_info.h"

#include <algorithm>

namespace megrez {

bool DeviceInfo::has_extension(std::string_view name) const {
  return std::find(extensions.begin(), extensions.end(), name) != extensions.end();
}

static std::vector<std::string> device_extensions(VkPhysicalDevice device) {
  uint32_t count = 0;
  vk_check(vkEnumerateDeviceExtensionProperties(device, nullptr, &count, nullptr),
           "vkEnumerateDeviceExtensionProperties");
  std::vector<VkExtensionProperties> props(count);
  vk_check(vkEnumerateDeviceExtensionProperties(device, nullptr, &count, props.data()),
           "vkEnumerateDeviceExtensionProperties");
  std::vector<std::string> names;
  for (uint32_t i = 0; i < count; ++i) names.emplace_back(props[i].extensionName);
  return names;
}

// The 1.1/1.2 structs may only be chained when the device speaks 1.2 (our instance asks for
// 1.2), and extension structs only when the device has the extension; anything else is a
// validation error.
static void query_chained(DeviceInfo& info) {
  info.props11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES;
  info.props12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES;
  info.subgroup_size_control.sType =
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_PROPERTIES_EXT;
  info.push_descriptor.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PUSH_DESCRIPTOR_PROPERTIES_KHR;
  auto props2 = vk_struct<VkPhysicalDeviceProperties2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2);
  props2.pNext = &info.props11;
  info.props11.pNext = &info.props12;
  void** tail = &info.props12.pNext;
  if (info.has_subgroup_size_control) {
    *tail = &info.subgroup_size_control;
    tail = &info.subgroup_size_control.pNext;
  }
  if (info.has_push_descriptor) *tail = &info.push_descriptor;
  vkGetPhysicalDeviceProperties2(info.handle, &props2);

  info.features11.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES;
  info.features12.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES;
  info.subgroup_size_control_features.sType =
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_SIZE_CONTROL_FEATURES_EXT;
  auto features2 = vk_struct<VkPhysicalDeviceFeatures2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2);
  features2.pNext = &info.features11;
  info.features11.pNext = &info.features12;
  if (info.has_subgroup_size_control) info.features12.pNext = &info.subgroup_size_control_features;
  vkGetPhysicalDeviceFeatures2(info.handle, &features2);
  info.features = features2.features;

  // The copies must not point into this function's chain.
  info.props11.pNext = info.props12.pNext = info.subgroup_size_control.pNext = nullptr;
  info.push_descriptor.pNext = nullptr;
  info.features11.pNext = info.features12.pNext = info.subgroup_size_control_features.pNext = nullptr;
}

DeviceInfo query_device_info(VkPhysicalDevice device, uint32_t index) {
  DeviceInfo info;
  info.handle = device;
  info.index = index;
  vkGetPhysicalDeviceProperties(device, &info.props);
  vkGetPhysicalDeviceMemoryProperties(device, &info.memory);
  uint32_t family_count = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(device, &family_count, nullptr);
  info.queue_families.resize(family_count);
  vkGetPhysicalDeviceQueueFamilyProperties(device, &family_count, info.queue_families.data());
  info.extensions = device_extensions(device);
  info.vulkan12 = info.props.apiVersion >= VK_API_VERSION_1_2;
  if (info.vulkan12) {
    info.has_subgroup_size_control = info.has_extension("VK_EXT_subgroup_size_control");
    info.has_push_descriptor = info.has_extension("VK_KHR_push_descriptor");
    query_chained(info);
  } else {
    vkGetPhysicalDeviceFeatures(device, &info.features);
  }
  return info;
}

const char* device_type_name(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU";
    default: return "other";
  }
}

std::string api_version_string(uint32_t version) {
  return std::to_string(VK_API_VERSION_MAJOR(version)) + "." +
         std::to_string(VK_API_VERSION_MINOR(version)) + "." +
         std::to_string(VK_API_VERSION_PATCH(version));
}

}  // namespace megrez
