#include "runtime/stream/expert_streamer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "loader/error.h"
#include "runtime/engine/activations.h"
#include "runtime/vk/context.h"

namespace megrez {

namespace {

constexpr uint32_t kAbsent = 0xFFFFFFFFu;  // slot table: expert not in the store (shaders/abi/moe.h)
constexpr uint32_t kMaxTimedSegments = 1024;

uint64_t round_up(uint64_t value, uint64_t multiple) { return (value + multiple - 1) / multiple * multiple; }

ExpertSlotLayout pool_layout(const std::vector<ExpertWeights>& experts) {
  const ExpertWeights& e = experts.at(0);
  return expert_slot_layout(e.gate.dtype, e.down.dtype, uint32_t(e.gate.cols()), uint32_t(e.gate.rows()));
}

uint32_t table_count(const ModelConfig& c, uint32_t slots) {
  const uint64_t moe_layers = uint64_t(c.num_hidden_layers - c.first_k_dense_replace);
  const uint64_t rounds = (uint64_t(c.n_routed_experts) + slots - 1) / slots + 1;
  return uint32_t(moe_layers * rounds + 1);
}

uint64_t table_bytes(const DeviceCaps& caps, const ModelConfig& c) {
  return round_up(uint64_t(c.n_routed_experts) * 4, std::max<uint64_t>(caps.storage_offset_alignment, 4));
}

// Staging of the Queue path: two layers' worth of a decode step's experts, at most the cache.
uint64_t staging_bytes(const ModelConfig& c, uint32_t stride, uint32_t slots) {
  return uint64_t(std::min<uint32_t>(slots, 2 * uint32_t(c.num_experts_per_tok))) * stride;
}

}  // namespace

uint32_t expert_slot_stride(const ModelWeights& weights) {
  uint32_t stride = 0;
  for (const std::vector<ExpertWeights>& pool : weights.pools) stride = std::max(stride, pool_layout(pool).slot_bytes);
  return stride;
}

uint64_t expert_streaming_bytes(const DeviceCaps& caps, const ModelConfig& config, const ModelWeights& weights,
                                uint32_t slots, ExpertUploadPath path) {
  const uint32_t stride = expert_slot_stride(weights);
  uint64_t bytes = uint64_t(slots) * stride + uint64_t(table_count(config, slots)) * table_bytes(caps, config);
  if (path == ExpertUploadPath::Queue) bytes += staging_bytes(config, stride, slots);
  return bytes;
}

uint64_t parse_expert_budget(std::string_view text, uint64_t expert_bytes) {
  auto bad = [&]() -> Error {
    return Error("expert budget '" + std::string(text) +
                 "': expected a share of the routed experts (\"25%\") or a size (\"512MB\", \"1.5GB\")");
  };
  size_t end = 0;
  double value = 0;
  try {
    value = std::stod(std::string(text), &end);
  } catch (...) {
    throw bad();
  }
  std::string unit(text.substr(end));
  for (char& ch : unit) ch = char(std::toupper(static_cast<unsigned char>(ch)));
  if (!std::isfinite(value) || value <= 0) throw bad();
  if (unit == "%") {
    if (value > 100) throw Error("expert budget " + std::string(text) + " is more than 100%");
    return uint64_t(std::floor(double(expert_bytes) * value / 100.0));
  }
  double scale = 0;
  if (unit == "B" || unit.empty()) scale = 1;
  else if (unit == "K" || unit == "KB" || unit == "KIB") scale = 1024.0;
  else if (unit == "M" || unit == "MB" || unit == "MIB") scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "GB" || unit == "GIB") scale = 1024.0 * 1024 * 1024;
  else throw bad();
  const double bytes = value * scale;  // beyond 2^63 bytes means "everything", not an overflow
  return bytes >= 9.2e18 ? std::numeric_limits<uint64_t>::max() : uint64_t(bytes);
}

// ---- ExpertStreamer ---------------------------------------------------------------------------

namespace {

std::vector<uint32_t> experts_per_pool(const ModelWeights& w) {
  std::vector<uint32_t> n;
  for (const std::vector<ExpertWeights>& pool : w.pools) n.push_back(uint32_t(pool.size()));
  return n;
}

std::vector<int> layer_pools(const ModelWeights& w) {
  std::vector<int> pools;
  for (const LayerWeights& l : w.layers) pools.push_back(l.pool);
  return pools;
}

// Whole slots per binding of the store (every pool's layout at the common stride).
uint32_t store_slots_per_part(const DeviceCaps& caps, const ModelWeights& weights, uint32_t slots) {
  ExpertSlotLayout common = pool_layout(weights.pools.at(0));
  common.slot_bytes = expert_slot_stride(weights);
  return std::min(expert_slots_per_part(caps, common), slots);
}

}  // namespace

