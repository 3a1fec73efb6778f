#pragma once
// Blocking upload/download between host memory and buffers: a memcpy when the buffer is
// mapped (unified memory), else through a staging buffer copied ON THE COMPUTE QUEUE (not a
// transfer queue: these are load-time and test copies, not the streaming path). Each call
// returns when the data has arrived; the caller makes sure no GPU work in flight touches the
// range (the streamer's asynchronous path lives elsewhere).
#include <cstddef>
#include <memory>
#include <mutex>
#include <span>

#include "runtime/vk/memory.h"

namespace megrez {

class Context;
class CommandBuffer;

class BlockingTransfers {
 public:
  explicit BlockingTransfers(Context& ctx, VkDeviceSize staging_bytes = VkDeviceSize{16} << 20);
  ~BlockingTransfers();

  void upload(const BufferRange& dst, std::span<const std::byte> src);
  void download(const BufferRange& src, std::span<std::byte> dst);
  // Whole split buffers from/to one contiguous host array of split.size bytes.
  void upload(const SplitBuffer& dst, std::span<const std::byte> src);
  void download(const SplitBuffer& src, std::span<std::byte> dst);

 private:
  Context& ctx_;
  std::mutex mutex_;
  std::unique_ptr<Arena> staging_arena_, readback_arena_;  // created on first staged use
  BufferRange staging_, readback_;
  std::unique_ptr<CommandBuffer> cmd_;
};

// Typed conveniences: upload(ctx, range, std::span<const float>(v)).
template <class T>
void upload(Context& ctx, const BufferRange& dst, std::span<const T> src);
template <class T>
void download(Context& ctx, const BufferRange& src, std::span<T> dst);

}  // namespace megrez

#include "runtime/vk/context.h"

namespace megrez {

template <class T>
void upload(Context& ctx, const BufferRange& dst, std::span<const T> src) {
  ctx.blocking_transfers().upload(dst, std::as_bytes(src));
}
template <class T>
void download(Context& ctx, const BufferRange& src, std::span<T> dst) {
  ctx.blocking_transfers().download(src, std::as_writable_bytes(dst));
}

}  // namespace megrez
