#include "runtime/vk/context.h"

#include <cstdlib>
#include <cstring>

#include "runtime/vk/blocking_transfers.h"
#include "runtime/vk/device_select.h"
#include "runtime/vk/pipelines.h"
#include "runtime/vk/validation.h"

namespace megrez {

namespace {

constexpr const char* kValidationLayer = "VK_LAYER_KHRONOS_validation";

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::string(value) : fallback;
}

// volk resolves vkGetInstanceProcAddr from libvulkan.so.1 at run time (never linked).
void load_vulkan() {
  static const VkResult result = volkInitialize();
  if (result != VK_SUCCESS) {
    throw Error("cannot load the Vulkan loader (libvulkan.so.1): install libvulkan1 and a driver "
                "(e.g. mesa-vulkan-drivers)");
  }
  if (volkGetInstanceVersion() < VK_API_VERSION_1_2) {
    throw Error("the Vulkan loader is version " + api_version_string(volkGetInstanceVersion()) +
                "; megrez needs 1.2");
  }
}

bool has_layer(const char* name) {
  uint32_t count = 0;
  vk_check(vkEnumerateInstanceLayerProperties(&count, nullptr), "vkEnumerateInstanceLayerProperties");
  std::vector<VkLayerProperties> layers(count);
  vk_check(vkEnumerateInstanceLayerProperties(&count, layers.data()), "vkEnumerateInstanceLayerProperties");
  for (const auto& layer : layers) {
    if (std::strcmp(layer.layerName, name) == 0) return true;
  }
  return false;
}

bool has_instance_extension(const char* layer, const char* name) {
  uint32_t count = 0;
  vk_check(vkEnumerateInstanceExtensionProperties(layer, &count, nullptr),
           "vkEnumerateInstanceExtensionProperties");
  std::vector<VkExtensionProperties> extensions(count);
  vk_check(vkEnumerateInstanceExtensionProperties(layer, &count, extensions.data()),
           "vkEnumerateInstanceExtensionProperties");
  for (const auto& e : extensions) {
    if (std::strcmp(e.extensionName, name) == 0) return true;
  }
  return false;
}

VkInstance create_plain_instance(const void* next, const std::vector<const char*>& layers,
                                 const std::vector<const char*>& extensions) {
  auto app = vk_struct<VkApplicationInfo>(VK_STRUCTURE_TYPE_APPLICATION_INFO);
  app.pApplicationName = "megrez";
  app.pEngineName = "megrez";
  app.apiVersion = VK_API_VERSION_1_2;  // shaders are SPIR-V 1.5 for Vulkan 1.2
  auto info = vk_struct<VkInstanceCreateInfo>(VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO);
  info.pNext = next;
  info.pApplicationInfo = &app;
  info.enabledLayerCount = static_cast<uint32_t>(layers.size());
  info.ppEnabledLayerNames = layers.data();
  info.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  VkInstance instance = VK_NULL_HANDLE;
  vk_check(vkCreateInstance(&info, nullptr, &instance), "vkCreateInstance");
  // Device-level calls go through the loader's dispatch trampolines (volkLoadInstance), not
  // volkLoadDevice: volk's globals are process-wide, and tests hold several Contexts (other
  // profiles, validation settings) at once. The trampoline costs one indirect jump per call.
  volkLoadInstance(instance);
  return instance;
}

// Queue plan: compute family first, then the transfer queue by the fallback order.
struct QueuePlan {
  uint32_t compute_family = 0;
  uint32_t transfer_family = 0;
  uint32_t transfer_index = 0;
  TransferQueueKind kind = TransferQueueKind::SharedWithCompute;
};

QueuePlan plan_queues(const DeviceInfo& info) {
  const auto& families = info.queue_families;
  QueuePlan plan;
  for (uint32_t f = 0; f < families.size(); ++f) {
    if (families[f].queueFlags & VK_QUEUE_COMPUTE_BIT) {
      plan.compute_family = f;
      break;
    }
  }
  plan.transfer_family = plan.compute_family;
  const VkQueueFlags can_transfer = VK_QUEUE_TRANSFER_BIT | VK_QUEUE_COMPUTE_BIT | VK_QUEUE_GRAPHICS_BIT;
  for (uint32_t f = 0; f < families.size(); ++f) {
    const VkQueueFlags flags = families[f].queueFlags;
    if ((flags & VK_QUEUE_TRANSFER_BIT) && !(flags & (VK_QUEUE_COMPUTE_BIT | VK_QUEUE_GRAPHICS_BIT))) {
      plan.transfer_family = f;
      plan.kind = TransferQueueKind::DedicatedFamily;
      return plan;
    }
  }
  for (uint32_t f = 0; f < families.size(); ++f) {
    if (f != plan.compute_family && (families[f].queueFlags & can_transfer)) {
      plan.transfer_family = f;
      plan.kind = TransferQueueKind::OtherFamily;
      return plan;
    }
  }
  if (families[plan.compute_family].queueCount >= 2) {
    plan.transfer_index = 1;
    plan.kind = TransferQueueKind::SecondComputeQueue;
  }
  return plan;
}

}  // namespace

