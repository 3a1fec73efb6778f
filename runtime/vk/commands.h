#pragma once
// Recording and submitting work: a CommandBuffer (own pool, fence and descriptor pools, so
// threads never share one) and TimelineSemaphore (Vulkan 1.2 core) for ordering between the
// compute and transfer queues and the host.
#include <chrono>
#include <span>
#include <vector>

#include "runtime/vk/context.h"

namespace megrez {

// What this thread has recorded and submitted so far: kernel dispatches, pipeline barriers and
// queue submissions. The engine takes the difference over a pass (megrez-bench prints them per
// decoded token: what fusing kernels or cutting fewer submissions would save).
struct RecordCounts {
  uint64_t dispatches = 0, barriers = 0, submissions = 0;
};
RecordCounts& record_counts();  // this thread's

class TimelineSemaphore {
 public:
  explicit TimelineSemaphore(Context& ctx, uint64_t initial_value = 0);
  ~TimelineSemaphore();
  TimelineSemaphore(const TimelineSemaphore&) = delete;
  TimelineSemaphore& operator=(const TimelineSemaphore&) = delete;

  VkSemaphore handle() const { return semaphore_; }
  uint64_t value() const;            // current counter
  void signal(uint64_t value);       // from the host
  // Blocks until the counter reaches `value`; megrez::Error after the context's gpu_timeout.
  void wait(uint64_t value) const;

 private:
  Context& ctx_;
  VkSemaphore semaphore_ = VK_NULL_HANDLE;
};

struct SemaphoreWait {
  const TimelineSemaphore* semaphore;
  uint64_t value;
  VkPipelineStageFlags stages = VK_PIPELINE_STAGE_ALL_COMMANDS_BIT;  // what waits
};

struct SemaphoreSignal {
  const TimelineSemaphore* semaphore;
  uint64_t value;
};

class CommandBuffer {
 public:
  explicit CommandBuffer(Context& ctx, QueueRole role = QueueRole::Compute);
  ~CommandBuffer();  // waits for its submission first
  CommandBuffer(const CommandBuffer&) = delete;
  CommandBuffer& operator=(const CommandBuffer&) = delete;

  // Waits for the previous submission, resets, starts recording (one-time submit). A
  // recording an exception left unfinished is discarded.
  VkCommandBuffer begin();
  // Ends recording and submits to the role's queue.
  void submit(const std::vector<SemaphoreWait>& waits = {}, const std::vector<SemaphoreSignal>& signals = {});
  // Blocks until the last submission finished; megrez::Error after gpu_timeout.
  void wait();
  void submit_and_wait() {
    submit();
    wait();
  }

  VkCommandBuffer handle() const { return cmd_; }
  Context& context() const { return ctx_; }
  QueueRole role() const { return role_; }
  bool recording() const { return recording_; }

  // For dispatch() on devices without push descriptors: a set that lives until the next begin().
  VkDescriptorSet allocate_descriptor_set(VkDescriptorSetLayout layout);

 private:
  void add_descriptor_pool();

  Context& ctx_;
  QueueRole role_;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  VkCommandBuffer cmd_ = VK_NULL_HANDLE;
  VkFence fence_ = VK_NULL_HANDLE;
  bool recording_ = false;
  bool pending_ = false;
  std::vector<VkDescriptorPool> descriptor_pools_;
  size_t current_descriptor_pool_ = 0;
};

}  // namespace megrez
