#pragma once
// Context: the Vulkan instance (validation optional), the chosen physical device, the logical
// device with its compute (and transfer) queue, the capped DeviceCaps, and the per-device
// services every kernel uses: the pipeline registry and the blocking upload/download helper.
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/vk/device_caps.h"
#include "runtime/vk/device_info.h"
#include "runtime/vk/vk_check.h"

namespace megrez {

class PipelineRegistry;
struct Pipeline;
struct Specialization;
class BlockingTransfers;
class ValidationLog;

struct ContextOptions {
  // Khronos validation layer. nullopt: on when the environment has MEGREZ_VALIDATION=1.
  // Requested but not installed -> megrez::Error (install vulkan-validationlayers).
  std::optional<bool> validation;
  bool sync_validation = true;       // with validation: synchronization validation too
  bool print_validation = true;      // echo validation messages to stderr as they arrive
  // Device: index (as --list-devices prints) or case-insensitive name substring.
  // Empty: MEGREZ_DEVICE from the environment, else the best (discrete > integrated > virtual > CPU).
  std::string device;
  // Device profile capping DeviceCaps: built-in name or .json path. Empty: MEGREZ_PROFILE.
  std::string profile;
  // Pipeline cache file. Empty: MEGREZ_PIPELINE_CACHE, else
  // $XDG_CACHE_HOME or ~/.cache /megrez/pipeline-cache-<vendor>-<device>-<driver>.bin.
  // "off": no cache file.
  std::string pipeline_cache;
  // Longest a host wait on the GPU may take before it is reported as a hang.
  std::chrono::milliseconds gpu_timeout{std::chrono::seconds(120)};
  // A window to present to, from the same instance and device as the engine (the chat GUI):
  // the window system's instance extensions, and whether a queue family of a device can
  // present to it. With can_present set, only a device whose compute queue family also does
  // graphics and can present is chosen, and VK_KHR_swapchain is enabled.
  std::vector<std::string> instance_extensions;
  std::function<bool(VkInstance, VkPhysicalDevice, uint32_t family)> can_present;
};

enum class QueueRole { Compute, Transfer };

// How the transfer queue was found (design.md "Queue fallbacks").
enum class TransferQueueKind {
  DedicatedFamily,     // a transfer-only family (copy engine)
  OtherFamily,         // another family that can transfer
  SecondComputeQueue,  // a second queue of the compute family
  SharedWithCompute,   // no second queue: transfers go to the compute queue
};
const char* transfer_queue_kind_name(TransferQueueKind kind);

struct QueueInfo {
  uint32_t family = 0;
  uint32_t index = 0;
  VkQueue queue = VK_NULL_HANDLE;
};

class Context {
 public:
  explicit Context(const ContextOptions& options = {});
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  VkInstance instance() const { return instance_; }
  VkPhysicalDevice physical_device() const { return info_.handle; }
  VkDevice device() const { return device_; }
  const DeviceInfo& info() const { return info_; }
  const DeviceCaps& caps() const { return caps_; }
  const ContextOptions& options() const { return options_; }

  const QueueInfo& queue(QueueRole role) const;
  TransferQueueKind transfer_kind() const { return transfer_kind_; }
  // True when the transfer queue is a different VkQueue from the compute queue.
  bool has_separate_transfer_queue() const { return transfer_.queue != compute_.queue; }
  // Distinct queue families in use; buffers are shared CONCURRENTly between them.
  const std::vector<uint32_t>& queue_families() const { return families_; }

  // vkQueueSubmit under the queue's lock (queues are externally synchronized and the compute
  // and transfer roles may share one VkQueue).
  void submit(QueueRole role, const VkSubmitInfo& submit, VkFence fence);
  void wait_idle();
  // A window (options().can_present): vkQueuePresentKHR on the compute queue, under its lock.
  // Returns the result (VK_ERROR_OUT_OF_DATE_KHR and VK_SUBOPTIMAL_KHR ask for a new swapchain).
  VkResult present(const VkPresentInfoKHR& info);
  // Runs `body` with every queue locked: for calls that need all queues externally
  // synchronized, like a vkDeviceWaitIdle inside a swapchain rebuild.
  void with_queues_locked(const std::function<void()>& body);

  // Validation layer state. Counts warnings and errors of the validation/performance kinds.
  bool validation_enabled() const;
  uint32_t validation_message_count() const;
  std::vector<std::string> validation_messages() const;

  PipelineRegistry& pipelines() { return *pipelines_; }
  const Pipeline& pipeline(std::string_view name);
  const Pipeline& pipeline(std::string_view name, const Specialization& spec);
  BlockingTransfers& blocking_transfers();

 private:
  void create_instance(bool validation);
  void create_device();
  void release();

  ContextOptions options_;
  std::unique_ptr<ValidationLog> validation_;
  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  DeviceInfo info_;
  DeviceCaps caps_;
  VkDevice device_ = VK_NULL_HANDLE;
  QueueInfo compute_, transfer_;
  TransferQueueKind transfer_kind_ = TransferQueueKind::SharedWithCompute;
  std::vector<uint32_t> families_;
  std::mutex compute_mutex_, transfer_mutex_;
  std::unique_ptr<PipelineRegistry> pipelines_;
  std::mutex transfers_mutex_;
  std::unique_ptr<BlockingTransfers> transfers_;
};

// One line per device ("0: llvmpipe (LLVM 15.0.6, 256 bits) [CPU, Vulkan 1.3.230]"), in the
// order --device N indexes them.
std::vector<std::string> list_devices();
// The same devices' facts, through an instance of its own (their VkPhysicalDevice is null).
std::vector<DeviceInfo> query_devices();

}  // namespace megrez
