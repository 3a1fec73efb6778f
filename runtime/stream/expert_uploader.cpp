#include "runtime/stream/expert_uploader.h"

#include <algorithm>
#include <cstring>

#include "loader/error.h"
#include "runtime/vk/dispatch.h"
#include "runtime/vk/fault_injection.h"

namespace megrez {

const char* expert_upload_path_name(ExpertUploadPath path) {
  return path == ExpertUploadPath::HostCopy ? "host" : "queue";
}

ExpertUploadPath default_expert_upload_path(const Context& ctx) {
  const VkPhysicalDeviceMemoryProperties& memory = ctx.info().memory;
  bool any_device_local = false;
  for (uint32_t t = 0; t < memory.memoryTypeCount; ++t) {
    const VkMemoryPropertyFlags flags = memory.memoryTypes[t].propertyFlags;
    if (!(flags & VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT)) continue;
    any_device_local = true;
    if (!(flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)) return ExpertUploadPath::Queue;
  }
  return any_device_local ? ExpertUploadPath::HostCopy : ExpertUploadPath::Queue;
}

std::string describe_expert_upload_path(const Context& ctx, ExpertUploadPath path) {
  if (path == ExpertUploadPath::HostCopy) return "host worker copying into mapped device memory (unified memory)";
  const QueueInfo& q = ctx.queue(QueueRole::Transfer);
  return std::string("copies on the transfer queue: ") + transfer_queue_kind_name(ctx.transfer_kind()) +
         " (family " + std::to_string(q.family) + ", queue " + std::to_string(q.index) + ")";
}

// ---- StorageThrottle ----------------------------------------------------------------------

void StorageThrottle::copy(void* dst, const void* src, size_t bytes) {
  const Clock::time_point start = Clock::now();
  std::memcpy(dst, src, bytes);
  if (bytes_per_second_ <= 0) return;
  // The modelled device starts this read when it is free and the reader asks, whichever is later.
  const Clock::time_point begin = std::max(start, ready_);
  ready_ = begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(bytes / bytes_per_second_));
  std::this_thread::sleep_until(ready_);
}

// ---- ExpertUploader -----------------------------------------------------------------------

ExpertUploader::ExpertUploader(Context& ctx, ExpertUploadPath path, const TimelineSemaphore& compute,
                               uint64_t staging_bytes, double storage_bytes_per_second)
    : ctx_(ctx), path_(path), compute_(compute), done_(ctx), throttle_(storage_bytes_per_second) {
  if (path_ == ExpertUploadPath::Queue) {
    staging_arena_ = std::make_unique<Arena>(ctx, "expert-staging", MemoryUse::Staging, staging_bytes);
    staging_ = staging_arena_->allocate(staging_bytes);
    cmd_ = std::make_unique<CommandBuffer>(ctx, QueueRole::Transfer);
  }
  worker_ = std::thread([this] { run(); });
}

