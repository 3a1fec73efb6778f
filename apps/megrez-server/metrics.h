#pragma once
// The server's counters, written by the HTTP threads and the slots, read by GET /metrics in
// Prometheus' text format. The engine's own statistics are copied in by the slot that just
// used the engine, so /metrics never touches the engine while another thread drives it.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "runtime/engine/engine.h"
#include "runtime/engine/generate.h"

namespace megrez::server {

class Metrics {
 public:
  // One HTTP request answered: its route and status code.
  void count_request(const std::string& route, int status);
  // One generation finished: its figures.
  void count_generation(const TextResult& result, bool cancelled);
  // The engine's totals after a generation (called with the engine held).
  void set_engine_stats(const EngineStats& stats);
  void set_queue(uint32_t waiting, uint32_t busy_slots, uint32_t slots);

  std::string prometheus_text() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  uint64_t generations_ = 0, cancelled_ = 0;
  uint64_t prompt_tokens_ = 0, prompt_tokens_reused_ = 0, completion_tokens_ = 0;
  double prefill_seconds_ = 0, decode_seconds_ = 0, last_tokens_per_second_ = 0;
  uint32_t waiting_ = 0, busy_ = 0, slots_ = 0;
  EngineStats engine_;
};

}  // namespace megrez::server
