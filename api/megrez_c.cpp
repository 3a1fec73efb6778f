// The C API (api/megrez.h) over the C++ engine: handles, status codes, a per-thread message.
// Every entry point runs its body inside guarded(), so no exception crosses into C.
#include "api/megrez.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <vector>

#include "loader/error.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/generate.h"
#include "runtime/vk/context.h"
#include "runtime/vk/device_info.h"

struct megrez_model {
  std::unique_ptr<megrez::Engine> engine;
  std::mutex mutex;                 // one call runs the engine at a time
  std::string device_name;
  bool sequence0_taken = false;     // the first session uses the sequence the engine loads with
  std::set<megrez_session*> sessions;
};

struct megrez_session {
  enum class Holds { Nothing, Plain, Chat };  // what the sequence's KV cache holds

  megrez_model* model = nullptr;
  megrez::Engine::SequenceId sequence = 0;
  std::unique_ptr<megrez::ChatSession> chat;  // created on first use (needs a tokenizer)
  std::vector<int32_t> cached;                // Holds::Plain: the tokens in the KV cache
  Holds holds = Holds::Nothing;
  std::string system_prompt;
  std::atomic<bool> cancel{false};
  megrez::TextResult last;
};

namespace {

thread_local std::string last_error;

using megrez::ErrorKind;

megrez_status status_of(ErrorKind kind, megrez_status general) {
  switch (kind) {
    case ErrorKind::General: return general;
    case ErrorKind::InvalidArgument: return MEGREZ_ERROR_INVALID_ARGUMENT;
    case ErrorKind::Model: return MEGREZ_ERROR_MODEL;
    case ErrorKind::Device: return MEGREZ_ERROR_DEVICE;
    case ErrorKind::OutOfMemory: return MEGREZ_ERROR_OUT_OF_MEMORY;
    case ErrorKind::ContextFull: return MEGREZ_ERROR_CONTEXT_FULL;
    case ErrorKind::Cancelled: return MEGREZ_ERROR_INVALID_ARGUMENT;
  }
  return general;
}

megrez_status fail(megrez_status status, std::string message) {
  std::replace(message.begin(), message.end(), '\n', ' ');  // one line, whatever the source
  last_error = std::move(message);
  return status;
}

// Runs `body`; any exception becomes a status and this thread's message. `general` is the
// status of a megrez::Error of no particular kind (what the call's errors usually are).
template <class Body>
megrez_status guarded(megrez_status general, Body&& body) noexcept {
  try {
    return body();
  } catch (const megrez::Error& e) {
    return fail(status_of(e.kind(), general), e.what());
  } catch (const std::bad_alloc&) {
    return fail(MEGREZ_ERROR_OUT_OF_MEMORY, "out of host memory");
  } catch (const std::exception& e) {
    return fail(MEGREZ_ERROR_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(MEGREZ_ERROR_INTERNAL, "internal error (unknown exception)");
  }
}

megrez_status invalid(const std::string& message) { return fail(MEGREZ_ERROR_INVALID_ARGUMENT, message); }

megrez::TextOptions text_options(const megrez_generate_params& p, megrez_session& s, megrez_text_fn on_text,
                                 void* user) {
  megrez::TextOptions o;
  o.max_tokens = p.max_tokens;
  o.sampler.temperature = p.temperature;
  o.sampler.top_k = p.top_k;
  o.sampler.top_p = p.top_p;
  o.sampler.repeat_penalty = p.repeat_penalty;
  o.sampler.seed = p.seed;
  if (p.stop_count > 0 && !p.stop) throw megrez::Error("stop_count is set but stop is NULL", ErrorKind::InvalidArgument);
  if (p.stop_count > megrez::kMaxStopSequences) {
    throw megrez::Error(std::to_string(p.stop_count) + " stop sequences; at most " +
                        std::to_string(megrez::kMaxStopSequences), ErrorKind::InvalidArgument);
  }
  for (size_t i = 0; i < p.stop_count; ++i) {
    if (!p.stop[i]) throw megrez::Error("stop sequence " + std::to_string(i) + " is NULL", ErrorKind::InvalidArgument);
    o.stop.emplace_back(p.stop[i]);
  }
  o.cancel = &s.cancel;
  if (on_text) {
    o.on_text = [on_text, user](std::string_view text) { return on_text(text.data(), text.size(), user) == 0; };
  }
  return o;
}

// Runs `body` on the session's sequence with the model locked; the cancel flag is cleared
// first, so a cancel from another thread while this call waits for the lock still counts.
template <class Body>
megrez_status run_session(megrez_session* s, const megrez_generate_params* params, Body&& body) {
  if (!s) return invalid("session is NULL");
  s->cancel.store(false);
  return guarded(MEGREZ_ERROR_INVALID_ARGUMENT, [&] {
    const megrez_generate_params p = params ? *params : megrez_generate_params_default();
    std::lock_guard lock(s->model->mutex);
    megrez::Engine& engine = *s->model->engine;
    engine.select_sequence(s->sequence);
    body(engine, p);
    return MEGREZ_OK;
  });
}

megrez::ChatSession& chat_of(megrez_session& s, megrez::Engine& engine) {
  if (!s.chat) {
    s.chat = std::make_unique<megrez::ChatSession>(engine);
    s.chat->set_system_prompt(s.system_prompt);
  }
  if (s.holds != megrez_session::Holds::Chat) s.chat->clear();  // the cache held something else
  s.holds = megrez_session::Holds::Chat;
  return *s.chat;
}

}  // namespace

extern "C" {

const char* megrez_version(void) { return MEGREZ_VERSION_STRING; }
const char* megrez_last_error(void) { return last_error.c_str(); }

const char* megrez_status_name(megrez_status status) {
  switch (status) {
    case MEGREZ_OK: return "MEGREZ_OK";
    case MEGREZ_ERROR_INVALID_ARGUMENT: return "MEGREZ_ERROR_INVALID_ARGUMENT";
    case MEGREZ_ERROR_MODEL: return "MEGREZ_ERROR_MODEL";
    case MEGREZ_ERROR_DEVICE: return "MEGREZ_ERROR_DEVICE";
    case MEGREZ_ERROR_OUT_OF_MEMORY: return "MEGREZ_ERROR_OUT_OF_MEMORY";
    case MEGREZ_ERROR_CONTEXT_FULL: return "MEGREZ_ERROR_CONTEXT_FULL";
    case MEGREZ_ERROR_BUFFER_TOO_SMALL: return "MEGREZ_ERROR_BUFFER_TOO_SMALL";
    case MEGREZ_ERROR_INTERNAL: return "MEGREZ_ERROR_INTERNAL";
  }
  return "unknown megrez_status";
}

const char* megrez_finish_reason_name(megrez_finish_reason reason) {
  switch (reason) {
    case MEGREZ_FINISH_STOP: return "stop";
    case MEGREZ_FINISH_LENGTH: return "length";
    case MEGREZ_FINISH_CONTEXT: return "context";
    case MEGREZ_FINISH_CANCELLED: return "cancelled";
  }
  return "unknown";
}

megrez_status megrez_device_count(uint32_t* count) {
  if (!count) return invalid("count is NULL");
  return guarded(MEGREZ_ERROR_DEVICE, [&] {
    *count = uint32_t(megrez::query_devices().size());
    return MEGREZ_OK;
  });
}

megrez_status megrez_device_name(uint32_t index, char* name, size_t capacity) {
  if (!name && capacity > 0) return invalid("name is NULL");
  return guarded(MEGREZ_ERROR_DEVICE, [&] {
    const std::vector<megrez::DeviceInfo> devices = megrez::query_devices();
    if (index >= devices.size()) {
      return invalid("no device " + std::to_string(index) + " (there are " + std::to_string(devices.size()) + ")");
    }
    const std::string text = devices[index].name();
    if (text.size() + 1 > capacity) {
      return fail(MEGREZ_ERROR_BUFFER_TOO_SMALL, "the device name needs " + std::to_string(text.size() + 1) + " bytes");
    }
    std::memcpy(name, text.c_str(), text.size() + 1);
    return MEGREZ_OK;
  });
}

megrez_model_params megrez_model_params_default(void) {
  megrez_model_params p;
  std::memset(&p, 0, sizeof p);
  p.stream = MEGREZ_STREAM_AUTO;
  return p;
}

megrez_status megrez_model_load(const char* path, const megrez_model_params* params, megrez_model** model) {
  if (!model) return invalid("model is NULL");
  *model = nullptr;
  if (!path) return invalid("path is NULL");
  const megrez_model_params p = params ? *params : megrez_model_params_default();
  if (p.stream < MEGREZ_STREAM_AUTO || p.stream > MEGREZ_STREAM_ONDEMAND) {
    return invalid("stream mode " + std::to_string(int(p.stream)) + " is not one of MEGREZ_STREAM_*");
  }
  if (p.kv_f32 != 0 && p.kv_f32 != 1) return invalid("kv_f32 must be 0 or 1");
  return guarded(MEGREZ_ERROR_MODEL, [&] {
    megrez::EngineOptions o;
    if (p.device) o.device = p.device;
    if (p.profile) o.profile = p.profile;
    o.ctx_len = p.context_length;
    o.kv_type = p.kv_f32 ? megrez::KvCacheType::F32 : megrez::KvCacheType::F16;
    if (p.expert_budget) o.expert_budget = p.expert_budget;
    constexpr megrez::StreamMode modes[] = {megrez::StreamMode::Auto, megrez::StreamMode::Resident,
                                            megrez::StreamMode::Prefetch, megrez::StreamMode::OnDemand};
    o.stream = modes[p.stream];
    if (p.pipeline_cache) o.pipeline_cache = p.pipeline_cache;
    if (p.validation) o.validation = true;  // 0: the MEGREZ_VALIDATION environment variable decides
    if (p.progress) {
      o.on_progress = [&p](float fraction, std::string_view stage) {
        p.progress(fraction, std::string(stage).c_str(), p.progress_user);
      };
    }
    auto m = std::make_unique<megrez_model>();
    m->engine = megrez::Engine::load(path, o);
    m->device_name = m->engine->device_name();
    *model = m.release();
    return MEGREZ_OK;
  });
}

void megrez_model_free(megrez_model* model) {
  if (!model) return;
  guarded(MEGREZ_ERROR_INTERNAL, [&] {
    for (megrez_session* s : model->sessions) delete s;
    model->sessions.clear();
    delete model;
    return MEGREZ_OK;
  });
}

const char* megrez_model_device_name(const megrez_model* model) { return model ? model->device_name.c_str() : ""; }

megrez_status megrez_tokenize(megrez_model* model, const char* text, int32_t* ids, size_t capacity, size_t* count) {
  if (!model || !text || !count) return invalid(!model ? "model is NULL" : !text ? "text is NULL" : "count is NULL");
  if (!ids && capacity > 0) return invalid("ids is NULL");
  return guarded(MEGREZ_ERROR_INVALID_ARGUMENT, [&] {
    std::vector<int32_t> out;
    {
      std::lock_guard lock(model->mutex);
      out = model->engine->tokenize(text, false);
    }
    *count = out.size();
    if (out.size() > capacity) {
      return fail(MEGREZ_ERROR_BUFFER_TOO_SMALL, "the text has " + std::to_string(out.size()) + " tokens; room for " +
                                                     std::to_string(capacity));
    }
    std::copy(out.begin(), out.end(), ids);
    return MEGREZ_OK;
  });
}

megrez_status megrez_detokenize(megrez_model* model, const int32_t* ids, size_t count, char* text, size_t capacity,
                                size_t* length) {
  if (!model || !length) return invalid(!model ? "model is NULL" : "length is NULL");
  if (!ids && count > 0) return invalid("ids is NULL");
  if (!text && capacity > 0) return invalid("text is NULL");
  return guarded(MEGREZ_ERROR_INVALID_ARGUMENT, [&] {
    std::string out;
    {
      std::lock_guard lock(model->mutex);
      const megrez::Tokenizer& tokenizer = model->engine->tokenizer();
      for (size_t i = 0; i < count; ++i) {
        if (ids[i] < 0 || ids[i] >= tokenizer.vocab_size()) {
          return invalid("token id " + std::to_string(ids[i]) + " is outside the vocabulary (0.." +
                         std::to_string(tokenizer.vocab_size() - 1) + ")");
        }
      }
      out = tokenizer.decode(std::span<const int32_t>(ids, count));
    }
    *length = out.size();
    if (out.size() + 1 > capacity) {
      return fail(MEGREZ_ERROR_BUFFER_TOO_SMALL, "the text needs " + std::to_string(out.size() + 1) + " bytes");
    }
    std::memcpy(text, out.c_str(), out.size() + 1);
    return MEGREZ_OK;
  });
}

megrez_status megrez_session_create(megrez_model* model, megrez_session** session) {
  if (!session) return invalid("session is NULL");
  *session = nullptr;
  if (!model) return invalid("model is NULL");
  return guarded(MEGREZ_ERROR_OUT_OF_MEMORY, [&] {
    auto s = std::make_unique<megrez_session>();
    s->model = model;
    std::lock_guard lock(model->mutex);
    if (!model->sequence0_taken) {
      s->sequence = 0;
      model->sequence0_taken = true;
    } else {
      s->sequence = model->engine->add_sequence();
    }
    model->engine->select_sequence(s->sequence);
    model->engine->reset();
    model->sessions.insert(s.get());
    *session = s.release();
    return MEGREZ_OK;
  });
}

void megrez_session_destroy(megrez_session* session) {
  if (!session) return;
  guarded(MEGREZ_ERROR_INTERNAL, [&] {
    megrez_model* model = session->model;
    std::lock_guard lock(model->mutex);
    session->chat.reset();
    if (session->sequence == 0) model->sequence0_taken = false;
    else model->engine->remove_sequence(session->sequence);
    model->sessions.erase(session);
    delete session;
    return MEGREZ_OK;
  });
}

megrez_generate_params megrez_generate_params_default(void) {
  megrez_generate_params p;
  std::memset(&p, 0, sizeof p);
  p.max_tokens = 256;
  p.top_p = 1.0f;
  p.repeat_penalty = 1.0f;
  return p;
}

megrez_status megrez_session_generate(megrez_session* session, const char* prompt,
                                      const megrez_generate_params* params, megrez_text_fn on_text, void* user) {
  if (!prompt) return invalid("prompt is NULL");
  return run_session(session, params, [&](megrez::Engine& engine, const megrez_generate_params& p) {
    const megrez::TextOptions options = text_options(p, *session, on_text, user);
    const std::vector<int32_t> ids = engine.tokenize(prompt, false);
    if (session->holds != megrez_session::Holds::Plain) session->cached.clear();
    session->holds = megrez_session::Holds::Plain;
    session->last = megrez::complete_text(engine, session->cached, ids, options);
  });
}

megrez_status megrez_session_chat(megrez_session* session, const char* user_message,
                                  const megrez_generate_params* params, megrez_text_fn on_text, void* user) {
  if (!user_message) return invalid("user_message is NULL");
  return run_session(session, params, [&](megrez::Engine& engine, const megrez_generate_params& p) {
    const megrez::TextOptions options = text_options(p, *session, on_text, user);
    session->last = chat_of(*session, engine).reply(user_message, options);
  });
}

megrez_status megrez_session_set_system_prompt(megrez_session* session, const char* text) {
  return run_session(session, nullptr, [&](megrez::Engine&, const megrez_generate_params&) {
    session->system_prompt = text ? text : "";
    if (session->chat) session->chat->set_system_prompt(session->system_prompt);
    session->holds = megrez_session::Holds::Nothing;
  });
}

megrez_status megrez_session_reset(megrez_session* session) {
  return run_session(session, nullptr, [&](megrez::Engine& engine, const megrez_generate_params&) {
    if (session->chat) session->chat->clear();
    engine.reset();
    session->cached.clear();
    session->holds = megrez_session::Holds::Nothing;
  });
}

const char* megrez_session_last_text(const megrez_session* session) {
  return session ? session->last.text.c_str() : "";
}

void megrez_session_cancel(megrez_session* session) {
  if (session) session->cancel.store(true);
}

megrez_status megrez_session_stats(const megrez_session* session, megrez_stats* stats) {
  if (!session || !stats) return invalid(!session ? "session is NULL" : "stats is NULL");
  return guarded(MEGREZ_ERROR_INTERNAL, [&] {
    std::memset(stats, 0, sizeof *stats);
    const megrez::TextResult& r = session->last;
    stats->prompt_tokens = r.prompt_tokens;
    stats->prompt_tokens_fed = r.prompt_tokens_fed;
    stats->completion_tokens = r.completion_tokens;
    constexpr megrez_finish_reason reasons[] = {MEGREZ_FINISH_STOP, MEGREZ_FINISH_LENGTH, MEGREZ_FINISH_CONTEXT,
                                                MEGREZ_FINISH_CANCELLED};
    stats->finish_reason = reasons[int(r.finish)];
    stats->time_to_first_token_ms = r.time_to_first_token * 1e3;
    stats->prefill_tokens_per_second = r.prefill_seconds > 0 ? r.prompt_tokens_fed / r.prefill_seconds : 0;
    const uint32_t decoded = r.completion_tokens > 1 ? r.completion_tokens - 1 : 0;
    stats->decode_tokens_per_second = r.decode_seconds > 0 ? decoded / r.decode_seconds : 0;

    std::lock_guard lock(session->model->mutex);
    megrez::Engine& engine = *session->model->engine;
    engine.select_sequence(session->sequence);
    stats->context_used = engine.position();
    stats->context_length = engine.context_length();
    const megrez::EngineStats& e = engine.stats();
    stats->load_seconds = e.load_seconds;
    stats->pipeline_seconds = e.pipeline_seconds;
    stats->device_memory_bytes = e.weight_bytes + e.expert_cache_bytes + e.kv_cache_bytes + e.activation_bytes;
    stats->expert_lookups = e.stream.lookups;
    stats->expert_hits = e.stream.hits;
    stats->expert_misses = e.stream.misses;
    stats->expert_bytes_uploaded = e.stream.bytes_uploaded;
    stats->expert_hit_rate = e.stream.hit_rate();
    stats->expert_stall_ms = e.stream.stall_ms;
    return MEGREZ_OK;
  });
}

}  // extern "C"
