// megrez-server: an OpenAI-compatible HTTP server for a Megrez2 model on a Vulkan device.
//
//   megrez-server --model models/megrez2-tiny --port 8080 --parallel 2
//   curl http://127.0.0.1:8080/v1/chat/completions -d '{"messages":[{"role":"user","content":"Hi"}]}'
//
// It listens at once and loads the model in the background (/health: 503, then 200). A load
// failure, a port in use or a bad flag prints one line "megrez-server: ..." and exits non-zero;
// SIGINT or SIGTERM stops it cleanly (running requests are cancelled).
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <pthread.h>
#include <thread>

#include "apps/megrez-server/http_api.h"
#include "apps/megrez-server/metrics.h"
#include "apps/megrez-server/scheduler.h"
#include "apps/tools/engine_flags.h"
#include "loader/chat/chat.h"
#include "loader/error.h"
#include "runtime/engine/generate.h"

namespace {

using namespace megrez;
using namespace megrez::server;

std::string usage() {
  return R"(usage: megrez-server [options]
  --model PATH          Hugging Face directory or .gguf file (default: the bundled tiny model)
  --host ADDR           address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  --port N              port (default 8080; 0: any free port, printed at start)
  --api-key KEY         require 'Authorization: Bearer KEY' (default: $MEGREZ_API_KEY, else none)
  --parallel N          slots: requests generated at once, each with its own KV cache (default 1)
  --queue N             requests that may wait for a slot; more get 503 (default 16)
  --max-body BYTES      largest request body; larger ones get 413 (default 4194304)
  --model-id NAME       the model's name in /v1/models (default: the model's file or folder name)
)" + engine_flags_usage("min(model maximum, 4096)") +
         R"(  --help                this text
Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics
)";
}

struct Args {
  std::string model = default_model_path();
  EngineOptions engine;
  HttpOptions http;
  uint32_t parallel = 1;
  uint32_t queue = 16;
  bool help = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  if (const char* key = std::getenv("MEGREZ_API_KEY")) a.http.api_key = key;
  FlagCursor args(argc, argv);
  while (args.next()) {
    const std::string flag = args.flag();
    if (parse_engine_flag(args, a.engine)) continue;
    if (flag == "--model") a.model = args.value();
    else if (flag == "--host") a.http.host = args.value();
    else if (flag == "--port") a.http.port = parse_flag_number<int>(flag, args.value());
    else if (flag == "--api-key") a.http.api_key = args.value();
    else if (flag == "--parallel") a.parallel = parse_flag_number<uint32_t>(flag, args.value());
    else if (flag == "--queue") a.queue = parse_flag_number<uint32_t>(flag, args.value());
    else if (flag == "--max-body") a.http.max_body_bytes = parse_flag_number<size_t>(flag, args.value());
    else if (flag == "--model-id") a.http.model_id = args.value();
    else if (flag == "--help" || flag == "-h") a.help = true;
    else throw UsageError("unknown option '" + flag + "' (see --help)");
  }
  if (a.http.port < 0 || a.http.port > 65535) throw UsageError("--port must be 0 to 65535");
  if (a.parallel < 1 || a.parallel > 64) throw UsageError("--parallel must be 1 to 64");
  if (a.queue > 4096) throw UsageError("--queue must be 0 to 4096");
  if (a.http.max_body_bytes < 1024) throw UsageError("--max-body must be at least 1024");
  if (a.http.model_id.empty()) {
    std::filesystem::path p(a.model);
    a.http.model_id = (p.has_filename() ? p.filename() : p.parent_path().filename()).string();
  }
  // Each open connection holds a worker: the slots, the queue, and room for /health and more.
  a.http.threads = a.parallel + a.queue + 16;
  return a;
}

int serve(const Args& a) {
  // SIGINT/SIGTERM are taken by one thread (sigwait), so no handler runs on a worker.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a client that left is seen as a failed write

  Metrics metrics;
  HttpApi api(a.http, metrics);
  const int port = api.bind();
  std::fprintf(stderr, "megrez-server: listening on http://%s:%d (loading %s)\n", a.http.host.c_str(), port,
               a.model.c_str());
  std::thread http([&] { api.serve(); });
  std::thread signals([&] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    api.stop();
  });
  auto stop_all = [&] {
    pthread_kill(signals.native_handle(), SIGTERM);
    signals.join();
    http.join();
  };

  std::unique_ptr<Engine> engine;
  std::unique_ptr<Scheduler> scheduler;
  try {
    EngineOptions options = a.engine;
    options.on_progress = [&](float fraction, std::string_view stage) { api.set_progress(fraction, stage); };
    engine = Engine::load(a.model, options);
    const ChatFormat format(engine->tokenizer());
    scheduler = std::make_unique<Scheduler>(*engine, a.parallel, a.queue, format.stop_ids(), default_stop_ids(*engine),
                                            metrics);
  } catch (...) {
    stop_all();
    throw;
  }
  api.set_ready(*engine, *scheduler);
  std::fprintf(stderr, "megrez-server: ready: %s on %s, context %u, %u slot(s)\n", a.http.model_id.c_str(),
               engine->device_name().c_str(), engine->context_length(), a.parallel);
  http.join();  // until a signal stops the server
  signals.join();
  scheduler.reset();  // cancels what still runs
  std::fprintf(stderr, "megrez-server: stopped\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return megrez::run_tool("megrez-server", [&] {
    const Args args = parse_args(argc, argv);
    if (args.help) {
      std::cout << usage();
      return 0;
    }
    return serve(args);
  });
}
