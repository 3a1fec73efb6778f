#pragma once
// Streaming mode (design.md "Execution modes and the expert streamer"): routed experts stay in
// the memory-mapped model file; device memory holds a budget of expert slots (ExpertCache).
// The forward pass is cut into submissions after every router (ExpertFeed). At layer i's
// experts the streamer reads layer i's ids (computed one layer early from layer i-1's h2),
// places them in the cache, queues the misses on the ExpertUploader and makes the submission
// holding layer i's experts wait for that upload on the compute queue; the submission before
// it (layer i-1's MoE, layer i's attention) runs meanwhile.
//   Prefetch  the ids are read as soon as the router's submission completed (overlap).
//   OnDemand  the baseline: the host first waits for all submitted work, then uploads and
//             waits for the upload (no overlap).
// A prefill chunk whose experts do not fit the cache runs its experts in rounds: each round
// uploads what fits, computes the entries of those experts, and the next round reuses the
// slots after that submission completed. Every round uses the same kernels on the same
// bytes, so logits are bit-identical to resident mode.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "loader/formats/config.h"
#include "loader/weights.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/forward.h"
#include "runtime/stream/expert_cache.h"
#include "runtime/stream/expert_uploader.h"
#include "runtime/vk/profiler.h"

namespace megrez {

struct DeviceCaps;

struct StreamerOptions {
  StreamMode mode = StreamMode::Prefetch;  // Prefetch or OnDemand
  uint32_t slots = 0;
  EvictionPolicy policy = EvictionPolicy::PoolDistance;
  ExpertUploadPath path = ExpertUploadPath::Queue;
  double storage_bytes_per_second = 0;
};

// Bytes between slots: the largest slot layout of the model's pools (one store serves all).
uint32_t expert_slot_stride(const ModelWeights& weights);
// Device bytes of the slot store, slot tables and staging for `slots` slots.
uint64_t expert_streaming_bytes(const DeviceCaps& caps, const ModelConfig& config, const ModelWeights& weights,
                                uint32_t slots, ExpertUploadPath path);
// Parses --expert-budget: "25%" of `expert_bytes`, or a size "512MB", "1.5GB", "300MiB", "2G"
// (K/M/G = KiB/MiB/GiB). megrez::Error on anything else.
uint64_t parse_expert_budget(std::string_view text, uint64_t expert_bytes);

class ExpertStreamer final : public ExpertFeed {
 public:
  ExpertStreamer(Context& ctx, const ModelConfig& config, const ModelWeights& weights, const Activations& act,
                 const StreamerOptions& options);
  ~ExpertStreamer() override;

  // A pass: begin_pass() gives the first command buffer; Forward::record(..., this) cuts it;
  // finish_pass() submits the last one and waits for everything.
  CommandBuffer& begin_pass();
  void finish_pass(CommandBuffer& last);
  // After a pass threw (recording, submitting, uploading): cancels queued uploads, waits for
  // everything submitted and empties the cache, whose slots may miss uploads it counted on,
  // so the next pass starts clean. Throws when the device cannot be waited for.
  void recover();

  CommandBuffer& cut(CommandBuffer& cmd, int64_t routed_layer) override;
  void routed_experts(int64_t layer, uint32_t tokens, const RecordExperts& record, const CutPass& cut_pass) override;

  // Records against the slot store without submitting or uploading (pipeline warm-up).
  ExpertFeed& recording_only() { return recording_only_; }

  const StreamStats& last_pass() const { return last_pass_; }
  const StreamStats& totals() const { return totals_; }
  void reset_totals() { totals_ = {}; }
  std::string summary() const;
  ExpertMap expert_map() const;  // residency now, use in the last finished pass

 private:
  class RecordingOnly final : public ExpertFeed {
   public:
    explicit RecordingOnly(ExpertStreamer& s) : s_(s) {}
    CommandBuffer& cut(CommandBuffer& cmd, int64_t) override { return cmd; }
    void routed_experts(int64_t layer, uint32_t, const RecordExperts& record, const CutPass&) override;

   private:
    ExpertStreamer& s_;
  };
  struct Segment {
    std::unique_ptr<CommandBuffer> cmd;
    uint64_t upload = 0;    // transfer value its experts wait for (0: none)
    uint32_t timer_scope = 0;
    bool timed = false;
  };

  CommandBuffer& next_segment();
  void submit_current();
  BufferRange next_table();
  std::vector<SlotUpload> uploads_for(uint32_t pool, const ExpertPlacement& plan) const;

  Context& ctx_;
  const ModelConfig& config_;
  const ModelWeights& weights_;
  const Activations& act_;
  StreamerOptions options_;
  uint32_t stride_ = 0, slots_per_part_ = 0;
  std::unique_ptr<Arena> slot_arena_, table_arena_;
  std::vector<ExpertSlots> pool_slots_;  // per pool: its layout over the shared store
  std::vector<BufferRange> tables_;      // ring of slot tables, reused every pass
  size_t next_table_ = 0;
  ExpertCache cache_;
  TimelineSemaphore compute_;            // signalled by every submitted segment
  std::unique_ptr<ExpertUploader> uploader_;
  std::unique_ptr<GpuProfiler> timer_;   // segment timestamps for the stall time (when supported)
  std::vector<Segment> segments_;        // reused every pass
  size_t current_ = 0;                   // segment being recorded
  uint64_t submitted_ = 0;               // compute value of the last submitted segment
  std::vector<uint64_t> router_value_;   // per layer: the segment holding its router, this pass
  std::vector<uint32_t> upload_segments_;// this pass: segments that waited on an upload
  StreamStats pass_, last_pass_, totals_;
  std::vector<std::vector<uint8_t>> pass_use_, last_use_;  // [pool][expert]: layers that chose it
  RecordingOnly recording_only_{*this};
};

}  // namespace megrez
