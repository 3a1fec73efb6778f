#include "runtime/vk/blocking_transfers.h"

#include <algorithm>
#include <cstring>

#include "runtime/vk/commands.h"
#include "runtime/vk/dispatch.h"

namespace megrez {

namespace {

void check_size(const char* what, VkDeviceSize buffer, size_t host) {
  if (host > buffer) {
    throw Error(std::string(what) + ": " + std::to_string(host) + " host bytes do not fit a " +
                std::to_string(buffer) + "-byte buffer range");
  }
}

// Orders earlier GPU reads/writes of the range before a copy writes it (WAR/WAW).
void barrier_before_copy_write(CommandBuffer& cmd) {
  auto barrier = vk_struct<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  vkCmdPipelineBarrier(cmd.handle(), VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &barrier, 0, nullptr, 0, nullptr);
}

// Earlier shader/copy writes before a copy reads.
void barrier_before_copy_read(CommandBuffer& cmd) {
  auto barrier = vk_struct<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
  barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT;
  vkCmdPipelineBarrier(cmd.handle(), VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &barrier, 0, nullptr, 0, nullptr);
}

// Copy writes before later shaders and copies (in later submissions on this queue too).
void barrier_after_copy_write(CommandBuffer& cmd) {
  auto barrier = vk_struct<VkMemoryBarrier>(VK_STRUCTURE_TYPE_MEMORY_BARRIER);
  barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
  barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                          VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  vkCmdPipelineBarrier(cmd.handle(), VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &barrier, 0,
                       nullptr, 0, nullptr);
}

}  // namespace

BlockingTransfers::BlockingTransfers(Context& ctx, VkDeviceSize staging_bytes) : ctx_(ctx) {
  cmd_ = std::make_unique<CommandBuffer>(ctx, QueueRole::Compute);
  // Allocated on first staged use; copies go through it in pieces, so it need not be larger
  // than the device allows one allocation to be.
  staging_.size = readback_.size = std::min(staging_bytes, ctx.caps().max_allocation_size);
}

BlockingTransfers::~BlockingTransfers() = default;

void BlockingTransfers::upload(const BufferRange& dst, std::span<const std::byte> src) {
  check_size("upload", dst.size, src.size());
  if (src.empty()) return;
  std::lock_guard guard(mutex_);
  if (dst.host_visible()) {
    // Host writes are visible to every later queue submission (vkQueueSubmit's implicit
    // host-write dependency): nothing to record.
    std::memcpy(dst.mapped, src.data(), src.size());
    return;
  }
  if (!staging_arena_) {
    staging_arena_ = std::make_unique<Arena>(ctx_, "staging", MemoryUse::Staging, staging_.size);
    staging_ = staging_arena_->allocate(staging_.size);
  }
  for (size_t done = 0; done < src.size(); done += staging_.size) {
    const size_t chunk = std::min<size_t>(staging_.size, src.size() - done);
    std::memcpy(staging_.mapped, src.data() + done, chunk);
    cmd_->begin();
    barrier_before_copy_write(*cmd_);
    copy_buffer(*cmd_, staging_.slice(0, chunk), dst.slice(done, chunk));
    barrier_after_copy_write(*cmd_);
    cmd_->submit_and_wait();
  }
}

void BlockingTransfers::download(const BufferRange& src, std::span<std::byte> dst) {
  check_size("download", src.size, dst.size());
  if (dst.empty()) return;
  std::lock_guard guard(mutex_);
  if (src.host_visible()) {
    // Make earlier GPU writes visible to the host, then read the mapping.
    cmd_->begin();
    barrier_to_host(*cmd_);
    cmd_->submit_and_wait();
    std::memcpy(dst.data(), src.mapped, dst.size());
    return;
  }
  if (!readback_arena_) {
    readback_arena_ = std::make_unique<Arena>(ctx_, "readback", MemoryUse::Readback, readback_.size);
    readback_ = readback_arena_->allocate(readback_.size);
  }
  for (size_t done = 0; done < dst.size(); done += readback_.size) {
    const size_t chunk = std::min<size_t>(readback_.size, dst.size() - done);
    cmd_->begin();
    barrier_before_copy_read(*cmd_);
    copy_buffer(*cmd_, src.slice(done, chunk), readback_.slice(0, chunk));
    barrier_to_host(*cmd_);
    cmd_->submit_and_wait();
    std::memcpy(dst.data() + done, readback_.mapped, chunk);
  }
}

void BlockingTransfers::upload(const SplitBuffer& dst, std::span<const std::byte> src) {
  if (src.size() != dst.size) {
    throw Error("upload: " + std::to_string(src.size()) + " host bytes for a split buffer of " +
                std::to_string(dst.size));
  }
  VkDeviceSize done = 0;
  for (const BufferRange& part : dst.parts) {
    upload(part, src.subspan(done, part.size));
    done += part.size;
  }
}

void BlockingTransfers::download(const SplitBuffer& src, std::span<std::byte> dst) {
  if (dst.size() != src.size) {
    throw Error("download: " + std::to_string(dst.size()) + " host bytes for a split buffer of " +
                std::to_string(src.size));
  }
  VkDeviceSize done = 0;
  for (const BufferRange& part : src.parts) {
    download(part, dst.subspan(done, part.size));
    done += part.size;
  }
}

}  // namespace megrez