const char* transfer_queue_kind_name(TransferQueueKind kind) {
  switch (kind) {
    case TransferQueueKind::DedicatedFamily: return "dedicated transfer family";
    case TransferQueueKind::OtherFamily: return "queue of another family";
    case TransferQueueKind::SecondComputeQueue: return "second queue of the compute family";
    case TransferQueueKind::SharedWithCompute: return "none: shares the compute queue";
  }
  return "?";
}

Context::Context(const ContextOptions& options) : options_(options) {
  load_vulkan();
  const bool validation = options.validation.value_or(env_or("MEGREZ_VALIDATION", "0") == "1");
  try {
    create_instance(validation);
    DeviceRequirement presents;
    if (options.can_present) {
      presents = [&](const DeviceInfo& d) -> std::string {
        const uint32_t family = plan_queues(d).compute_family;
        if (!(d.queue_families[family].queueFlags & VK_QUEUE_GRAPHICS_BIT)) return "its compute queue cannot draw";
        if (!options.can_present(instance_, d.handle, family)) return "cannot present to this window";
        return "";
      };
    }
    info_ = select_device(instance_, options.device.empty() ? env_or("MEGREZ_DEVICE", "") : options.device, presents);
    create_device();
    std::string cache = options.pipeline_cache.empty() ? env_or("MEGREZ_PIPELINE_CACHE", "")
                                                       : options.pipeline_cache;
    pipelines_ = std::make_unique<PipelineRegistry>(*this, cache);
  } catch (...) {
    release();  // a throwing constructor gets no destructor call
    throw;
  }
}

void Context::create_instance(bool validation) {
  std::vector<const char*> layers, extensions;
  VkDebugUtilsMessengerCreateInfoEXT messenger_info{};
  auto features = vk_struct<VkValidationFeaturesEXT>(VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT);
  const VkValidationFeatureEnableEXT sync = VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT;
  const void* next = nullptr;
  if (validation) {
    if (!has_layer(kValidationLayer)) {
      throw Error("Vulkan validation was requested (MEGREZ_VALIDATION=1 or --validation) but " +
                  std::string(kValidationLayer) + " is not installed: apt install vulkan-validationlayers");
    }
    if (!has_instance_extension(nullptr, VK_EXT_DEBUG_UTILS_EXTENSION_NAME) &&
        !has_instance_extension(kValidationLayer, VK_EXT_DEBUG_UTILS_EXTENSION_NAME)) {
      throw Error("Vulkan validation needs VK_EXT_debug_utils, which this loader lacks");
    }
    layers.push_back(kValidationLayer);
    extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
    validation_ = std::make_unique<ValidationLog>(options_.print_validation);
    // Chained into instance creation too, so messages from vkCreate/DestroyInstance count.
    messenger_info = ValidationLog::create_info(validation_.get());
    next = &messenger_info;
    if (options_.sync_validation) {
      if (!has_instance_extension(kValidationLayer, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME)) {
        throw Error("synchronization validation needs VK_EXT_validation_features from the validation layer");
      }
      extensions.push_back(VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
      features.enabledValidationFeatureCount = 1;
      features.pEnabledValidationFeatures = &sync;
      features.pNext = &messenger_info;
      next = &features;
    }
  }
  for (const std::string& name : options_.instance_extensions) {
    if (!has_instance_extension(nullptr, name.c_str())) {
      throw Error("the Vulkan loader lacks the instance extension " + name + " that the window needs");
    }
    extensions.push_back(name.c_str());
  }
  instance_ = create_plain_instance(next, layers, extensions);
  if (validation_) {
    vk_check(vkCreateDebugUtilsMessengerEXT(instance_, &messenger_info, nullptr, &messenger_),
             "vkCreateDebugUtilsMessengerEXT");
  }
}

void Context::create_device() {
  const QueuePlan plan = plan_queues(info_);
  caps_ = caps_from_device(info_, plan.compute_family);
  const std::string profile = options_.profile.empty() ? env_or("MEGREZ_PROFILE", "") : options_.profile;
  if (!profile.empty()) apply_profile(caps_, profile);

  const float priorities[2] = {1.0f, 1.0f};
  std::vector<VkDeviceQueueCreateInfo> queues;
  auto compute = vk_struct<VkDeviceQueueCreateInfo>(VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO);
  compute.queueFamilyIndex = plan.compute_family;
  compute.queueCount = plan.kind == TransferQueueKind::SecondComputeQueue ? 2 : 1;
  compute.pQueuePriorities = priorities;
  queues.push_back(compute);
  if (plan.transfer_family != plan.compute_family) {
    VkDeviceQueueCreateInfo transfer = compute;
    transfer.queueFamilyIndex = plan.transfer_family;
    transfer.queueCount = 1;
    queues.push_back(transfer);
  }

  // Enable exactly what the (capped) caps promise, so a kernel using a feature a profile
  // switched off is a validation error rather than a silent pass.
  auto features12 = vk_struct<VkPhysicalDeviceVulkan12Features>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES);
  features12.timelineSemaphore = VK_TRUE;
  features12.storageBuffer8BitAccess = caps_.storage_8bit;
  features12.shaderFloat16 = caps_.fp16_arithmetic;
  features12.shaderInt8 = caps_.int8_arithmetic;
  auto features11 = vk_struct<VkPhysicalDeviceVulkan11Features>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES);
  features11.storageBuffer16BitAccess = caps_.storage_16bit;
  features11.pNext = &features12;
  auto features = vk_struct<VkPhysicalDeviceFeatures2>(VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2);
  features.features.shaderInt16 = caps_.int16_arithmetic;
  features.pNext = &features11;

  std::vector<const char*> extensions;
  if (caps_.push_descriptors) extensions.push_back(VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
  if (options_.can_present) extensions.push_back(VK_KHR_SWAPCHAIN_EXTENSION_NAME);

  auto info = vk_struct<VkDeviceCreateInfo>(VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO);
  info.pNext = &features;
  info.queueCreateInfoCount = static_cast<uint32_t>(queues.size());
  info.pQueueCreateInfos = queues.data();
  info.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  info.ppEnabledExtensionNames = extensions.data();
  vk_check(vkCreateDevice(info_.handle, &info, nullptr, &device_), "vkCreateDevice");

  compute_ = {plan.compute_family, 0, VK_NULL_HANDLE};
  vkGetDeviceQueue(device_, compute_.family, 0, &compute_.queue);
  transfer_ = {plan.transfer_family, plan.transfer_index, VK_NULL_HANDLE};
  vkGetDeviceQueue(device_, transfer_.family, transfer_.index, &transfer_.queue);
  transfer_kind_ = plan.kind;
  families_ = {plan.compute_family};
  if (plan.transfer_family != plan.compute_family) families_.push_back(plan.transfer_family);
}

