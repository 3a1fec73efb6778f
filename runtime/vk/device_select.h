#pragma once
// Physical-device choice: discrete > integrated > virtual > CPU, or the user's pick by index
// or name substring. Devices without Vulkan 1.2 + timeline semaphores cannot run megrez.
#include <functional>
#include <string>
#include <vector>

#include "runtime/vk/device_info.h"

namespace megrez {

std::vector<DeviceInfo> enumerate_devices(VkInstance instance);

// A caller's further requirement: "" when the device meets it, else why not.
using DeviceRequirement = std::function<std::string(const DeviceInfo&)>;

// Empty selector: the best usable device. Throws megrez::Error listing the devices when the
// selector matches nothing usable (that also meets `requirement`, when given).
DeviceInfo select_device(VkInstance instance, const std::string& selector, const DeviceRequirement& requirement = {});

// "" when usable, else why not.
std::string unusable_reason(const DeviceInfo& info);

std::string describe_device(const DeviceInfo& info);  // one line, as list_devices() prints

}  // namespace megrez
