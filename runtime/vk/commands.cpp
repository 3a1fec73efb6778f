#include "runtime/vk/commands.h"

#include "runtime/vk/fault_injection.h"

namespace megrez {

namespace {

uint64_t timeout_ns(const Context& ctx) {
  return static_cast<uint64_t>(std::chrono::nanoseconds(ctx.options().gpu_timeout).count());
}

[[noreturn]] void throw_timeout(const Context& ctx, const char* what) {
  throw Error(std::string(what) + " did not complete within " +
              std::to_string(ctx.options().gpu_timeout.count()) +
              " ms (GPU hang, or a wait on a value nothing signals)");
}

}  // namespace

// ---------------------------------------------------------------------------------------
// TimelineSemaphore
// ---------------------------------------------------------------------------------------

TimelineSemaphore::TimelineSemaphore(Context& ctx, uint64_t initial_value) : ctx_(ctx) {
  auto type = vk_struct<VkSemaphoreTypeCreateInfo>(VK_STRUCTURE_TYPE_SEMAPHORE_TYPE_CREATE_INFO);
  type.semaphoreType = VK_SEMAPHORE_TYPE_TIMELINE;
  type.initialValue = initial_value;
  auto info = vk_struct<VkSemaphoreCreateInfo>(VK_STRUCTURE_TYPE_SEMAPHORE_CREATE_INFO);
  info.pNext = &type;
  vk_check(vkCreateSemaphore(ctx.device(), &info, nullptr, &semaphore_), "vkCreateSemaphore");
}

TimelineSemaphore::~TimelineSemaphore() { vkDestroySemaphore(ctx_.device(), semaphore_, nullptr); }

uint64_t TimelineSemaphore::value() const {
  uint64_t value = 0;
  vk_check(vkGetSemaphoreCounterValue(ctx_.device(), semaphore_, &value), "vkGetSemaphoreCounterValue");
  return value;
}

void TimelineSemaphore::signal(uint64_t value) {
  auto info = vk_struct<VkSemaphoreSignalInfo>(VK_STRUCTURE_TYPE_SEMAPHORE_SIGNAL_INFO);
  info.semaphore = semaphore_;
  info.value = value;
  vk_check(vkSignalSemaphore(ctx_.device(), &info), "vkSignalSemaphore");
}

void TimelineSemaphore::wait(uint64_t value) const {
  auto info = vk_struct<VkSemaphoreWaitInfo>(VK_STRUCTURE_TYPE_SEMAPHORE_WAIT_INFO);
  info.semaphoreCount = 1;
  info.pSemaphores = &semaphore_;
  info.pValues = &value;
  VkResult result = vkWaitSemaphores(ctx_.device(), &info, timeout_ns(ctx_));
  if (result == VK_TIMEOUT) throw_timeout(ctx_, ("timeline semaphore value " + std::to_string(value)).c_str());
  vk_check(result, "vkWaitSemaphores");
}

// ---------------------------------------------------------------------------------------
// CommandBuffer
// ---------------------------------------------------------------------------------------

CommandBuffer::CommandBuffer(Context& ctx, QueueRole role) : ctx_(ctx), role_(role) {
  auto pool_info = vk_struct<VkCommandPoolCreateInfo>(VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO);
  pool_info.flags = VK_COMMAND_POOL_CREATE_TRANSIENT_BIT;
  pool_info.queueFamilyIndex = ctx.queue(role).family;
  vk_check(vkCreateCommandPool(ctx.device(), &pool_info, nullptr, &pool_), "vkCreateCommandPool");
  try {
    auto alloc = vk_struct<VkCommandBufferAllocateInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO);
    alloc.commandPool = pool_;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 1;
    vk_check(vkAllocateCommandBuffers(ctx.device(), &alloc, &cmd_), "vkAllocateCommandBuffers");
    auto fence_info = vk_struct<VkFenceCreateInfo>(VK_STRUCTURE_TYPE_FENCE_CREATE_INFO);
    vk_check(vkCreateFence(ctx.device(), &fence_info, nullptr, &fence_), "vkCreateFence");
  } catch (...) {
    vkDestroyCommandPool(ctx.device(), pool_, nullptr);
    throw;
  }
}

CommandBuffer::~CommandBuffer() {
  // No timeout here: after wait() reported a slow pass as a hang, the GPU may still be
  // executing this buffer, and freeing its pool under it crashes (seen on lavapipe). A lost
  // device makes the wait return with an error instead of blocking.
  if (pending_) vkWaitForFences(ctx_.device(), 1, &fence_, VK_TRUE, UINT64_MAX);
  for (VkDescriptorPool p : descriptor_pools_) vkDestroyDescriptorPool(ctx_.device(), p, nullptr);
  vkDestroyFence(ctx_.device(), fence_, nullptr);
  vkDestroyCommandPool(ctx_.device(), pool_, nullptr);  // frees cmd_
}

