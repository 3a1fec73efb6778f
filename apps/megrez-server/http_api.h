#pragma once
// The HTTP face of megrez-server: OpenAI's routes on cpp-httplib, the API key, the body limit,
// health while the model loads, and Server-Sent Events for streamed replies. It starts
// listening before the model is loaded, so /health can say "loading" (503) and then "ok".
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "apps/megrez-server/metrics.h"
#include "apps/megrez-server/scheduler.h"
#include "runtime/engine/engine.h"

namespace httplib {
class Server;
}

namespace megrez::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                       // 0: any free port (printed)
  std::string api_key;                   // "": no key needed
  std::string model_id;                  // the name /v1/models lists
  size_t max_body_bytes = 4u << 20;      // larger bodies: 413
  uint32_t threads = 32;                 // HTTP worker threads (each open connection holds one)
};

class HttpApi {
 public:
  HttpApi(const HttpOptions& options, Metrics& metrics);
  ~HttpApi();

  int bind();     // returns the port; throws megrez::Error when it cannot listen
  void serve();   // blocks until stop()
  void stop();

  // Load progress for /health, then the engine and scheduler the routes use (they must
  // outlive serve()), or the reason loading failed.
  void set_progress(float fraction, std::string_view stage);
  void set_ready(Engine& engine, Scheduler& scheduler);

 private:
  void add_routes();
  struct Routes;

  HttpOptions options_;
  Metrics& metrics_;
  std::unique_ptr<httplib::Server> server_;

  std::mutex progress_mutex_;
  float progress_ = 0;
  std::string stage_ = "starting";
  std::atomic<Engine*> engine_{nullptr};
  Scheduler* scheduler_ = nullptr;       // set before engine_ (release), read after it (acquire)
};

}  // namespace megrez::server
