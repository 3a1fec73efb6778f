#include "apps/megrez-chat/engine_worker.h"

#include <algorithm>
#include <exception>

#include "loader/error.h"
#include "runtime/vk/context.h"

namespace megrez::chat {

namespace {

// Thrown from the load's progress callback when the app quits, to abandon the load.
struct LoadAbandoned {};

}  // namespace

EngineWorker::EngineWorker(Context& context, std::function<void()> wake)
    : context_(context), wake_(std::move(wake)) {
  thread_ = std::thread([this] { run(); });
}

EngineWorker::~EngineWorker() {
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
    jobs_.clear();
  }
  quitting_ = true;
  cancel_ = true;
  wakeup_.notify_all();
  thread_.join();
}

void EngineWorker::notify() {
  if (wake_) wake_();
}

void EngineWorker::load(const std::string& path, const EngineOptions& options) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(Load{path, options});
    status_.state = ModelState::Loading;
    status_.model_path = path;
    status_.load_fraction = 0;
    status_.load_stage = "waiting";
    status_.error.clear();
  }
  cancel_ = true;  // a running reply ends first
  wakeup_.notify_all();
  notify();
}

void EngineWorker::reply(ReplyRequest request) {
  {
    std::lock_guard lock(mutex_);
    progress_ = ReplyProgress{};
    progress_.id = request.id;
    progress_.running = true;
    cancel_ = false;  // set again by stop(), even before the worker takes the request
    jobs_.push_back(std::move(request));
  }
  wakeup_.notify_all();
  notify();
}

void EngineWorker::stop() { cancel_ = true; }

EngineStatus EngineWorker::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

ReplyProgress EngineWorker::progress() const {
  std::lock_guard lock(mutex_);
  return progress_;
}

bool EngineWorker::idle() const {
  std::lock_guard lock(mutex_);
  return !working_ && jobs_.empty();
}

void EngineWorker::run() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mutex_);
      wakeup_.wait(lock, [&] { return quit_ || !jobs_.empty(); });
      if (quit_) return;
      job = std::move(jobs_.front());
      jobs_.pop_front();
      working_ = true;
    }
    if (auto* load = std::get_if<Load>(&job)) do_load(*load);
    if (auto* request = std::get_if<ReplyRequest>(&job)) do_reply(*request);
    {
      std::lock_guard lock(mutex_);
      working_ = false;
    }
    notify();
  }
}

void EngineWorker::do_load(Load& job) {
  // The old model goes first: its memory is what the new one may need.
  format_.reset();
  engine_.reset();
  cached_.clear();
  job.options.on_progress = [this](float fraction, std::string_view stage) {
    if (quitting_) throw LoadAbandoned{};
    {
      std::lock_guard lock(mutex_);
      status_.load_fraction = fraction;
      status_.load_stage = std::string(stage);
    }
    notify();
  };
  std::string error;
  try {
    engine_ = Engine::load(job.path, job.options, context_);
    if (!engine_->has_tokenizer()) throw Error("the model has no tokenizer, which a chat needs");
    format_ = std::make_unique<ChatFormat>(engine_->tokenizer());
  } catch (const LoadAbandoned&) {
    engine_.reset();
    return;
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) {
    format_.reset();
    engine_.reset();
    std::lock_guard lock(mutex_);
    status_ = EngineStatus{};
    status_.state = ModelState::Failed;
    status_.model_path = job.path;
    status_.error = error;
    return;
  }
  {
    std::lock_guard lock(mutex_);
    status_.state = ModelState::Ready;
    status_.device = engine_->device_name();
    status_.streaming = engine_->streaming_summary();
    status_.mode = engine_->stream_mode();
    status_.context_length = engine_->context_length();
    status_.load_seconds = engine_->stats().load_seconds;
  }
  refresh_engine_status();
}

void EngineWorker::refresh_engine_status() {
  // Read the engine outside the lock; publish only its figures (the state fields belong to
  // load(), which the UI thread may be calling meanwhile).
  const EngineStats stats = engine_->stats();
  const uint32_t used = engine_->position();
  const StreamStats last_token = engine_->last_pass_stream_stats();
  ExpertMap experts = engine_->expert_map();
  std::lock_guard lock(mutex_);
  status_.stats = stats;
  status_.context_used = used;
  status_.device_bytes = stats.weight_bytes + stats.kv_cache_bytes + stats.activation_bytes + stats.expert_cache_bytes;
  status_.last_token = last_token;
  status_.experts = std::move(experts);
}

// The conversation's tokens, leaving out its oldest turns while it and room for a reply do
// not fit the context (the system prompt and the newest user turn always stay).
std::vector<int32_t> EngineWorker::fit_context(ReplyRequest& job) {
  const uint32_t context = engine_->context_length();
  const uint32_t room = std::min<uint32_t>(std::max<uint32_t>(job.max_tokens, 1), context / 4);
  const size_t first = !job.messages.empty() && job.messages.front().role == "system" ? 1 : 0;
  uint32_t dropped = 0;
  for (;;) {
    std::vector<int32_t> prompt = format_->encode(format_->prompt(job.messages, true));
    if (prompt.size() + room <= context) {
      if (dropped) {
        std::lock_guard lock(mutex_);
        progress_.dropped = dropped;
      }
      return prompt;
    }
    if (job.messages.size() - first <= 1) {
      throw Error("the message is " + std::to_string(prompt.size()) + " tokens with the chat's framing; the context holds " +
                  std::to_string(context) + " (reload with a longer context, or shorten the message)");
    }
    job.messages.erase(job.messages.begin() + std::ptrdiff_t(first));
    ++dropped;
  }
}

void EngineWorker::do_reply(ReplyRequest& job) {
  auto finish = [&](const TextResult* result, const std::string& error) {
    {
      std::lock_guard lock(mutex_);
      progress_.running = false;
      progress_.done = true;
      if (result) progress_.result = *result;
      progress_.error = error;
    }
    notify();
  };
  if (!engine_ || !format_) {
    finish(nullptr, "no model is loaded");
    return;
  }
  TextOptions options;
  options.sampler = job.sampler;
  options.max_tokens = job.max_tokens;
  options.cancel = &cancel_;
  options.on_text = [this](std::string_view text) {
    {
      std::lock_guard lock(mutex_);
      progress_.text += text;
    }
    notify();
    return true;
  };
  options.between_tokens = [this] {
    {
      std::lock_guard lock(mutex_);
      ++progress_.tokens;
    }
    refresh_engine_status();
    notify();
  };
  try {
    validate(job.sampler);
    const std::vector<int32_t> prompt = fit_context(job);
    const std::vector<int32_t>& stops = format_->stop_ids();
    std::vector<int32_t> close;
    if (!stops.empty()) close.push_back(stops.front());
    if (job.sampler.seed != 0 || !job.sampler.greedy()) engine_->reseed_sampler(job.sampler.seed);
    const TextResult result = complete_text(*engine_, cached_, prompt, options, stops, close);
    refresh_engine_status();
    finish(&result, "");
  } catch (const std::exception& e) {
    // The cache may hold part of what failed: forget it rather than trust it.
    cached_.clear();
    try {
      engine_->reset();
    } catch (...) {
    }
    finish(nullptr, e.what());
  }
}

}  // namespace megrez::chat