ExpertUploader::~ExpertUploader() {
  // Queued jobs are cancelled, not drained: at a throttled storage speed draining could take
  // minutes, for slots nobody will read.
  try {
    cancel();
  } catch (...) {  // a device that cannot be waited for: the worker still has to stop
  }
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

void ExpertUploader::check() {
  std::lock_guard lock(mutex_);
  rethrow_failure();
}

void ExpertUploader::cancel() {
  std::unique_lock lock(mutex_);
  uint64_t last = 0;
  for (const Job& job : jobs_) last = std::max(last, job.value);
  jobs_.clear();
  submitted_cv_.wait(lock, [&] { return !busy_; });
  failure_ = nullptr;
  const uint64_t finished = submitted_;
  lock.unlock();
  if (last == 0) return;
  if (path_ == ExpertUploadPath::Queue) {
    // The job in progress signals done() from its queue: it must have, before the host
    // signals a later value (a timeline never goes back).
    if (finished) done_.wait(finished);
    if (done_.value() < last) done_.signal(last);
  }
  lock.lock();
  submitted_ = std::max(submitted_, last);
  copied_ = std::max(copied_, last);
  lock.unlock();
  submitted_cv_.notify_all();
}

bool ExpertUploader::shares_compute_queue() const {
  return path_ == ExpertUploadPath::Queue && !ctx_.has_separate_transfer_queue();
}

void ExpertUploader::rethrow_failure() {
  if (failure_) {
    std::exception_ptr failure = failure_;
    failure_ = nullptr;
    std::rethrow_exception(failure);
  }
}

uint64_t ExpertUploader::enqueue(std::vector<SlotUpload> uploads, uint64_t wait_compute) {
  if (path_ == ExpertUploadPath::HostCopy && wait_compute) {
    // The host copy overwrites slots still being read: wait here, on the caller's thread, so
    // the worker makes no Vulkan calls at all (concurrent semaphore calls from two threads
    // stall the validation layer's timeline tracking for seconds).
    compute_.wait(wait_compute);
    wait_compute = 0;
  }
  std::lock_guard lock(mutex_);
  rethrow_failure();
  for (const SlotUpload& u : uploads) {
    for (size_t i = 0; i < u.sources.size(); ++i) {
      if (u.offsets[i] + u.sources[i].size() > u.slot.size) throw Error("expert upload: a matrix overruns its slot");
      if (path_ == ExpertUploadPath::HostCopy && !u.slot.host_visible()) {
        throw Error("expert upload: host copies need mapped slots");
      }
    }
  }
  const uint64_t value = ++next_value_;
  jobs_.push_back(Job{std::move(uploads), wait_compute, value});
  wake_.notify_one();
  return value;
}

void ExpertUploader::wait_submitted(uint64_t value) {
  std::unique_lock lock(mutex_);
  const auto deadline = std::chrono::steady_clock::now() + ctx_.options().gpu_timeout;
  if (!submitted_cv_.wait_until(lock, deadline, [&] { return submitted_ >= value || failure_; })) {
    throw Error("expert upload " + std::to_string(value) + " was not submitted within " +
                std::to_string(ctx_.options().gpu_timeout.count()) + " ms");
  }
  rethrow_failure();
}

void ExpertUploader::wait_done(uint64_t value) {
  if (path_ == ExpertUploadPath::Queue) {
    done_.wait(value);
  } else {
    std::unique_lock lock(mutex_);
    const auto deadline = std::chrono::steady_clock::now() + ctx_.options().gpu_timeout;
    if (!submitted_cv_.wait_until(lock, deadline, [&] { return copied_ >= value || failure_; })) {
      throw Error("expert upload " + std::to_string(value) + " did not complete within " +
                  std::to_string(ctx_.options().gpu_timeout.count()) + " ms");
    }
  }
  std::lock_guard lock(mutex_);
  rethrow_failure();
}

void ExpertUploader::run() {
  for (;;) {
    Job job;
    uint64_t previous = 0;  // the last job before this one
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (stop_) return;  // the destructor cancelled what was left
      job = std::move(jobs_.front());
      jobs_.pop_front();
      busy_ = true;
      previous = submitted_;
    }
    try {
      fault_point(FaultPoint::Upload);
      if (path_ == ExpertUploadPath::HostCopy) host_copy(job);
      else queue_copy(job);
    } catch (...) {
      {
        std::lock_guard lock(mutex_);
        failure_ = std::current_exception();  // before the signal: whoever it wakes sees the failure
      }
      // Let GPU work waiting for this job run (it computes garbage the engine then discards
      // with the error) rather than hang until the timeout. The earlier job's transfer
      // signals done() from its queue; the host may signal a later value only after that.
      if (path_ == ExpertUploadPath::Queue) {
        try {
          if (previous) done_.wait(previous);
          if (done_.value() < job.value) done_.signal(job.value);
        } catch (...) {
        }
      }
    }
    {
      std::lock_guard lock(mutex_);
      submitted_ = std::max(submitted_, job.value);
      if (path_ == ExpertUploadPath::HostCopy) copied_ = std::max(copied_, job.value);
      busy_ = false;
    }
    submitted_cv_.notify_all();
  }
}

void ExpertUploader::host_copy(const Job& job) {
  // job.wait_compute is 0: enqueue() waited for the slots' readers already.
  for (const SlotUpload& u : job.uploads) {
    for (size_t i = 0; i < u.sources.size(); ++i) {
      if (!u.sources[i].empty()) throttle_.copy(u.slot.mapped + u.offsets[i], u.sources[i].data(), u.sources[i].size());
    }
  }
  // Completion is reported on the host (run(): copied_); the streamer submits the experts'
  // work only after wait_done(), so vkQueueSubmit's host-write ordering makes the copies visible.
}

namespace {

uint64_t staged_bytes(const SlotUpload& u) {
  uint64_t bytes = 0;
  for (const std::span<const uint8_t>& src : u.sources) bytes += (src.size() + 3) / 4 * 4;
  return bytes;
}

}  // namespace

void ExpertUploader::queue_copy(const Job& job) {
  // Staging holds as many whole experts as fit; each batch is one submission. The last one
  // signals done(): a signal covers every earlier submission on its queue.
  size_t next = 0;
  do {
    cmd_->begin();  // waits for the previous batch, whose copies read the staging buffer
    uint64_t used = 0;
    const size_t first = next;
    while (next < job.uploads.size() && (next == first || used + staged_bytes(job.uploads[next]) <= staging_.size)) {
      const SlotUpload& u = job.uploads[next];
      if (staged_bytes(u) > staging_.size) throw Error("expert upload: an expert is larger than the staging buffer");
      for (size_t i = 0; i < u.sources.size(); ++i) {
        const std::span<const uint8_t> src = u.sources[i];
        if (src.empty()) continue;
        throttle_.copy(staging_.mapped + used, src.data(), src.size());
        copy_buffer(*cmd_, staging_.slice(used, src.size()), u.slot.slice(u.offsets[i], src.size()));
        used += (src.size() + 3) / 4 * 4;  // copy offsets stay 4-byte aligned
      }
      ++next;
    }
    std::vector<SemaphoreWait> waits;
    if (job.wait_compute) waits.push_back({&compute_, job.wait_compute, VK_PIPELINE_STAGE_TRANSFER_BIT});
    std::vector<SemaphoreSignal> signals;
    if (next == job.uploads.size()) signals.push_back({&done_, job.value});
    cmd_->submit(waits, signals);
  } while (next < job.uploads.size());
}

}  // namespace megrez
