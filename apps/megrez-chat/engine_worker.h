#pragma once
// The engine on a thread of its own, so the window never waits for it: loading a model and
// generating a reply are requests the worker takes in order; what it has done so far (load
// progress, the reply's text, the figures, the expert cache) is a snapshot the UI copies each
// frame. Every change wakes the UI through `wake` (glfwPostEmptyEvent).
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "loader/chat/chat.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/generate.h"

namespace megrez {
class Context;
}

namespace megrez::chat {

enum class ModelState { Empty, Loading, Ready, Failed };

// The engine as the UI shows it.
struct EngineStatus {
  ModelState state = ModelState::Empty;
  std::string model_path;
  float load_fraction = 0;
  std::string load_stage;
  std::string error;                // Failed: why, one line
  std::string device;
  std::string streaming;            // Engine::streaming_summary()
  StreamMode mode = StreamMode::Resident;
  uint32_t context_length = 0, context_used = 0;
  uint64_t device_bytes = 0;        // weights + KV cache + activations + expert slots
  EngineStats stats;
  StreamStats last_token;           // the expert cache in the last decode step
  ExpertMap experts;
  double load_seconds = 0;
};

// A reply in progress or finished.
struct ReplyProgress {
  uint64_t id = 0;                  // ReplyRequest::id
  std::string text;                 // streamed so far (whole UTF-8 characters)
  uint32_t tokens = 0;
  uint32_t dropped = 0;             // oldest messages left out: the conversation outgrew the context
  bool running = false;
  bool done = false;
  TextResult result;                // done: the figures
  std::string error;                // done with an error: why, one line
};

struct ReplyRequest {
  uint64_t id = 0;
  std::vector<ChatMessage> messages;  // a system message first when there is one; ends with the user's turn
  SamplerOptions sampler;
  uint32_t max_tokens = 512;
};

class EngineWorker {
 public:
  EngineWorker(Context& context, std::function<void()> wake);
  ~EngineWorker();  // cancels a reply (and a load at its next step) and joins
  EngineWorker(const EngineWorker&) = delete;
  EngineWorker& operator=(const EngineWorker&) = delete;

  // Replaces the loaded model (a running reply is cancelled first). options.on_progress is
  // the worker's.
  void load(const std::string& path, const EngineOptions& options);
  void reply(ReplyRequest request);
  void stop();  // cancels the running reply, which ends as Cancelled with the text so far

  EngineStatus status() const;
  ReplyProgress progress() const;
  bool idle() const;  // nothing running or waiting

 private:
  struct Load {
    std::string path;
    EngineOptions options;
  };
  using Job = std::variant<Load, ReplyRequest>;

  void run();
  void do_load(Load& job);
  void do_reply(ReplyRequest& job);
  std::vector<int32_t> fit_context(ReplyRequest& job);
  void refresh_engine_status();  // worker thread; takes the lock itself
  void notify();

  Context& context_;
  std::function<void()> wake_;
  std::unique_ptr<Engine> engine_;      // worker thread only
  std::unique_ptr<ChatFormat> format_;  // worker thread only
  std::vector<int32_t> cached_;         // what the engine's KV cache holds

  mutable std::mutex mutex_;
  std::condition_variable wakeup_;
  std::deque<Job> jobs_;
  bool working_ = false;
  bool quit_ = false;
  std::atomic<bool> cancel_{false};
  std::atomic<bool> quitting_{false};
  EngineStatus status_;
  ReplyProgress progress_;
  std::thread thread_;
};

}  // namespace megrez::chat
