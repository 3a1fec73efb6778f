#include "runtime/vk/device_select.h"

#include <algorithm>
#include <cctype>

namespace megrez {

std::vector<DeviceInfo> enumerate_devices(VkInstance instance) {
  uint32_t count = 0;
  vk_check(vkEnumeratePhysicalDevices(instance, &count, nullptr), "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> handles(count);
  vk_check(vkEnumeratePhysicalDevices(instance, &count, handles.data()), "vkEnumeratePhysicalDevices");
  std::vector<DeviceInfo> devices;
  for (uint32_t i = 0; i < count; ++i) devices.push_back(query_device_info(handles[i], i));
  return devices;
}

std::string unusable_reason(const DeviceInfo& info) {
  if (!info.vulkan12) return "needs Vulkan 1.2, device has " + api_version_string(info.props.apiVersion);
  if (!info.features12.timelineSemaphore) return "no timeline semaphores";
  for (const auto& family : info.queue_families) {
    if (family.queueFlags & VK_QUEUE_COMPUTE_BIT) return "";
  }
  return "no compute queue";
}

std::string describe_device(const DeviceInfo& info) {
  std::string line = std::to_string(info.index) + ": " + info.name() + " [" +
                     device_type_name(info.props.deviceType) + ", Vulkan " +
                     api_version_string(info.props.apiVersion) + "]";
  std::string reason = unusable_reason(info);
  if (!reason.empty()) line += " (unusable: " + reason + ")";
  return line;
}

static int type_rank(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
  }
}

static std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

static std::string device_list(const std::vector<DeviceInfo>& devices) {
  std::string text;
  for (const auto& d : devices) text += "\n  " + describe_device(d);
  return devices.empty() ? std::string(" (none: is a Vulkan driver installed?)") : text;
}

DeviceInfo select_device(VkInstance instance, const std::string& selector, const DeviceRequirement& requirement) {
  std::vector<DeviceInfo> devices = enumerate_devices(instance);
  auto reason_not = [&](const DeviceInfo& d) {
    std::string reason = unusable_reason(d);
    if (reason.empty() && requirement) reason = requirement(d);
    return reason;
  };
  const bool by_index = !selector.empty() &&
      std::all_of(selector.begin(), selector.end(), [](unsigned char c) { return std::isdigit(c); });
  if (by_index) {
    size_t index = selector.size() > 9 ? devices.size() : std::stoul(selector);
    if (index >= devices.size()) {
      throw Error("device index " + selector + " out of range; devices:" + device_list(devices));
    }
    std::string reason = reason_not(devices[index]);
    if (!reason.empty()) throw Error("device " + describe_device(devices[index]) + " cannot be used: " + reason);
    return devices[index];
  }
  std::vector<const DeviceInfo*> candidates;
  for (const auto& d : devices) {
    if (selector.empty() || lower(d.name()).find(lower(selector)) != std::string::npos) {
      candidates.push_back(&d);
    }
  }
  std::stable_sort(candidates.begin(), candidates.end(), [](const DeviceInfo* a, const DeviceInfo* b) {
    return type_rank(a->props.deviceType) < type_rank(b->props.deviceType);
  });
  for (const DeviceInfo* d : candidates) {
    if (reason_not(*d).empty()) return *d;
  }
  std::string listed = device_list(devices);
  if (requirement) {  // say why each otherwise usable device was passed over
    listed.clear();
    for (const auto& d : devices) {
      const std::string why = unusable_reason(d).empty() ? reason_not(d) : "";
      listed += "\n  " + describe_device(d) + (why.empty() ? "" : " (" + why + ")");
    }
    if (devices.empty()) listed = device_list(devices);
  }
  if (selector.empty()) throw Error("no Vulkan device can run megrez here; devices:" + listed);
  throw Error("no usable device matches '" + selector + "'; devices:" + listed);
}

}  // namespace megrez