ExpertStreamer::ExpertStreamer(Context& ctx, const ModelConfig& config, const ModelWeights& weights,
                               const Activations& act, const StreamerOptions& options)
    : ctx_(ctx),
      config_(config),
      weights_(weights),
      act_(act),
      options_(options),
      stride_(expert_slot_stride(weights)),
      slots_per_part_(store_slots_per_part(ctx.caps(), weights, options.slots)),
      cache_(options.slots, experts_per_pool(weights), layer_pools(weights), options.policy, slots_per_part_),
      compute_(ctx) {
  // The slot store, in parts of whole slots that each fit one binding.
  slot_arena_ = std::make_unique<Arena>(ctx, "expert-slots", MemoryUse::Device, uint64_t(options.slots) * stride_);
  std::vector<BufferRange> parts;
  for (uint32_t first = 0; first < options.slots; first += slots_per_part_) {
    const uint32_t n = std::min(slots_per_part_, options.slots - first);
    parts.push_back(slot_arena_->allocate(uint64_t(n) * stride_));
  }
  for (const std::vector<ExpertWeights>& pool : weights.pools) {
    ExpertSlots s;
    s.layout = pool_layout(pool);
    s.layout.slot_bytes = stride_;
    s.slots_per_part = slots_per_part_;
    s.parts = parts;
    pool_slots_.push_back(std::move(s));
  }
  // Slot tables: host-visible, written before the submission that reads them.
  const uint64_t one_table = table_bytes(ctx.caps(), config);
  const uint32_t n_tables = table_count(config, options.slots);
  table_arena_ = std::make_unique<Arena>(ctx, "expert-tables", MemoryUse::Staging, one_table * n_tables);
  for (uint32_t t = 0; t < n_tables; ++t) {
    tables_.push_back(table_arena_->allocate(uint64_t(config.n_routed_experts) * 4));
    std::memset(tables_.back().mapped, 0xFF, tables_.back().size);
  }
  uploader_ = std::make_unique<ExpertUploader>(ctx, options.path, compute_,
                                               staging_bytes(config, stride_, options.slots),
                                               options.storage_bytes_per_second);
  if (ctx.caps().timestamps) timer_ = std::make_unique<GpuProfiler>(ctx, kMaxTimedSegments);
  router_value_.assign(size_t(config.num_hidden_layers), 0);
  for (const std::vector<ExpertWeights>& pool : weights.pools) pass_use_.emplace_back(pool.size(), 0);
  last_use_ = pass_use_;
}

ExpertStreamer::~ExpertStreamer() {
  // Nothing may still read the slots or wait on the uploader when they go; queued uploads
  // are cancelled first, so no submission waits for one.
  try {
    uploader_->cancel();
    if (submitted_) compute_.wait(submitted_);
  } catch (...) {
  }
}

void ExpertStreamer::recover() {
  uploader_->cancel();
  if (submitted_) compute_.wait(submitted_);
  for (Segment& seg : segments_) seg.cmd->wait();  // an unfinished recording: the next begin() drops it
  cache_.clear();
}

std::string ExpertStreamer::summary() const {
  uint64_t total_experts = 0;
  for (const std::vector<ExpertWeights>& pool : weights_.pools) total_experts += pool.size();
  std::string s = std::string(stream_mode_name(options_.mode)) + ": " + std::to_string(options_.slots) + " of " +
                  std::to_string(total_experts) + " experts in " + format_bytes(uint64_t(options_.slots) * stride_) +
                  " of device memory (" + format_bytes(stride_) + " each), eviction " +
                  eviction_policy_name(options_.policy) + ", uploads by " +
                  describe_expert_upload_path(ctx_, options_.path);
  if (options_.storage_bytes_per_second > 0) {
    char bw[64];
    std::snprintf(bw, sizeof bw, ", storage throttled to %.2f GB/s", options_.storage_bytes_per_second / 1e9);
    s += bw;
  }
  return s;
}

