#include "apps/megrez-server/scheduler.h"

#include <algorithm>
#include <chrono>

#include "loader/error.h"

namespace megrez::server {

// ---- Job ---------------------------------------------------------------------------------------

bool Job::take_text(std::string& text, int timeout_ms) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return finished_ || !pending_.empty(); });
  text += pending_;
  pending_.clear();
  return finished_;
}

TextResult Job::result() const {
  std::lock_guard lock(mutex_);
  return result_;
}

std::optional<std::string> Job::error() const {
  std::lock_guard lock(mutex_);
  return error_;
}

void Job::add_text(std::string_view text) {
  {
    std::lock_guard lock(mutex_);
    pending_ += text;
  }
  changed_.notify_all();
}

void Job::finish(const TextResult& result) {
  {
    std::lock_guard lock(mutex_);
    result_ = result;
    finished_ = true;
  }
  changed_.notify_all();
}

void Job::fail(const std::string& message) {
  {
    std::lock_guard lock(mutex_);
    error_ = message;
    finished_ = true;
  }
  changed_.notify_all();
}

// ---- EngineTurns -------------------------------------------------------------------------------

void EngineTurns::lock() {
  std::unique_lock lock(mutex_);
  const uint64_t ticket = next_ticket_++;
  turn_.wait(lock, [&] { return serving_ == ticket; });
}

void EngineTurns::unlock() {
  {
    std::lock_guard lock(mutex_);
    ++serving_;
  }
  turn_.notify_all();
}

// ---- Scheduler ---------------------------------------------------------------------------------

Scheduler::Scheduler(Engine& engine, uint32_t parallel, uint32_t queue_limit, std::vector<int32_t> chat_stop_ids,
                     std::vector<int32_t> text_stop_ids, Metrics& metrics)
    : engine_(engine),
      queue_limit_(queue_limit),
      chat_stop_ids_(std::move(chat_stop_ids)),
      text_stop_ids_(std::move(text_stop_ids)),
      metrics_(metrics) {
  for (uint32_t i = 0; i < parallel; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->sequence = i == 0 ? engine_.selected_sequence() : engine_.add_sequence();
    slots_.push_back(std::move(slot));
  }
  metrics_.set_engine_stats(engine_.stats());
  for (size_t i = 0; i < slots_.size(); ++i) slots_[i]->thread = std::thread([this, i] { run_slot(i); });
  std::lock_guard lock(mutex_);
  publish_counts();
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (const auto& job : queue_) job->fail("the server is shutting down");
    queue_.clear();
    for (const auto& slot : slots_) {
      if (slot->job) slot->job->cancel = true;
    }
  }
  changed_.notify_all();
  for (const auto& slot : slots_) slot->thread.join();
}

bool Scheduler::submit(const std::shared_ptr<Job>& job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || queue_.size() >= queue_limit_) return false;
    queue_.push_back(job);
    publish_counts();
  }
  changed_.notify_all();
  return true;
}

void Scheduler::publish_counts() {
  uint32_t busy = 0;
  for (const auto& slot : slots_) busy += slot->job ? 1 : 0;
  metrics_.set_queue(uint32_t(queue_.size()), busy, uint32_t(slots_.size()));
}

size_t Scheduler::best_idle_slot(const Job& job) const {
  size_t best = slots_.size(), best_common = 0;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i]->job) continue;
    const std::vector<int32_t>& cached = slots_[i]->cached_snapshot;
    const size_t limit = std::min(cached.size(), job.prompt.size());
    size_t common = 0;
    while (common < limit && cached[common] == job.prompt[common]) ++common;
    if (best == slots_.size() || common > best_common) {
      best = i;
      best_common = common;
    }
  }
  return best;
}

std::shared_ptr<Job> Scheduler::next_job(size_t index) {
  std::unique_lock lock(mutex_);
  Slot& slot = *slots_[index];
  while (true) {
    // A client that left while its request waited: drop the request unrun.
    while (!queue_.empty() && queue_.front()->cancel) {
      queue_.front()->fail("cancelled while queued");
      queue_.pop_front();
      publish_counts();
    }
    if (stopping_) return nullptr;
    if (!queue_.empty() && best_idle_slot(*queue_.front()) == index) {
      slot.job = queue_.front();
      queue_.pop_front();
      publish_counts();
      return slot.job;
    }
    // Wake now and then to drop requests cancelled while queued.
    changed_.wait_for(lock, std::chrono::milliseconds(200));
  }
}

void Scheduler::run_slot(size_t index) {
  Slot& slot = *slots_[index];
  while (std::shared_ptr<Job> job = next_job(index)) {
    std::optional<std::string> error;
    TextResult result;
    try {
      result = run(slot, *job);
    } catch (const std::exception& e) {
      error = e.what();
    }
    // Idle before the client hears the answer, so its follow-up turn finds this slot's cache.
    {
      std::lock_guard lock(mutex_);
      slot.cached_snapshot = slot.cached;
      slot.job.reset();
      publish_counts();
    }
    changed_.notify_all();
    if (error) {
      job->fail(*error);
    } else {
      metrics_.count_generation(result, result.finish == FinishReason::Cancelled);
      job->finish(result);
    }
  }
}

TextResult Scheduler::run(Slot& slot, Job& job) {
  TextOptions options = job.options;
  options.cancel = &job.cancel;
  options.on_text = [&](std::string_view text) {
    job.add_text(text);
    return !job.cancel.load();
  };
  options.between_tokens = [&] {
    turns_.unlock();
    turns_.lock();
    engine_.select_sequence(slot.sequence);
  };
  const std::vector<int32_t>& stop_ids = job.chat ? chat_stop_ids_ : text_stop_ids_;
  std::vector<int32_t> close;
  if (job.chat && !stop_ids.empty()) close.push_back(stop_ids.front());

  turns_.lock();
  try {
    engine_.select_sequence(slot.sequence);
    if (job.seed) engine_.reseed_sampler(*job.seed);
    const TextResult result = complete_text(engine_, slot.cached, job.prompt, options, stop_ids, close);
    metrics_.set_engine_stats(engine_.stats());
    turns_.unlock();
    return result;
  } catch (const std::exception&) {
    // The cache may hold part of this request: start the slot afresh.
    try {
      engine_.select_sequence(slot.sequence);
      engine_.reset();
    } catch (const std::exception&) {
    }
    slot.cached.clear();
    turns_.unlock();
    throw;
  }
}

}  // namespace megrez::server
