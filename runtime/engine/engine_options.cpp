// The option and statistics helpers engine.h declares: names of the KV cache types and
// streaming modes (as the flags spell them), and summing per-pass streaming statistics.
#include "runtime/engine/engine.h"

namespace megrez {

bool kv_cache_type_from_name(std::string_view name, KvCacheType& out) {
  if (name == "f16") out = KvCacheType::F16;
  else if (name == "f32") out = KvCacheType::F32;
  else return false;
  return true;
}

bool stream_mode_from_name(std::string_view name, StreamMode& out) {
  if (name == "auto") out = StreamMode::Auto;
  else if (name == "resident") out = StreamMode::Resident;
  else if (name == "prefetch") out = StreamMode::Prefetch;
  else if (name == "ondemand") out = StreamMode::OnDemand;
  else return false;
  return true;
}

const char* stream_mode_name(StreamMode mode) {
  switch (mode) {
    case StreamMode::Auto: return "auto";
    case StreamMode::Resident: return "resident";
    case StreamMode::Prefetch: return "prefetch";
    case StreamMode::OnDemand: return "ondemand";
  }
  return "?";
}

void StreamStats::add(const StreamStats& pass) {
  lookups += pass.lookups;
  hits += pass.hits;
  misses += pass.misses;
  bytes_uploaded += pass.bytes_uploaded;
  uploads += pass.uploads;
  rounds += pass.rounds;
  stall_ms += pass.stall_ms;
  stall_measured = pass.stall_measured;
  slots = pass.slots;
  occupied = pass.occupied;
}

}  // namespace megrez
