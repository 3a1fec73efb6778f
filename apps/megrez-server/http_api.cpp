#include "apps/megrez-server/http_api.h"

#include <httplib.h>

#include <chrono>
#include <ctime>
#include <random>

#include "apps/megrez-server/openai_api.h"
#include "loader/chat/chat.h"
#include "loader/error.h"

namespace megrez::server {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kKnownRoutes[] = {"/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions"};

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n", "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  if (e.status == 503) res.set_header("Retry-After", "1");
  send_json(res, e.status, error_body(e));
}

// Compares in time independent of where the strings differ.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= uint8_t(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

std::string request_id(const char* prefix) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char hex[25];
  std::snprintf(hex, sizeof hex, "%016llx%08x", (unsigned long long)rng(), unsigned(rng()));
  return std::string(prefix) + hex;
}

std::string sse(const json& event) {
  return "data: " + event.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace

HttpApi::HttpApi(const HttpOptions& options, Metrics& metrics)
    : options_(options), metrics_(metrics), server_(std::make_unique<httplib::Server>()) {
  const uint32_t threads = options_.threads;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server_->set_payload_max_length(options_.max_body_bytes);
  server_->set_keep_alive_timeout(5);
  server_->set_read_timeout(30);
  server_->set_write_timeout(30);
  add_routes();
}

HttpApi::~HttpApi() = default;

int HttpApi::bind() {
  int port = options_.port;
  const bool bound = port == 0 ? (port = server_->bind_to_any_port(options_.host)) > 0
                               : server_->bind_to_port(options_.host, port);
  if (!bound) {
    throw Error("cannot listen on " + options_.host + ":" + std::to_string(options_.port) +
                " (address in use, or not an address of this machine)", ErrorKind::InvalidArgument);
  }
  return port;
}

void HttpApi::serve() { server_->listen_after_bind(); }
void HttpApi::stop() { server_->stop(); }

void HttpApi::set_progress(float fraction, std::string_view stage) {
  std::lock_guard lock(progress_mutex_);
  progress_ = fraction;
  stage_ = stage;
}

void HttpApi::set_ready(Engine& engine, Scheduler& scheduler) {
  scheduler_ = &scheduler;
  engine_.store(&engine, std::memory_order_release);
}

// The route handlers, with what they share.
struct HttpApi::Routes {
  HttpApi& api;

  Engine* engine() const { return api.engine_.load(std::memory_order_acquire); }

  void health(const httplib::Request&, httplib::Response& res) const {
    if (!engine()) {
      std::lock_guard lock(api.progress_mutex_);
      send_json(res, 503, {{"status", "loading"}, {"progress", api.progress_}, {"stage", api.stage_}});
      return;
    }
    send_json(res, 200, {{"status", "ok"}, {"model", api.options_.model_id}, {"slots", api.scheduler_->slots()}});
  }

  void models(const httplib::Request&, httplib::Response& res) const {
    json model = {{"id", api.options_.model_id}, {"object", "model"}, {"created", 0}, {"owned_by", "megrez"}};
    if (Engine* e = engine()) model["context_length"] = e->context_length();
    send_json(res, 200, {{"object", "list"}, {"data", json::array({model})}});
  }

  void generation(const httplib::Request& req, httplib::Response& res, bool chat) const {
    Engine* e = engine();
    if (!e) throw ApiError{503, "the model is still loading; retry when GET /health answers 200", "server_error", "model_loading"};
    const GenerationRequest request = parse_generation_request(req.body, chat);

    auto job = std::make_shared<Job>();
    job->chat = chat;
    const Tokenizer& tokenizer = e->tokenizer();
    if (chat) {
      const ChatFormat format(tokenizer);  // per request: the format keeps mutable state
      job->prompt = format.encode(format.prompt(request.messages, true));  // content stays plain text
    } else {
      job->prompt = tokenizer.encode(request.prompt, false);
    }
    if (job->prompt.empty()) throw ApiError{400, "the prompt is empty", "invalid_request_error", "", chat ? "messages" : "prompt"};
    const uint32_t ctx = e->context_length();
    if (job->prompt.size() >= ctx) {
      throw ApiError{400,
                     "this model's context is " + std::to_string(ctx) + " tokens, and the prompt has " +
                         std::to_string(job->prompt.size()) + " (at least one token must be left for the reply)",
                     "invalid_request_error", "context_length_exceeded", chat ? "messages" : "prompt"};
    }
    job->options.sampler = request.sampler;
    job->options.max_tokens = request.max_tokens.value_or(ctx);
    job->options.stop = request.stop;
    job->seed = request.seed;
    if (!job->seed) job->seed = std::random_device{}() ^ (uint64_t(std::random_device{}()) << 32);
    if (!api.scheduler_->submit(job)) {
      throw ApiError{503, "the server is busy: " + std::to_string(api.scheduler_->queue_limit()) +
                              " requests are already waiting; retry later", "server_error", "queue_full"};
    }

    const ResponseHead head{request_id(chat ? "chatcmpl-" : "cmpl-"), api.options_.model_id,
                            int64_t(std::time(nullptr)), chat};
    const auto cancel = [job](bool) { job->cancel = true; };  // the client left, or we are done  // the client left, or we are done
    if (request.stream) {
      res.set_header("Cache-Control", "no-cache");
      res.set_chunked_content_provider("text/event-stream", stream_provider(job, head, request.include_usage), cancel);
    } else {
      res.set_chunked_content_provider("application/json", whole_provider(job, head), cancel);
    }
  }

  // Server-Sent Events: the role, text as it comes, the finish reason, usage when asked, [DONE].
  // A comment line after a second of silence finds a client that left while its request waited.
  static httplib::ContentProviderWithoutLength stream_provider(std::shared_ptr<Job> job, ResponseHead head,
                                                               bool include_usage) {
    auto first = std::make_shared<bool>(true);
    auto quiet_since = std::make_shared<Clock::time_point>(Clock::now());
    return [job, head, include_usage, first, quiet_since](size_t, httplib::DataSink& sink) {
      std::string out;
      if (*first && head.chat) out += sse(stream_chunk(head, "", true, std::nullopt));
      std::string text;
      const bool finished = job->take_text(text, 100);
      if (!text.empty()) out += sse(stream_chunk(head, text, *first && !head.chat, std::nullopt));
      *first = false;
      if (finished) {
        if (const auto error = job->error()) {
          out += sse(error_body(ApiError{500, *error, "server_error", "", ""}));
        } else {
          const TextResult result = job->result();
          out += sse(stream_chunk(head, "", false, result.finish));
          if (include_usage) out += sse(usage_chunk(head, result));
        }
        out += "data: [DONE]\n\n";
      } else if (out.empty() && Clock::now() - *quiet_since > std::chrono::seconds(1)) {
        out = ": waiting\n\n";
      }
      if (!out.empty()) {
        if (!sink.write(out.data(), out.size())) {
          job->cancel = true;
          return false;
        }
        *quiet_since = Clock::now();
      }
      if (finished) sink.done();
      return true;
    };
  }

  // One JSON object when the reply is complete. Meanwhile a space (JSON allows leading
  // whitespace) after each second of silence finds a client that went away.
  static httplib::ContentProviderWithoutLength whole_provider(std::shared_ptr<Job> job, ResponseHead head) {
    auto quiet_since = std::make_shared<Clock::time_point>(Clock::now());
    return [job, head, quiet_since](size_t, httplib::DataSink& sink) {
      std::string discard;
      const bool finished = job->take_text(discard, 200);
      std::string out;
      if (finished) {
        const auto error = job->error();
        const json body = error ? error_body(ApiError{500, *error, "server_error", "", ""}) : full_response(head, job->result());
        out = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      } else if (Clock::now() - *quiet_since > std::chrono::seconds(1)) {
        out = " ";
        *quiet_since = Clock::now();
      }
      if (!out.empty() && !sink.write(out.data(), out.size())) {
        job->cancel = true;
        return false;
      }
      if (finished) sink.done();
      return true;
    };
  }
};

void HttpApi::add_routes() {
  auto routes = std::make_shared<Routes>(Routes{*this});
  httplib::Server& s = *server_;
  // Every handler answers errors in OpenAI's shape; nothing a request does escapes as a crash.
  auto guarded = [](auto handler) {
    return [handler](const httplib::Request& req, httplib::Response& res) {
      try {
        handler(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const Error& e) {
        send_error(res, ApiError{e.kind() == ErrorKind::InvalidArgument ? 400 : 500, e.what(),
                                 e.kind() == ErrorKind::InvalidArgument ? "invalid_request_error" : "server_error"});
      } catch (const std::exception& e) {
        send_error(res, ApiError{500, e.what(), "server_error"});
      }
    };
  };
  s.Get("/health", guarded([routes](const auto& req, auto& res) { routes->health(req, res); }));
  s.Get("/v1/models", guarded([routes](const auto& req, auto& res) { routes->models(req, res); }));
  s.Get("/metrics", guarded([this](const auto&, auto& res) {
    res.set_content(metrics_.prometheus_text(), "text/plain; version=0.0.4");
  }));
  s.Post("/v1/chat/completions", guarded([routes](const auto& req, auto& res) { routes->generation(req, res, true); }));
  s.Post("/v1/completions", guarded([routes](const auto& req, auto& res) { routes->generation(req, res, false); }));
  // Browsers' preflight, so a web page may call the API (the key, if any, is still checked).
  s.Options(".*", [](const auto&, auto& res) {
    res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
    res.status = 204;
  });
  s.set_default_headers({{"Access-Control-Allow-Origin", "*"}});

  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (options_.api_key.empty() || req.path == "/health" || req.method == "OPTIONS") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string auth = req.get_header_value("Authorization");
    if (auth.rfind("Bearer ", 0) != 0 || !same_secret(auth.substr(7), options_.api_key)) {
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, ApiError{401, "a valid API key is needed: send 'Authorization: Bearer <key>'",
                               "invalid_request_error", "invalid_api_key"});
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  // Errors httplib answers itself (unknown route, body too large, bad request line).
  s.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message = "HTTP error " + std::to_string(res.status);
    if (res.status == 404) message = "unknown route: " + req.method + " " + req.path;
    if (res.status == 413) message = "the body is larger than the limit of " + std::to_string(options_.max_body_bytes) + " bytes";
    send_error(res, ApiError{res.status, message, "invalid_request_error", res.status == 404 ? "not_found" : ""});
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    std::string route = "other";
    for (const char* known : kKnownRoutes) {
      if (req.path == known) route = known;
    }
    metrics_.count_request(route, res.status);
  });
}

}  // namespace megrez::server
