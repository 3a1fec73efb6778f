#pragma once
// Runs generation requests on a loaded engine for many HTTP clients at once.
//
// Slots: each is one engine sequence (its own KV cache) and one thread. A request waits in a
// bounded queue until a slot is free; among free slots it goes to the one whose cache shares
// the longest token prefix with its prompt, so a follow-up turn of a conversation prefills only
// the new turn. Busy slots take turns on the engine token by token (a FIFO lock handed over
// between two generated tokens), so every stream makes progress; the engine itself is used by
// one thread at a time, as it requires.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "apps/megrez-server/metrics.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/generate.h"

namespace megrez::server {

// One request's generation, shared by the HTTP thread that waits for it and the slot that runs
// it. The HTTP side reads text as it comes (take_text) and sets `cancel` when its client is gone.
class Job {
 public:
  std::vector<int32_t> prompt;
  TextOptions options;            // sampler, max_tokens, stop; on_text/cancel are set by the slot
  std::optional<uint64_t> seed;   // nullopt: the sequence's generator goes on
  bool chat = false;              // stop at the chat template's end of turn, then close the turn

  std::atomic<bool> cancel{false};

  // Waits up to `timeout_ms` for text or the end; moves the text produced so far into `text`.
  // Returns true once the job has finished (the result or error is then set).
  bool take_text(std::string& text, int timeout_ms);
  TextResult result() const;
  std::optional<std::string> error() const;  // an engine error during the run

  // The slot side.
  void add_text(std::string_view text);
  void finish(const TextResult& result);
  void fail(const std::string& message);

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string pending_;
  bool finished_ = false;
  TextResult result_;
  std::optional<std::string> error_;
};

// A FIFO lock: threads get the engine in the order they asked for it, so a slot that hands it
// over between two tokens cannot take it straight back while another slot waits.
class EngineTurns {
 public:
  void lock();
  void unlock();

 private:
  std::mutex mutex_;
  std::condition_variable turn_;
  uint64_t next_ticket_ = 0, serving_ = 0;
};

class Scheduler {
 public:
  // Adds parallel - 1 engine sequences (Error when their KV caches do not fit) and starts a
  // thread per slot. chat_stop_ids: the chat template's end-of-turn ids (the first one closes a
  // turn); text_stop_ids: those of plain completions.
  Scheduler(Engine& engine, uint32_t parallel, uint32_t queue_limit, std::vector<int32_t> chat_stop_ids,
            std::vector<int32_t> text_stop_ids, Metrics& metrics);
  ~Scheduler();  // cancels what runs and waits for the slots

  // Queues a job; false (nothing queued) when the queue is full.
  bool submit(const std::shared_ptr<Job>& job);

  uint32_t slots() const { return uint32_t(slots_.size()); }
  uint32_t queue_limit() const { return queue_limit_; }

 private:
  struct Slot {
    Engine::SequenceId sequence = 0;
    std::vector<int32_t> cached;           // what its KV cache holds (the slot thread's)
    std::vector<int32_t> cached_snapshot;  // a copy under mutex_, for choosing slots
    std::shared_ptr<Job> job;              // running, or null when idle
    std::thread thread;
  };

  void run_slot(size_t index);
  std::shared_ptr<Job> next_job(size_t index);  // blocks; null on shutdown
  size_t best_idle_slot(const Job& job) const;  // under mutex_
  TextResult run(Slot& slot, Job& job);  // with the engine held; rethrows engine errors
  void publish_counts();                        // under mutex_

  Engine& engine_;
  const uint32_t queue_limit_;
  const std::vector<int32_t> chat_stop_ids_, text_stop_ids_;
  Metrics& metrics_;
  EngineTurns turns_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::unique_ptr<Slot>> slots_;
  bool stopping_ = false;
};

}  // namespace megrez::server
