#pragma once
// Asynchronous expert uploads for streaming mode: a worker thread reads experts from the
// memory-mapped model file into device slots and signals a timeline semaphore that the
// compute queue's MoE submissions wait on. Two paths (design.md "Queue fallbacks"):
//   Queue     the worker copies each expert into a host-visible staging buffer and records
//             vkCmdCopyBuffer into its slot on the context's transfer queue: a dedicated
//             transfer family, another family, a second compute queue, or the compute queue
//             itself (Context::transfer_kind()). Buffers are shared CONCURRENTly between the
//             families (Context), so no ownership transfer is needed.
//   HostCopy  unified memory (phones, lavapipe): the slots are mapped, so the worker copies
//             straight from the file into them, no command buffers and no Vulkan calls;
//             enqueue() first waits on the host for compute work still reading those slots,
//             and completion is reported on the host (wait_done()).
// Storage reads can be throttled to a bandwidth (StorageThrottle) to model phone flash or PCIe.
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "runtime/vk/commands.h"
#include "runtime/vk/memory.h"

namespace megrez {

enum class ExpertUploadPath { Queue, HostCopy };
const char* expert_upload_path_name(ExpertUploadPath path);  // "queue", "host"
// HostCopy where every device-local memory type is host-visible (unified memory), else Queue.
ExpertUploadPath default_expert_upload_path(const Context& ctx);
// One line for reports: "host copy into mapped device memory" / "transfer queue (dedicated family 1)".
std::string describe_expert_upload_path(const Context& ctx, ExpertUploadPath path);

// Paces reads to a storage bandwidth: each read of n bytes ends no earlier than n / bandwidth
// after the previous one ended (or after it started, when the reader was idle).
class StorageThrottle {
 public:
  explicit StorageThrottle(double bytes_per_second = 0) : bytes_per_second_(bytes_per_second) {}
  // memcpy, then sleeps until the modelled storage would have delivered the bytes.
  void copy(void* dst, const void* src, size_t bytes);
  double bytes_per_second() const { return bytes_per_second_; }

 private:
  using Clock = std::chrono::steady_clock;
  double bytes_per_second_;
  Clock::time_point ready_{};
};

// One expert into one slot: up to three byte ranges of the file at offsets inside the slot.
struct SlotUpload {
  BufferRange slot;                                  // the whole slot
  std::array<std::span<const uint8_t>, 3> sources;   // gate, up, down in the file
  std::array<uint32_t, 3> offsets{};                 // where each goes inside the slot
  uint64_t bytes() const { return sources[0].size() + sources[1].size() + sources[2].size(); }
};

class ExpertUploader {
 public:
  // compute: the compute queue's timeline (what uploads wait for before overwriting slots).
  // staging_bytes: the Queue path's staging buffer (at least one slot).
  ExpertUploader(Context& ctx, ExpertUploadPath path, const TimelineSemaphore& compute, uint64_t staging_bytes,
                 double storage_bytes_per_second);
  ~ExpertUploader();
  ExpertUploader(const ExpertUploader&) = delete;
  ExpertUploader& operator=(const ExpertUploader&) = delete;

  // Queues `uploads` to start once the compute timeline reaches `wait_compute` (HostCopy:
  // waits for it before returning). Returns the value that wait_done() and, on the Queue path,
  // done() reach at their completion. Rethrows a failure of an earlier job.
  uint64_t enqueue(std::vector<SlotUpload> uploads, uint64_t wait_compute);
  // Blocks until the job of `value` has been submitted to its queue (a compute submission
  // that waits for it may only be made after that when both share one VkQueue).
  void wait_submitted(uint64_t value);
  // Blocks until the job of `value` completed (its bytes are in the slots).
  void wait_done(uint64_t value);
  // Rethrows the failure of a job that nobody has waited for yet (the last uploads of a pass
  // are waited for by the GPU only).
  void check();
  // Drops the jobs not started yet and marks them complete (done() and wait_done() reach their
  // values, nothing waits for copies that will never be made), after the job in progress
  // finished; forgets a failure. For a pass that failed, and for destruction.
  void cancel();
  // True when a compute submission waiting on done() must wait_submitted() first.
  bool shares_compute_queue() const;
  // Queue path: the transfer timeline the compute submissions wait on. (The HostCopy path
  // completes on the host; its completion is only observable through wait_done(), so the
  // worker thread makes no Vulkan calls there.)
  const TimelineSemaphore& done() const { return done_; }
  ExpertUploadPath path() const { return path_; }

 private:
  struct Job {
    std::vector<SlotUpload> uploads;
    uint64_t wait_compute = 0, value = 0;
  };
  void run();
  void host_copy(const Job& job);
  void queue_copy(const Job& job);
  void rethrow_failure();

  Context& ctx_;
  ExpertUploadPath path_;
  const TimelineSemaphore& compute_;
  TimelineSemaphore done_;
  StorageThrottle throttle_;
  std::unique_ptr<Arena> staging_arena_;
  BufferRange staging_;
  std::unique_ptr<CommandBuffer> cmd_;

  std::mutex mutex_;
  std::condition_variable wake_, submitted_cv_;
  std::deque<Job> jobs_;
  uint64_t next_value_ = 0, submitted_ = 0, copied_ = 0;  // copied_: HostCopy jobs finished
  bool stop_ = false, busy_ = false;  // busy_: the worker holds a job
  std::exception_ptr failure_;
  std::thread worker_;  // last: starts after everything above exists
};

}  // namespace megrez
