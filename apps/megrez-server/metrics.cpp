#include "apps/megrez-server/metrics.h"

#include <cstdio>

namespace megrez::server {

namespace {

void metric(std::string& out, const char* name, const char* type, const char* help, double value) {
  char line[64];
  std::snprintf(line, sizeof line, "%.17g", value);
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " + line + "\n";
}

}  // namespace

void Metrics::count_request(const std::string& route, int status) {
  std::lock_guard lock(mutex_);
  ++requests_[{route, status}];
}

void Metrics::count_generation(const TextResult& r, bool cancelled) {
  std::lock_guard lock(mutex_);
  ++generations_;
  if (cancelled) ++cancelled_;
  prompt_tokens_ += r.prompt_tokens;
  prompt_tokens_reused_ += r.prompt_tokens - r.prompt_tokens_fed;
  completion_tokens_ += r.completion_tokens;
  prefill_seconds_ += r.prefill_seconds;
  decode_seconds_ += r.decode_seconds;
  if (r.decode_seconds > 0 && r.completion_tokens > 1) last_tokens_per_second_ = (r.completion_tokens - 1) / r.decode_seconds;
}

void Metrics::set_engine_stats(const EngineStats& stats) {
  std::lock_guard lock(mutex_);
  engine_ = stats;
}

void Metrics::set_queue(uint32_t waiting, uint32_t busy_slots, uint32_t slots) {
  std::lock_guard lock(mutex_);
  waiting_ = waiting;
  busy_ = busy_slots;
  slots_ = slots;
}

std::string Metrics::prometheus_text() const {
  std::lock_guard lock(mutex_);
  std::string out = "# HELP megrez_http_requests_total HTTP requests answered, by route and status code.\n"
                    "# TYPE megrez_http_requests_total counter\n";
  for (const auto& [key, count] : requests_) {
    out += "megrez_http_requests_total{route=\"" + key.first + "\",code=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(count) + "\n";
  }
  metric(out, "megrez_generations_total", "counter", "Generations run (completed or cancelled).", double(generations_));
  metric(out, "megrez_generations_cancelled_total", "counter", "Generations ended because the client went away.",
         double(cancelled_));
  metric(out, "megrez_prompt_tokens_total", "counter", "Prompt tokens of every generation.", double(prompt_tokens_));
  metric(out, "megrez_prompt_tokens_reused_total", "counter",
         "Prompt tokens found in a slot's KV cache and not prefilled again.", double(prompt_tokens_reused_));
  metric(out, "megrez_completion_tokens_total", "counter", "Generated tokens.", double(completion_tokens_));
  metric(out, "megrez_prefill_seconds_total", "counter", "Seconds spent prefilling prompts.", prefill_seconds_);
  metric(out, "megrez_decode_seconds_total", "counter", "Seconds spent generating.", decode_seconds_);
  metric(out, "megrez_decode_tokens_per_second", "gauge", "Generation speed of the last finished request.",
         last_tokens_per_second_);
  metric(out, "megrez_queue_length", "gauge", "Requests waiting for a free slot.", double(waiting_));
  metric(out, "megrez_slots_busy", "gauge", "Slots generating now.", double(busy_));
  metric(out, "megrez_slots", "gauge", "Slots (sequences with their own KV cache).", double(slots_));
  const StreamStats& s = engine_.stream;
  metric(out, "megrez_expert_cache_lookups_total", "counter", "Routed-expert lookups in the expert cache (streaming).",
         double(s.lookups));
  metric(out, "megrez_expert_cache_hit_rate", "gauge", "Share of expert lookups found resident (streaming; 0 when resident).",
         s.hit_rate());
  metric(out, "megrez_expert_bytes_uploaded_total", "counter", "Expert bytes uploaded on cache misses.",
         double(s.bytes_uploaded));
  metric(out, "megrez_expert_stall_seconds_total", "counter", "GPU time compute waited for expert uploads.",
         s.stall_ms / 1000.0);
  metric(out, "megrez_device_memory_bytes", "gauge", "Device memory held by weights, KV caches, activations and expert slots.",
         double(engine_.weight_bytes + engine_.kv_cache_bytes + engine_.activation_bytes + engine_.expert_cache_bytes));
  return out;
}

}  // namespace megrez::server