CommandBuffer& ExpertStreamer::next_segment() {
  if (current_ == segments_.size()) segments_.push_back(Segment{std::make_unique<CommandBuffer>(ctx_), 0, 0, false});
  Segment& seg = segments_[current_];
  seg.cmd->begin();
  seg.upload = 0;
  seg.timed = false;
  if (timer_) {
    if (current_ == 0) timer_->reset(*seg.cmd);
    if (current_ < kMaxTimedSegments) {
      seg.timer_scope = timer_->begin(*seg.cmd, "segment");
      seg.timed = true;
    }
  }
  return *seg.cmd;
}

void ExpertStreamer::submit_current() {
  Segment& seg = segments_[current_];
  if (seg.timed) timer_->end(*seg.cmd, seg.timer_scope);
  std::vector<SemaphoreWait> waits;
  if (seg.upload) {
    if (uploader_->path() == ExpertUploadPath::HostCopy) {
      // The host finished the copies before this submission, so vkQueueSubmit itself makes
      // them visible; no GPU wait on a host-signalled semaphore (wait-before-signal is where
      // drivers and the validation layer are least reliable).
      uploader_->wait_done(seg.upload);
    } else {
      if (uploader_->shares_compute_queue()) uploader_->wait_submitted(seg.upload);
      waits.push_back({&uploader_->done(), seg.upload, VK_PIPELINE_STAGE_ALL_COMMANDS_BIT});
    }
    upload_segments_.push_back(uint32_t(current_));
  }
  // Counted only once submitted: a value that is never signalled would stall every later wait.
  seg.cmd->submit(waits, {{&compute_, submitted_ + 1}});
  ++submitted_;
  ++current_;
}

CommandBuffer& ExpertStreamer::begin_pass() {
  current_ = 0;
  next_table_ = 0;
  pass_ = {};
  for (std::vector<uint8_t>& pool : pass_use_) std::fill(pool.begin(), pool.end(), 0);
  upload_segments_.clear();
  std::fill(router_value_.begin(), router_value_.end(), 0);
  return next_segment();
}

CommandBuffer& ExpertStreamer::cut(CommandBuffer& cmd, int64_t routed_layer) {
  if (&cmd != segments_[current_].cmd.get()) throw Error("expert streamer: cut of a foreign command buffer");
  if (routed_layer >= 0) router_value_[size_t(routed_layer)] = submitted_ + 1;
  submit_current();
  return next_segment();
}

void ExpertStreamer::finish_pass(CommandBuffer& last) {
  if (&last != segments_[current_].cmd.get()) throw Error("expert streamer: finish of a foreign command buffer");
  submit_current();
  compute_.wait(submitted_);
  segments_[current_ - 1].cmd->wait();  // its fence, so CommandBuffer state is settled
  uploader_->check();  // an upload only the GPU waited for (the pass's last) failed: this pass's error
  if (timer_) {
    const std::vector<GpuProfiler::Scope> scopes = timer_->results();
    const double ns_per_tick = ctx_.info().props.limits.timestampPeriod;
    for (uint32_t s : upload_segments_) {
      if (s == 0 || s >= scopes.size()) continue;
      const double gap = double(int64_t(scopes[s].begin_ticks - scopes[s - 1].end_ticks)) * ns_per_tick * 1e-6;
      pass_.stall_ms += std::max(0.0, gap);
    }
    pass_.stall_measured = true;
  }
  pass_.slots = cache_.slots();
  pass_.occupied = cache_.occupied();
  last_pass_ = pass_;
  last_use_ = pass_use_;
  totals_.add(pass_);
}

ExpertMap ExpertStreamer::expert_map() const {
  ExpertMap map;
  map.usage_known = true;
  map.used = last_use_;
  map.resident.resize(weights_.pools.size());
  for (uint32_t p = 0; p < weights_.pools.size(); ++p) {
    map.resident[p].resize(weights_.pools[p].size());
    for (uint32_t e = 0; e < weights_.pools[p].size(); ++e) map.resident[p][e] = cache_.slot_of(p, e) ? 1 : 0;
  }
  return map;
}

BufferRange ExpertStreamer::next_table() {
  if (next_table_ == tables_.size()) throw Error("expert streamer: out of slot tables for this pass");
  return tables_[next_table_++];
}

