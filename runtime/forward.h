#pragma once
// The resident-mode forward pass: records one pass of the whole model over T tokens into a
// command buffer. T = 1 is a decode step (matvec kernels, split-K attention, per-token MoE);
// T > 1 is a prefill chunk (matmul kernels, causal attention, experts batched by expert).
// Routing stays on the GPU: the MoE kernels read the ids the router kernel wrote.
#include <cstdint>

#include "loader/config.h"
#include "runtime/activations.h"
#include "runtime/commands.h"
#include "runtime/device_model.h"
#include "runtime/kv_cache.h"
#include "runtime/stage_profiler.h"

namespace megrez {

// What the pass leaves for the host after the submission completes.
enum class LogitsOut {
  None,    // nothing: a prefill chunk before the last (no final norm, no lm_head)
  Last,    // act.logits_host row 0: the last token's logits
  All,     // act.logits_host rows 0..T-1 (needs act.reserve_logit_rows(T))
  Argmax,  // act.argmax_result: (id, value bits) of the last token's largest logit, on the GPU
};

class Forward {
 public:
  Forward(const ModelConfig& config, const DeviceModel& model, const KvCache& cache, Activations& act);

  // Records the pass for the T token ids already in act.ids at positions pos0 .. pos0+T-1:
  // writes their K/V into cache rows pos0.. and leaves logits as `out` says.
  // Requires 1 <= T <= act.tokens and pos0 + T <= cache capacity (the engine checks).
  void record(CommandBuffer& cmd, uint32_t pos0, uint32_t tokens, LogitsOut out) const;

  // Optional per-stage timestamps (null: none). The caller resets the profiler in each
  // recording and collects after the submission; max_stage_scopes() sizes it.
  void set_stage_profiler(StageProfiler* profiler) { stages_ = profiler; }
  static uint32_t max_stage_scopes(const ModelConfig& config);

 private:
  void linear(CommandBuffer& cmd, const DeviceTensor& w, const BufferRange& x, const BufferRange& y, uint32_t T,
              bool accumulate) const;
  void swiglu_mlp(CommandBuffer& cmd, const DeviceMlp& mlp, const BufferRange& x, const BufferRange& out, uint32_t T,
                  bool accumulate) const;
  void attention(CommandBuffer& cmd, int64_t layer, uint32_t pos0, uint32_t T) const;
  void route(CommandBuffer& cmd, const DeviceLayer& layer, const BufferRange& pre_gate, uint32_t T) const;
  void routed_experts(CommandBuffer& cmd, const DeviceExpertPool& pool, const BufferRange& x, uint32_t T) const;
  void embed(CommandBuffer& cmd, uint32_t T) const;
  void lm_head(CommandBuffer& cmd, uint32_t T, LogitsOut out) const;
  void read_back(CommandBuffer& cmd, uint32_t T, LogitsOut out) const;

  const ModelConfig& c_;
  const DeviceModel& model_;
  const KvCache& cache_;
  Activations& act_;
  StageProfiler* stages_ = nullptr;
};

}  // namespace megrez
