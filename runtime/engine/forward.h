#pragma once
// The forward pass: records one pass of the whole model over T tokens. T = 1 is a decode step
// (matvec kernels, split-K attention, per-token MoE); T > 1 is a prefill chunk (matmul kernels,
// causal attention, experts batched by expert).
// Resident mode: one command buffer; routing stays on the GPU (the MoE kernels read the ids the
// router kernel wrote, through the identity slot table).
// Streaming mode: an ExpertFeed cuts the pass into submissions after each router and supplies
// the slots and slot table of every layer's routed experts (runtime/stream/expert_streamer.h).
#include <cstdint>
#include <functional>
#include <vector>

#include "loader/formats/config.h"
#include "runtime/engine/activations.h"
#include "runtime/engine/device_weights.h"
#include "runtime/engine/kv_cache.h"
#include "runtime/engine/stage_profiler.h"
#include "runtime/vk/commands.h"

namespace megrez {

// What the pass leaves for the host after the submission completes.
enum class LogitsOut {
  None,    // nothing: a prefill chunk before the last (no final norm, no lm_head)
  Last,    // act.logits_host row 0: the last token's logits
  All,     // act.logits_host rows 0..T-1 (needs act.reserve_logit_rows(T))
  Argmax,  // TokenIo::argmax: (id, value bits) of the last token's largest logit, on the GPU
};

// Where a pass reads its token ids and writes its argmax: act.ids and act.argmax_results[0]
// unless given. A chained greedy pass (Engine::decode_greedy) reads its one id from the
// argmax the pass before it wrote, so it can be submitted before that pass finished.
struct TokenIo {
  const BufferRange* ids = nullptr;     // u32 [T]
  const BufferRange* argmax = nullptr;  // u32 [2]
};

// Streaming mode's side of the pass. Layer i's router runs right after layer i-1's
// post-attention norm (pre-gating), so its ids are known while layer i-1's MoE and layer i's
// attention still have to run: the feed submits the pass in pieces to use that window.
class ExpertFeed {
 public:
  // Records layer's routed experts into the submission being recorded, reading `slots`
  // through `table`, dispatching only the slot-store `parts` listed (empty: all).
  using RecordExperts =
      std::function<void(const ExpertSlots& slots, const BufferRange& table, const std::vector<uint32_t>& parts)>;
  // Ends the submission being recorded (Forward keeps its stage timestamps consistent).
  using CutPass = std::function<void()>;
  virtual ~ExpertFeed() = default;
  // Ends the submission being recorded in `cmd`; `routed_layer` is the MoE layer whose router
  // it ends with (-1: none). Returns the command buffer recording continues in.
  virtual CommandBuffer& cut(CommandBuffer& cmd, int64_t routed_layer) = 0;
  // Records `layer`'s routed experts over `tokens` tokens with `record`: once, or in rounds
  // separated by cut_pass() when a chunk needs more experts than the cache holds.
  virtual void routed_experts(int64_t layer, uint32_t tokens, const RecordExperts& record,
                              const CutPass& cut_pass) = 0;
  // Whether the routers' ids are copied where the host reads them (streaming needs them).
  virtual bool reads_ids() const { return true; }
};

// Resident mode on a queue shared with other work (the chat GUI draws its frames on it): the
// pass is submitted in parts, cut where streaming would cut it (after routers), and each part
// waited for, so work queued meanwhile runs between two parts rather than after the whole
// pass. Same kernels, same results. Each break costs a host wait, so only every stride-th
// place is used, the stride chosen from the last pass's time for parts of about kPartSeconds.
class LayerBreaks final : public ExpertFeed {
 public:
  static constexpr double kPartSeconds = 0.010;

  explicit LayerBreaks(const DeviceWeights& model) : model_(model) {}
  void begin_pass() { places_ = 0; }
  void end_pass(double seconds);  // the pass's wall time: sets the stride for the next
  CommandBuffer& cut(CommandBuffer& cmd, int64_t routed_layer) override;
  void routed_experts(int64_t layer, uint32_t tokens, const RecordExperts& record, const CutPass& cut_pass) override;
  bool reads_ids() const override { return false; }

 private:
  const DeviceWeights& model_;
  uint32_t places_ = 0;  // places to break met in this pass
  uint32_t stride_ = 1;
};

class Forward {
 public:
  // argmax_vocab: LogitsOut::Argmax looks at the first argmax_vocab logits only, the ids the
  // tokenizer can decode (a padded embedding has more rows); 0 = every logit.
  Forward(const ModelConfig& config, const DeviceWeights& model, const KvCache& cache, Activations& act,
          uint32_t argmax_vocab = 0);

  // Records the pass for the T token ids already in act.ids (or io.ids) at positions pos0 .. pos0+T-1:
  // writes their K/V into cache rows pos0.. and leaves logits as `out` says.
  // Requires 1 <= T <= act.tokens and pos0 + T <= cache capacity (the engine checks).
  // With a feed the pass is cut into submissions; returns the command buffer it ends in.
  CommandBuffer& record(CommandBuffer& cmd, uint32_t pos0, uint32_t tokens, LogitsOut out,
                        ExpertFeed* feed = nullptr, TokenIo io = {}) const;

  // Optional per-stage timestamps (null: none). The caller resets the profiler in each
  // recording and collects after the submission; max_stage_scopes() sizes it.
  void set_stage_profiler(StageProfiler* profiler) { stages_ = profiler; }
  // The KV cache passes read and write: each engine sequence has its own (same shape).
  void set_cache(const KvCache& cache) { cache_ = &cache; }
  static uint32_t max_stage_scopes(const ModelConfig& config);

 private:
  void linear(CommandBuffer& cmd, const DeviceTensor& w, const BufferRange& x, const BufferRange& y, uint32_t T,
              bool accumulate, uint32_t y_first = 0, uint32_t y_stride = 0) const;
  void project_qkv(CommandBuffer& cmd, const DeviceLayer& layer, const BufferRange& x, uint32_t T) const;
  void swiglu_gate_up(CommandBuffer& cmd, const DeviceMlp& mlp, const BufferRange& x, uint32_t T) const;
  void swiglu_mlp(CommandBuffer& cmd, const DeviceMlp& mlp, const BufferRange& x, const BufferRange& out, uint32_t T,
                  bool accumulate) const;
  void attention(CommandBuffer& cmd, int64_t layer, uint32_t pos0, uint32_t T) const;
  void route(CommandBuffer& cmd, int64_t layer, const BufferRange& pre_gate, uint32_t T, bool to_host,
             bool resident) const;
  // Whether `layer`'s resident experts are dispatched indirectly (one decode token, a slot
  // store of several parts: only the parts holding a selected expert launch workgroups).
  bool indirect_experts(int64_t layer, uint32_t T) const;
  void routed_experts(CommandBuffer& cmd, int64_t layer, const ExpertSlots& slots, const BufferRange& table,
                      const std::vector<uint32_t>& parts, const BufferRange& x, uint32_t T, bool indirect) const;
  void embed(CommandBuffer& cmd, uint32_t T, const BufferRange& ids) const;
  void lm_head(CommandBuffer& cmd, uint32_t T, LogitsOut out) const;
  void read_back(CommandBuffer& cmd, uint32_t T, LogitsOut out, const BufferRange& argmax) const;

  const ModelConfig& c_;
  const DeviceWeights& model_;
  const KvCache* cache_;
  Activations& act_;
  uint32_t argmax_vocab_;
  StageProfiler* stages_ = nullptr;
};

}  // namespace megrez