std::vector<SlotUpload> ExpertStreamer::uploads_for(uint32_t pool, const ExpertPlacement& plan) const {
  const ExpertSlots& slots = pool_slots_[pool];
  std::vector<SlotUpload> uploads;
  for (const ExpertPlacement::Entry& e : plan.entries) {
    if (!e.miss) continue;
    const ExpertWeights& w = weights_.pools[pool][e.expert];
    SlotUpload u;
    u.slot = slots.parts[e.slot / slots_per_part_].slice(uint64_t(e.slot % slots_per_part_) * stride_, stride_);
    u.sources = {w.gate.bytes, w.up.bytes, w.down.bytes};
    u.offsets = {slots.layout.gate_offset, slots.layout.up_offset, slots.layout.down_offset};
    uploads.push_back(u);
  }
  return uploads;
}

void ExpertStreamer::routed_experts(int64_t layer, uint32_t tokens, const RecordExperts& record,
                                    const CutPass& cut_pass) {
  const uint32_t pool = uint32_t(weights_.layers[size_t(layer)].pool);
  const uint32_t K = uint32_t(config_.num_experts_per_tok), E = uint32_t(weights_.pools[pool].size());
  // The ids: known once the submission holding this layer's router completed. On demand waits
  // for everything submitted instead, so the GPU is idle while the experts load.
  const uint64_t ready = options_.mode == StreamMode::OnDemand ? submitted_ : router_value_[size_t(layer)];
  if (ready == 0) throw Error("expert streamer: layer " + std::to_string(layer) + " has no router submission");
  compute_.wait(ready);
  const auto* ids = reinterpret_cast<const uint32_t*>(act_.route_ids_host(layer).mapped);
  std::vector<uint32_t> needed;
  for (uint32_t i = 0; i < tokens * K; ++i) {
    if (ids[i] < E) needed.push_back(ids[i]);
  }
  std::sort(needed.begin(), needed.end());
  needed.erase(std::unique(needed.begin(), needed.end()), needed.end());
  pass_.lookups += needed.size();
  for (uint32_t e : needed) {
    uint8_t& use = pass_use_[pool][e];
    if (use < 255) ++use;
  }

  // Rounds: the resident experts and as many misses as fit, then the other misses a cache-full
  // at a time (a decode step always takes one round: top_k < slots).
  std::vector<uint32_t> hits, misses;
  for (uint32_t e : needed) (cache_.slot_of(pool, e) ? hits : misses).push_back(e);
  std::vector<std::vector<uint32_t>> rounds(1, hits);
  for (uint32_t e : misses) {
    if (rounds.back().size() == cache_.slots()) rounds.emplace_back();
    rounds.back().push_back(e);
  }
  for (size_t r = 0; r < rounds.size(); ++r) {
    if (r > 0) {
      cut_pass();  // this round's uploads may overwrite the previous round's slots
      ++pass_.rounds;
    }
    const uint64_t completed = compute_.value();
    const ExpertPlacement plan = cache_.place(pool, rounds[r], int(layer), submitted_ + 1, completed);
    pass_.hits += plan.hits;
    pass_.misses += plan.misses;
    if (plan.misses) {
      std::vector<SlotUpload> uploads = uploads_for(pool, plan);
      for (const SlotUpload& u : uploads) pass_.bytes_uploaded += u.bytes();
      const uint64_t value = uploader_->enqueue(std::move(uploads), plan.wait_for > completed ? plan.wait_for : 0);
      ++pass_.uploads;
      segments_[current_].upload = value;
      if (options_.mode == StreamMode::OnDemand) uploader_->wait_done(value);
    }
    const BufferRange table = next_table();
    auto* entries = reinterpret_cast<uint32_t*>(table.mapped);
    std::fill(entries, entries + E, kAbsent);
    std::vector<uint32_t> parts;
    for (const ExpertPlacement::Entry& e : plan.entries) {
      entries[e.expert] = e.slot;
      parts.push_back(e.slot / slots_per_part_);
    }
    std::sort(parts.begin(), parts.end());
    parts.erase(std::unique(parts.begin(), parts.end()), parts.end());
    if (!parts.empty()) record(pool_slots_[pool], table, parts);
  }
}

void ExpertStreamer::RecordingOnly::routed_experts(int64_t layer, uint32_t, const RecordExperts& record,
                                                   const CutPass&) {
  const uint32_t pool = uint32_t(s_.weights_.layers[size_t(layer)].pool);
  record(s_.pool_slots_[pool], s_.tables_[0], {});
}

}  // namespace megrez
