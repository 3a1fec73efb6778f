// The Megrez2 forward pass on the GPU, resident mode. record() follows the pseudocode of
// ../shared/docs/megrez2-model.md line by line; the helpers below it only choose between the
// one-token (decode) and many-token (prefill) kernels. Every stage ends with a compute barrier:
// simple, correct synchronisation first (design.md #8).
#include "runtime/engine/forward.h"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "runtime/ops/attention.h"
#include "runtime/ops/linear.h"
#include "runtime/ops/moe.h"

namespace megrez {

namespace {

void sync(CommandBuffer& cmd) { barrier_compute_to_compute(cmd); }

// Stage boundaries for the optional profiler: each call closes the previous stage and opens
// the next, so the pass stays flat; without a profiler it records nothing. When streaming cuts
// the pass, retarget() moves the open stage into the next command buffer.
class Stages {
 public:
  Stages(StageProfiler* profiler, CommandBuffer& cmd) : profiler_(profiler), cmd_(&cmd) {}
  ~Stages() { close(); }
  Stages(const Stages&) = delete;
  Stages& operator=(const Stages&) = delete;
  void operator()(std::string_view name, uint64_t weight_bytes = 0) {
    if (!profiler_) return;
    close();
    name_ = name;
    scope_ = profiler_->begin(*cmd_, name, weight_bytes);
    open_ = true;
  }
  // Around a cut: close the open stage in the submission that ends, reopen it in the next.
  void suspend() {
    suspended_ = open_;
    close();
  }
  void resume(CommandBuffer& next) {
    cmd_ = &next;
    if (suspended_) (*this)(name_);
    suspended_ = false;
  }