Context::~Context() { release(); }

void Context::release() {
  if (device_) vkDeviceWaitIdle(device_);
  transfers_.reset();
  pipelines_.reset();
  if (device_) vkDestroyDevice(device_, nullptr);
  device_ = VK_NULL_HANDLE;
  if (messenger_) vkDestroyDebugUtilsMessengerEXT(instance_, messenger_, nullptr);
  messenger_ = VK_NULL_HANDLE;
  if (instance_) vkDestroyInstance(instance_, nullptr);
  instance_ = VK_NULL_HANDLE;
}

const QueueInfo& Context::queue(QueueRole role) const {
  return role == QueueRole::Compute ? compute_ : transfer_;
}

void Context::submit(QueueRole role, const VkSubmitInfo& submit, VkFence fence) {
  const QueueInfo& q = queue(role);
  // One lock per VkQueue: when the roles share a queue they share the compute lock.
  std::mutex& lock = (role == QueueRole::Transfer && has_separate_transfer_queue()) ? transfer_mutex_
                                                                                   : compute_mutex_;
  std::lock_guard guard(lock);
  vk_check(vkQueueSubmit(q.queue, 1, &submit, fence), "vkQueueSubmit");
}

void Context::wait_idle() {
  std::scoped_lock guard(compute_mutex_, transfer_mutex_);
  vk_check(vkDeviceWaitIdle(device_), "vkDeviceWaitIdle");
}

VkResult Context::present(const VkPresentInfoKHR& info) {
  std::lock_guard guard(compute_mutex_);
  return vkQueuePresentKHR(compute_.queue, &info);
}

void Context::with_queues_locked(const std::function<void()>& body) {
  std::scoped_lock guard(compute_mutex_, transfer_mutex_);
  body();
}

bool Context::validation_enabled() const { return validation_ != nullptr; }
uint32_t Context::validation_message_count() const { return validation_ ? validation_->count() : 0; }
std::vector<std::string> Context::validation_messages() const {
  return validation_ ? validation_->messages() : std::vector<std::string>{};
}

const Pipeline& Context::pipeline(std::string_view name) { return pipelines_->get(name, Specialization{}); }
const Pipeline& Context::pipeline(std::string_view name, const Specialization& spec) {
  return pipelines_->get(name, spec);
}

BlockingTransfers& Context::blocking_transfers() {
  std::lock_guard guard(transfers_mutex_);
  if (!transfers_) transfers_ = std::make_unique<BlockingTransfers>(*this);
  return *transfers_;
}

std::vector<DeviceInfo> query_devices() {
  load_vulkan();
  VkInstance instance = create_plain_instance(nullptr, {}, {});
  std::vector<DeviceInfo> devices;
  try {
    devices = enumerate_devices(instance);
  } catch (...) {
    vkDestroyInstance(instance, nullptr);
    throw;
  }
  vkDestroyInstance(instance, nullptr);
  for (DeviceInfo& d : devices) d.handle = VK_NULL_HANDLE;  // gone with the instance
  return devices;
}

std::vector<std::string> list_devices() {
  std::vector<std::string> lines;
  for (const DeviceInfo& d : query_devices()) lines.push_back(describe_device(d));
  return lines;
}

}  // namespace megrez