VkCommandBuffer CommandBuffer::begin() {
  // A recording still open was abandoned by an exception thrown while it was recorded: the
  // pool reset below discards it (a recording command buffer is never pending).
  recording_ = false;
  wait();
  vk_check(vkResetCommandPool(ctx_.device(), pool_, 0), "vkResetCommandPool");
  for (VkDescriptorPool p : descriptor_pools_) {
    vk_check(vkResetDescriptorPool(ctx_.device(), p, 0), "vkResetDescriptorPool");
  }
  current_descriptor_pool_ = 0;
  auto info = vk_struct<VkCommandBufferBeginInfo>(VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO);
  info.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  vk_check(vkBeginCommandBuffer(cmd_, &info), "vkBeginCommandBuffer");
  recording_ = true;
  return cmd_;
}

RecordCounts& record_counts() {
  thread_local RecordCounts counts;
  return counts;
}

void CommandBuffer::submit(const std::vector<SemaphoreWait>& waits, const std::vector<SemaphoreSignal>& signals) {
  if (!recording_) throw Error("CommandBuffer::submit: begin() was not called");
  ++record_counts().submissions;
  recording_ = false;
  vk_check(vkEndCommandBuffer(cmd_), "vkEndCommandBuffer");

  std::vector<VkSemaphore> wait_semaphores, signal_semaphores;
  std::vector<uint64_t> wait_values, signal_values;
  std::vector<VkPipelineStageFlags> wait_stages;
  for (const SemaphoreWait& w : waits) {
    wait_semaphores.push_back(w.semaphore->handle());
    wait_values.push_back(w.value);
    wait_stages.push_back(w.stages);
  }
  for (const SemaphoreSignal& s : signals) {
    signal_semaphores.push_back(s.semaphore->handle());
    signal_values.push_back(s.value);
  }
  auto timeline = vk_struct<VkTimelineSemaphoreSubmitInfo>(VK_STRUCTURE_TYPE_TIMELINE_SEMAPHORE_SUBMIT_INFO);
  timeline.waitSemaphoreValueCount = static_cast<uint32_t>(wait_values.size());
  timeline.pWaitSemaphoreValues = wait_values.data();
  timeline.signalSemaphoreValueCount = static_cast<uint32_t>(signal_values.size());
  timeline.pSignalSemaphoreValues = signal_values.data();
  auto submit = vk_struct<VkSubmitInfo>(VK_STRUCTURE_TYPE_SUBMIT_INFO);
  submit.pNext = &timeline;
  submit.waitSemaphoreCount = static_cast<uint32_t>(wait_semaphores.size());
  submit.pWaitSemaphores = wait_semaphores.data();
  submit.pWaitDstStageMask = wait_stages.data();
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &cmd_;
  submit.signalSemaphoreCount = static_cast<uint32_t>(signal_semaphores.size());
  submit.pSignalSemaphores = signal_semaphores.data();
  fault_point(FaultPoint::Submit);
  vk_check(vkResetFences(ctx_.device(), 1, &fence_), "vkResetFences");
  ctx_.submit(role_, submit, fence_);
  pending_ = true;
}

void CommandBuffer::wait() {
  if (!pending_) return;
  VkResult result = vkWaitForFences(ctx_.device(), 1, &fence_, VK_TRUE, timeout_ns(ctx_));
  if (result == VK_TIMEOUT) throw_timeout(ctx_, "command buffer");
  vk_check(result, "vkWaitForFences");
  pending_ = false;
}

void CommandBuffer::add_descriptor_pool() {
  // Sized for a typical forward pass worth of dispatches; more pools are added on demand.
  constexpr uint32_t kSets = 256;
  // Up to 8 descriptors of either type per set (matmul_<fmt>_rows_ubo binds 8 uniform buffers).
  const VkDescriptorPoolSize sizes[] = {{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, kSets * 8},
                                        {VK_DESCRIPTOR_TYPE_UNIFORM_BUFFER, kSets * 8}};
  auto info = vk_struct<VkDescriptorPoolCreateInfo>(VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO);
  info.maxSets = kSets;
  info.poolSizeCount = 2;
  info.pPoolSizes = sizes;
  VkDescriptorPool pool = VK_NULL_HANDLE;
  vk_check(vkCreateDescriptorPool(ctx_.device(), &info, nullptr, &pool), "vkCreateDescriptorPool");
  descriptor_pools_.push_back(pool);
}

VkDescriptorSet CommandBuffer::allocate_descriptor_set(VkDescriptorSetLayout layout) {
  auto info = vk_struct<VkDescriptorSetAllocateInfo>(VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO);
  info.descriptorSetCount = 1;
  info.pSetLayouts = &layout;
  VkDescriptorSet set = VK_NULL_HANDLE;
  while (true) {
    const bool fresh = current_descriptor_pool_ == descriptor_pools_.size();
    if (fresh) add_descriptor_pool();
    info.descriptorPool = descriptor_pools_[current_descriptor_pool_];
    VkResult result = vkAllocateDescriptorSets(ctx_.device(), &info, &set);
    if (result == VK_SUCCESS) return set;
    if (fresh || (result != VK_ERROR_OUT_OF_POOL_MEMORY && result != VK_ERROR_FRAGMENTED_POOL)) {
      vk_check(result, "vkAllocateDescriptorSets");
    }
    ++current_descriptor_pool_;  // this pool is full: move on (a fresh one on the next loop)
  }
}

}  // namespace megrez