 private:
  void close() {
    if (open_) profiler_->end(*cmd_, scope_);
    open_ = false;
  }
  StageProfiler* profiler_;
  CommandBuffer* cmd_;
  std::string_view name_;
  uint32_t scope_ = 0;
  bool open_ = false;
  bool suspended_ = false;
};

// Weight bytes a stage reads, for the stage profiler's GB/s.
uint64_t bytes_of(const DeviceTensor& t) { return uint64_t(row_bytes(t.dtype, t.cols)) * t.rows; }
uint64_t bytes_of(const DeviceMlp& m) { return bytes_of(m.gate) + bytes_of(m.up) + bytes_of(m.down); }
uint64_t bytes_of(const DeviceSplitTensor& t) { return uint64_t(row_bytes(t.dtype, t.cols)) * t.rows; }
// Routed-expert weights a pass reads: exact for one token (k distinct experts), an upper bound
// for a prefill chunk (min(E, T*k) experts).
uint64_t expert_bytes_read(const DeviceExpertPool& p, uint64_t entries) {
  const ExpertSlotLayout& l = p.slots.layout;
  const uint64_t one = 2 * uint64_t(row_bytes(l.gate_up, l.dim)) * l.inter + uint64_t(row_bytes(l.down, l.inter)) * l.dim;
  return std::min<uint64_t>(p.n_experts, entries) * one;
}

}  // namespace

Forward::Forward(const ModelConfig& config, const DeviceWeights& model, const KvCache& cache, Activations& act,
                 uint32_t argmax_vocab)
    : c_(config), model_(model), cache_(&cache), act_(act), argmax_vocab_(argmax_vocab) {}

CommandBuffer& LayerBreaks::cut(CommandBuffer& cmd, int64_t) {
  if (++places_ % stride_ != 0) return cmd;
  cmd.submit_and_wait();
  cmd.begin();
  return cmd;
}

void LayerBreaks::end_pass(double seconds) {
  if (places_ == 0 || seconds <= 0) return;
  const double per_place = seconds / double(places_);
  stride_ = std::max<uint32_t>(1, uint32_t(kPartSeconds / per_place));
}

void LayerBreaks::routed_experts(int64_t layer, uint32_t, const RecordExperts& record, const CutPass&) {
  const DeviceExpertPool& pool = model_.pools[size_t(model_.layers[size_t(layer)].pool)];
  record(pool.slots, pool.slot_table, {});
}

// Per layer at most: two norms, attention, router, experts, shared MLP, combine (or dense MLP);
// then embed, final norm, lm_head, read-back.
uint32_t Forward::max_stage_scopes(const ModelConfig& config) { return 7 * uint32_t(config.num_hidden_layers) + 8; }

CommandBuffer& Forward::record(CommandBuffer& first, uint32_t pos0, uint32_t T, LogitsOut out,
                               ExpertFeed* feed, TokenIo io) const {
  const auto D = uint32_t(c_.hidden_size);
  const auto H = uint32_t(c_.num_attention_heads), Hkv = uint32_t(c_.num_key_value_heads);
  const auto Dh = uint32_t(c_.head_dim);
  const uint32_t qkv_row = (H + 2 * Hkv) * Dh;
  const auto L = c_.num_hidden_layers;
  const auto eps = float(c_.rms_norm_eps);
  const Activations& a = act_;
  CommandBuffer* cmd = &first;  // streaming moves on to the next submission at every cut
  Stages stage(stages_, first);  // optional GPU timestamps per stage; free when off
  // Streaming: ends the submission being recorded; recording continues in the next one.
  auto cut = [&](int64_t routed_layer) -> CommandBuffer& {
    stage.suspend();
    cmd = &feed->cut(*cmd, routed_layer);
    stage.resume(*cmd);
    return *cmd;
  };

  // The previous pass (its shaders, its read-back copy of logits) before this pass's shaders:
  // it may still be running when this one is submitted behind it (a chained greedy pass).
  barrier_previous_work(*cmd);
  // x = embed_tokens[ids]
  stage("embed", uint64_t(T) * row_bytes(model_.token_embd.dtype, D));
  embed(*cmd, T, io.ids ? *io.ids : a.ids);                                          sync(*cmd);
  bool h_ready = false;  // a MoE layer's combine also wrote the next norm, h
  for (int64_t i = 0; i < L; ++i) {
    const DeviceLayer& layer = model_.layers[size_t(i)];
    // h = RMSNorm(x, input_layernorm[i])   (after a MoE layer: done by its combine)
    if (!h_ready) {
      stage("norms", bytes_of(layer.attn_norm));
      record_rmsnorm(*cmd, a.x, layer.attn_norm.range, a.h, T, D, eps);               sync(*cmd);
    }
    h_ready = false;
    // q = h Wq^T ; k = h Wk^T ; v = h Wv^T   (no biases): one row [q | k | v] per token
    stage("attention", bytes_of(layer.wq) + bytes_of(layer.wk) + bytes_of(layer.wv) + bytes_of(layer.wo));
    project_qkv(*cmd, layer, a.h, T);                                                 sync(*cmd);
    // q, k = RoPE_neox(q, k, position); k and v go into the cache rows pos0 .. pos0+T-1
    // (one dispatch: kv_store rotates q in place too)
    record_kv_store(*cmd, a.qkv, a.qkv, model_.rope_table, cache_->keys(size_t(i)), cache_->values(size_t(i)),
                    {cache_->type(), T, Hkv, Dh, pos0, H * Dh, (H + Hkv) * Dh, qkv_row, H, 0});  sync(*cmd);
    // a = softmax(q k^T / sqrt(Dh) + causal_mask) v   (GQA: q head j reads kv head j / (H/Hkv))
    attention(*cmd, i, pos0, T);                                                      sync(*cmd);
    // x = x + a Wo^T
    linear(*cmd, layer.wo, a.attn, a.x, T, true);                                     sync(*cmd);
    // h2 = RMSNorm(x, post_attention_layernorm[i])
    const BufferRange& h2 = a.h2(i);
    stage("norms", bytes_of(layer.ffn_norm));
    record_rmsnorm(*cmd, a.x, layer.ffn_norm.range, h2, T, D, eps);                   sync(*cmd);
    // pg = h2: layer i+1's router reads it now (pre-gating), so its experts are known while
    // this layer's MLP and the next attention still run
    const bool next_routed = i + 1 < L && c_.is_moe_layer(i + 1);
    if (next_routed) {
      const DeviceLayer& next = model_.layers[size_t(i + 1)];
      stage("router", bytes_of(next.router) + bytes_of(next.router_bias));
      route(*cmd, i + 1, h2, T, feed && feed->reads_ids(), !feed);                    sync(*cmd);
    }
    if (feed && (next_routed || c_.is_moe_layer(i))) cut(next_routed ? i + 1 : -1);
    if (!c_.is_moe_layer(i)) {
      // x = x + down0( silu(gate0 h2) * up0 h2 )
      stage("dense MLP", bytes_of(layer.mlp));
      swiglu_mlp(*cmd, layer.mlp, h2, a.x, T, true);                                  sync(*cmd);
    } else {
      const DeviceExpertPool& pool = model_.pools[size_t(layer.pool)];
      // shared = SharedMLP[i](h2), begun first: its gate/up product, like the experts', only
      // reads h2, so the two run side by side and share the experts' barriers
      stage("shared MLP", bytes_of(layer.mlp));
      swiglu_gate_up(*cmd, layer.mlp, h2, T);
      // idx, w = route(i, pg) ran after layer i-1's post-attention norm (above, one layer ago)
      // y_k = Expert[pool(i)][idx[k]](h2): the experts read THIS layer's h2
      stage("experts", expert_bytes_read(pool, uint64_t(T) * uint64_t(c_.num_experts_per_tok)));
      if (feed) {
        bool recorded = false;
        feed->routed_experts(i, T,
                             [&](const ExpertSlots& slots, const BufferRange& table, const std::vector<uint32_t>& parts) {
                               routed_experts(*cmd, i, slots, table, parts, h2, T, false);
                               sync(*cmd);
                               recorded = true;
                             },
                             [&] { cut(-1); });
        if (!recorded) sync(*cmd);  // no expert ran: the shared gate/up still needs its barrier
      } else {
        routed_experts(*cmd, i, pool.slots, pool.slot_table, {}, h2, T, indirect_experts(i, T));
      }
      // (the experts' barriers have ordered the shared gate/up product before its down)
      stage("shared MLP");
      linear(*cmd, layer.mlp.down, a.mlp_h, a.mlp_out, T, false);                     sync(*cmd);
      // x = x + (sum_k w[k] * y_k + shared)   (routed_scaling_factor is already in w), and in
      // the same pass over x the norm that reads it next: layer i+1's input norm, or the final
      const uint32_t K = uint32_t(c_.num_experts_per_tok);
      const DeviceTensor* next_norm =
          i + 1 < L ? &model_.layers[size_t(i + 1)].attn_norm : out != LogitsOut::None ? &model_.output_norm : nullptr;
      stage("experts");
      if (next_norm) {
        record_moe_combine_rmsnorm(*cmd, a.x, a.expert_y, a.route_w(i), a.mlp_out, next_norm->range, a.h, T, K, D,
                                   eps);
        h_ready = true;
      } else {
        record_moe_combine(*cmd, a.expert_y, a.route_w(i), a.mlp_out, a.x, T, K, D, true);
      }
      sync(*cmd);
    }
  }
  if (out == LogitsOut::None) return *cmd;
  // logits = RMSNorm(x, norm) lm_head^T   (the norm done by a last MoE layer's combine)
  if (!h_ready) {
    stage("norms", bytes_of(model_.output_norm));
    record_rmsnorm(*cmd, a.x, model_.output_norm.range, a.h, T, D, eps);              sync(*cmd);
  }
  stage("lm_head", bytes_of(model_.output));
  lm_head(*cmd, T, out);
  stage(out == LogitsOut::Argmax ? "sampling" : "logits read-back");
  read_back(*cmd, T, out, io.argmax ? *io.argmax : a.argmax_results[0]);
  return *cmd;
}

// ---- One token (decode) or many (prefill) ---------------------------------------------------

// y (+)= x W^T for T rows of x: columns y_first .. y_first + rows - 1 of y's rows of y_stride
// elements (default: y holds exactly W's outputs).
void Forward::linear(CommandBuffer& cmd, const DeviceTensor& w, const BufferRange& x, const BufferRange& y,
                     uint32_t T, bool accumulate, uint32_t y_first, uint32_t y_stride) const {
  if (T == 1) {
    record_matvec(cmd, w.dtype, w.range, x, y, abi::MatvecPush{w.rows, w.cols, 0, 0, y_first, accumulate ? 1u : 0u});
  } else {
    record_matmul(cmd, w.dtype, w.range, x, y,
                  abi::MatmulPush{w.rows, w.cols, T, 0, 0, w.cols, y_first, y_stride ? y_stride : w.rows,
                                  accumulate ? 1u : 0u});
  }
}

// qkv rows [q | k | v] = x [Wq; Wk; Wv]^T: one product where the three are one matrix.
void Forward::project_qkv(CommandBuffer& cmd, const DeviceLayer& l, const BufferRange& x, uint32_t T) const {
  const uint32_t row = l.wq.rows + l.wk.rows + l.wv.rows;
  if (l.wqkv) {
    linear(cmd, *l.wqkv, x, act_.qkv, T, false);
    return;
  }
  linear(cmd, l.wq, x, act_.qkv, T, false, 0, row);
  linear(cmd, l.wk, x, act_.qkv, T, false, l.wq.rows, row);
  linear(cmd, l.wv, x, act_.qkv, T, false, l.wq.rows + l.wk.rows, row);
}

// mlp_h = silu(gate x) * (up x); not followed by a barrier.
void Forward::swiglu_gate_up(CommandBuffer& cmd, const DeviceMlp& mlp, const BufferRange& x, uint32_t T) const {
  if (T == 1 && mlp.gate_up) {
    record_swiglu_fused(cmd, {mlp.gate.dtype, 1, mlp.gate.cols, mlp.gate.rows, 0, mlp.up_offset}, *mlp.gate_up, x,
                        act_.mlp_h);
  } else {
    linear(cmd, mlp.gate, x, act_.mlp_gate, T, false);
    linear(cmd, mlp.up, x, act_.mlp_up, T, false);                                   sync(cmd);
    record_swiglu(cmd, act_.mlp_gate, act_.mlp_up, act_.mlp_h, T * mlp.gate.rows);
  }
}

// out (+)= down( silu(gate x) * (up x) ).
void Forward::swiglu_mlp(CommandBuffer& cmd, const DeviceMlp& mlp, const BufferRange& x, const BufferRange& out,
                         uint32_t T, bool accumulate) const {
  swiglu_gate_up(cmd, mlp, x, T);                                                    sync(cmd);
  linear(cmd, mlp.down, act_.mlp_h, out, T, accumulate);
}

void Forward::attention(CommandBuffer& cmd, int64_t layer, uint32_t pos0, uint32_t T) const {
  const AttentionShape shape{uint32_t(c_.num_attention_heads), uint32_t(c_.num_key_value_heads),
                             uint32_t(c_.head_dim)};
  const float scale = float(1.0 / std::sqrt(double(c_.head_dim)));
  const BufferRange& keys = cache_->keys(size_t(layer));
  const BufferRange& values = cache_->values(size_t(layer));
  // q is the first part of each qkv row. One token: the split-K decode kernels, except where
  // the device takes the per-invocation prefill kernel (CPU drivers), which is faster there
  // for one query too.
  const PrefillPlan prefill = plan_attention_prefill(cmd.context().caps(), shape, T);
  if (T == 1 && prefill.kernel != PrefillKernel::Rows) {
    record_attention_decode(cmd, act_.qkv, keys, values, act_.partials, act_.attn,
                            DecodeArgs{shape, cache_->type(), pos0 + 1, 0, 0, scale});
  } else {
    const uint32_t row = shape.q_heads * shape.head_dim;
    const uint32_t qkv_row = (shape.q_heads + 2 * shape.kv_heads) * shape.head_dim;
    record_attention_prefill(cmd, act_.qkv, keys, values, act_.attn,
                             PrefillArgs{shape, cache_->type(), T, pos0, 0, qkv_row, row, scale}, prefill);
  }
}

// Layer `layer`'s router on `pre_gate` -> its ids and weights (act.route_ids / route_w of the
// layer's parity). to_host: the host reads the ids after this submission (streaming).
bool Forward::indirect_experts(int64_t layer, uint32_t T) const {
  return T == 1 && model_.pools[size_t(model_.layers[size_t(layer)].pool)].slots.parts.size() > 1;
}

void Forward::route(CommandBuffer& cmd, int64_t layer, const BufferRange& pre_gate, uint32_t T, bool to_host,
                    bool resident) const {
  const DeviceLayer& l = model_.layers[size_t(layer)];
  const RouterArgs args{l.router.dtype,          T,
                        uint32_t(c_.hidden_size),    uint32_t(c_.n_routed_experts),
                        uint32_t(c_.num_experts_per_tok), uint32_t(c_.n_group),
                        uint32_t(c_.topk_group),     c_.norm_topk_prob,
                        float(c_.routed_scaling_factor)};
  const BufferRange& ids = act_.route_ids(layer);
  record_router(cmd, args, pre_gate, l.router.range, l.router_bias.range, ids, act_.route_w(layer),
                act_.route_scores);
  if (resident && indirect_experts(layer, T)) {
    // Which parts of the store the chosen experts are in, a layer before their products run
    // (the barriers in between order it before their indirect dispatches).
    const DeviceExpertPool& pool = model_.pools[size_t(l.pool)];
    barrier_compute_to_compute(cmd);
    record_moe_part_args(cmd, pool.slots, MoeArgs{T, args.top_k, pool.n_experts, {}}, ids, pool.slot_table,
                         act_.h2(layer), act_.expert_h, act_.part_args(layer));
  }
  if (!to_host) return;
  const BufferRange& host = act_.route_ids_host(layer);
  if (host.buffer != ids.buffer) {
    barrier_compute_to_transfer(cmd);
    copy_buffer(cmd, ids.slice(0, uint64_t{T} * args.top_k * 4), host.slice(0, uint64_t{T} * args.top_k * 4));
  }
  barrier_to_host(cmd);
}

// expert_y [T, K, D] = the chosen experts of every token applied to x (unweighted); experts
// absent from `table` are skipped (their rows are left as they are).
void Forward::routed_experts(CommandBuffer& cmd, int64_t layer, const ExpertSlots& slots, const BufferRange& table,
                             const std::vector<uint32_t>& parts, const BufferRange& x, uint32_t T,
                             bool indirect) const {
  const DeviceExpertPool& pool = model_.pools[size_t(model_.layers[size_t(layer)].pool)];
  MoeArgs args{T, uint32_t(c_.num_experts_per_tok), pool.n_experts, parts};
  if (indirect) args.indirect = act_.part_args(layer);
  const BufferRange& ids = act_.route_ids(layer);
  if (T == 1) {
    record_moe_gate_up(cmd, slots, args, x, ids, table, act_.expert_h);  sync(cmd);
    record_moe_down(cmd, slots, args, act_.expert_h, ids, table, act_.expert_y);
    return;
  }
  // Group the T*K (token, choice) entries by expert, so each expert's weights are read once.
  MoeBatchScratch batch = act_.moe_batch;
  batch.entries = T * args.top_k;
  batch.max_tiles = moe_max_tiles(batch.entries, batch.n_experts, batch.tile_tokens);
  record_moe_sort(cmd, ids, batch);                                                      sync(cmd);
  record_moe_gate_up_batched(cmd, slots, args, x, table, batch, act_.expert_h);          sync(cmd);
  record_moe_down_batched(cmd, slots, args, act_.expert_h, table, batch, act_.expert_y);
}

// x [T, D] = rows ids[t] of the embedding, one dispatch per part of the split table.
void Forward::embed(CommandBuffer& cmd, uint32_t T, const BufferRange& ids) const {
  const DeviceSplitTensor& table = model_.token_embd;
  for (size_t p = 0; p < table.parts.size(); ++p) {
    const uint32_t rows = uint32_t(table.parts[p].size / row_bytes(table.dtype, table.cols));
    record_embed(cmd, table.dtype, table.parts[p], ids, act_.x,
                 abi::EmbedPush{T, table.cols, table.first_row[p], rows});
  }
}

// logits = h lm_head^T for the last row of h (or every row), one dispatch per part.
void Forward::lm_head(CommandBuffer& cmd, uint32_t T, LogitsOut out) const {
  const DeviceSplitTensor& w = model_.output;
  const uint32_t V = w.rows, D = w.cols;
  for (size_t p = 0; p < w.parts.size(); ++p) {
    const uint32_t rows = uint32_t(w.parts[p].size / row_bytes(w.dtype, D));
    if (out == LogitsOut::All) {
      record_matmul(cmd, w.dtype, w.parts[p], act_.h, act_.logits,
                    abi::MatmulPush{rows, D, T, 0, 0, D, w.first_row[p], V, 0});
    } else {
      record_matvec(cmd, w.dtype, w.parts[p], act_.h, act_.logits,
                    abi::MatvecPush{rows, D, 0, (T - 1) * D, w.first_row[p], 0});
    }
  }
}

// Makes the results visible to the host: the argmax pair, or the logits (copied to host
// memory first unless the device memory is mapped).
void Forward::read_back(CommandBuffer& cmd, uint32_t T, LogitsOut out, const BufferRange& argmax) const {
  const uint64_t V = model_.output.rows;
  if (out == LogitsOut::Argmax) {
    sync(cmd);
    const uint32_t candidates = argmax_vocab_ ? std::min(argmax_vocab_, uint32_t(V)) : uint32_t(V);
    record_argmax(cmd, act_.logits, act_.argmax_partials, argmax, candidates);
  } else if (act_.logits_host.buffer != act_.logits.buffer) {
    barrier_compute_to_transfer(cmd);
    const uint64_t bytes = (out == LogitsOut::All ? T : 1) * V * 4;
    copy_buffer(cmd, act_.logits.slice(0, bytes), act_.logits_host);
  }
  barrier_to_host(cmd);
}

}  // namespace megrez
