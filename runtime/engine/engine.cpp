// The engine: a Model opened from disk, its weights in device memory, the KV cache, the
// working buffers and the recorded forward pass, behind the small API of engine.h.
#include "runtime/engine/engine.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <limits>
#include <optional>
#include <cmath>
#include <cstring>

#include "loader/error.h"
#include "loader/formats/model.h"
#include "runtime/engine/activations.h"
#include "runtime/engine/device_weights.h"
#include "runtime/engine/forward.h"
#include "runtime/engine/kv_cache.h"
#include "runtime/engine/stage_profiler.h"
#include "runtime/ops/linear.h"
#include "runtime/stream/expert_streamer.h"
#include "runtime/vk/commands.h"
#include "runtime/vk/context.h"
#include "runtime/vk/profiler.h"
#include "shaders/abi/moe_sort.h"
#include "shaders/abi/router.h"

namespace megrez {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Context used when the caller has none: 4096 tokens or the model's limit if smaller.
constexpr uint32_t kDefaultContext = 4096;
constexpr uint32_t kMaxChunk = 256;

KvType to_kv_type(KvCacheType t) { return t == KvCacheType::F16 ? KvType::F16 : KvType::F32; }

uint32_t choose_context(const ModelConfig& config, uint32_t requested) {
  const int64_t model_max = config.max_position_embeddings > 0 ? config.max_position_embeddings : kDefaultContext;
  if (requested == 0) return uint32_t(std::min<int64_t>(model_max, kDefaultContext));
  if (requested > model_max) {
    throw Error("context of " + std::to_string(requested) + " tokens exceeds the model's max_position_embeddings (" +
                std::to_string(model_max) + ")", ErrorKind::InvalidArgument);
  }
  return requested;
}

// Two matmul token tiles per pass (64-128 tokens on the devices we know): long enough to
// reuse each weight tile, short enough for small activations; never above the device's
// DeviceCaps::max_prefill_chunk quirk. EngineOptions::chunk overrides both.
uint32_t choose_chunk(const Context& ctx, uint32_t requested, uint32_t context) {
  uint32_t chunk = requested;
  if (chunk == 0) {
    chunk = std::clamp(2 * matmul_shape(ctx.caps(), kMaxChunk).tile_tokens, 16u, kMaxChunk);
    if (ctx.caps().max_prefill_chunk) chunk = std::min(chunk, ctx.caps().max_prefill_chunk);
  }
  return std::min(chunk, context);
}

// The largest device-local heap: what weights, cache and activations all come from.
uint64_t device_memory_bytes(const Context& ctx) {
  const VkPhysicalDeviceMemoryProperties& memory = ctx.info().memory;
  uint64_t largest = 0;
  for (uint32_t h = 0; h < memory.memoryHeapCount; ++h) {
    if (memory.memoryHeaps[h].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) {
      largest = std::max<uint64_t>(largest, memory.memoryHeaps[h].size);
    }
  }
  return largest;
}

// Limits of the GPU kernels that a valid config can still exceed.
void check_supported(const ModelConfig& c, const std::string& path) {
  auto unsupported = [&](const std::string& what) { throw Error("model " + path + ": " + what, ErrorKind::Model); };
  if (c.head_dim % 2 != 0) unsupported("head_dim " + std::to_string(c.head_dim) + " is odd; RoPE needs pairs");
  if (c.n_routed_experts > ROUTER_MAX_EXPERTS || c.n_routed_experts > MOE_SORT_MAX_EXPERTS) {
    unsupported(std::to_string(c.n_routed_experts) + " routed experts per pool; the GPU router handles at most " +
                std::to_string(std::min(ROUTER_MAX_EXPERTS, MOE_SORT_MAX_EXPERTS)));
  }
  if (c.num_experts_per_tok > ROUTER_MAX_TOP_K) {
    unsupported("num_experts_per_tok " + std::to_string(c.num_experts_per_tok) +
                "; the GPU router picks at most " + std::to_string(ROUTER_MAX_TOP_K));
  }
}

// Weights and KV caches that need f16 conversions in the shaders, on a device whose compiler
// cannot build them (DeviceCaps::half_conversions): refused here, before the driver would
// abort the process compiling the first such kernel.
void check_half_conversions(const Context& ctx, const ModelWeights& w, KvCacheType kv, const std::string& path) {
  if (ctx.caps().half_conversions) return;
  const std::string limitation = ctx.info().name() + " cannot compile f16 conversions in compute shaders (Mesa's "
                                 "llvmpipe on AArch64 with LLVM 15 aborts on them; DeviceCaps::half_conversions)";
  if (kv == KvCacheType::F16) {
    throw Error(limitation + ": use an f32 KV cache (--kv f32, KvCacheType::F32, megrez_model_params.kv_f32 = 1)",
                ErrorKind::Device);
  }
  std::vector<const TensorView*> tensors = {&w.token_embd, &w.output_norm, &w.output};
  for (const LayerWeights& l : w.layers) {
    for (const TensorView* t : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.ffn_gate, &l.ffn_up,
                                &l.ffn_down, &l.router, &l.router_bias, &l.shexp_gate, &l.shexp_up, &l.shexp_down}) {
      tensors.push_back(t);
    }
  }
  for (const std::vector<ExpertWeights>& pool : w.pools) {
    for (const ExpertWeights& e : pool) tensors.insert(tensors.end(), {&e.gate, &e.up, &e.down});
  }
  for (const TensorView* t : tensors) {
    if (!t->empty() && (t->dtype == DType::F16 || t->dtype == DType::Q8_0 || t->dtype == DType::Q4_0)) {
      throw Error(limitation + ": model " + path + " stores " + dtype_name(t->dtype) +
                      " weights; convert it to f32 or bf16 (megrez-convert MODEL OUT.gguf --type f32)",
                  ErrorKind::Device);
    }
  }
}

}  // namespace

// One token stream: its KV cache, how many rows hold tokens, and its sampler.
struct Sequence {
  std::unique_ptr<KvCache> cache;
  uint32_t position = 0;
  Sampler sampler;
  bool sampler_seeded = false;
};

struct Engine::Impl {
  std::unique_ptr<Model> model;
  std::unique_ptr<Context> owned_context;
  Context& ctx;
  ModelConfig config;
  uint32_t context_length = 0, chunk = 0;
  // Device state; declared after the context so it is destroyed first.
  std::unique_ptr<DeviceWeights> weights;
  std::vector<std::unique_ptr<Sequence>> sequences;  // by SequenceId; null once removed
  Sequence* seq = nullptr;                           // the selected one
  SequenceId selected = 0;
  KvType kv_type = KvType::F16;
  uint64_t memory_available = 0;                     // heap or the memory limit
  std::unique_ptr<Activations> act;
  std::unique_ptr<Forward> forward;
  std::unique_ptr<LayerBreaks> layer_breaks;  // EngineOptions::layer_breaks (resident only)
  std::unique_ptr<StageProfiler> stages;  // only with options.profile_stages
  // Resident passes alternate between two command buffers, so that a greedy decode pass can be
  // submitted behind the one still running (decode_greedy chains them). Declared after the
  // buffers the passes use: destroying a CommandBuffer waits for its submission.
  struct PassBuffer {
    std::unique_ptr<GpuProfiler> timer;  // the pass's GPU time; null without timestamps
    std::unique_ptr<CommandBuffer> cmd;  // after the timer: destroyed (waited for) first
  };
  std::array<PassBuffer, 2> passes;
  uint32_t last_slot = 0;                 // the pass buffer (and argmax result) used last
  Clock::time_point pass_start;
  std::optional<uint64_t> last_end_ticks;  // the last timed decode pass's end timestamp
  // A greedy pass already submitted: token `input` of `sequence` at `position`, its id read on
  // the GPU from the argmax of the pass before. Chaining needs the GPU argmax to be all the
  // host decides between passes (resident, no layer breaks, no stage timestamps) and one
  // sequence: sequences taking turns token by token (server slots) would drop every pass ahead.
  struct Ahead {
    SequenceId sequence;
    uint32_t position, slot;
    int32_t input;
  };
  std::optional<Ahead> ahead;
  StreamMode mode = StreamMode::Resident;
  StreamerOptions streaming;              // Prefetch / OnDemand only
  std::unique_ptr<ExpertStreamer> streamer;
  bool streaming_failed = false;          // a streaming pass threw: the cache is not trusted
  EngineStats stats;

  Impl(std::unique_ptr<Model> m, std::unique_ptr<Context> owned, Context& c)
      : model(std::move(m)), owned_context(std::move(owned)), ctx(c), config(model->config()) {}

  void choose_streaming(const EngineOptions& options);
  void check_fits_device(const EngineOptions& options) const;
  void warm_up();
  void check_tokens(std::span<const int32_t> ids, const char* what) const;
  void select(SequenceId id);
  // Ids generation may choose: those the tokenizer can decode. Megrez2's embedding has
  // 128,880 rows, more than its tokenizer defines; a padded id would end a stream mid-way.
  uint32_t sampleable_vocab() const {
    const Tokenizer* t = model->tokenizer();
    const int32_t tokenizer_vocab = t ? t->vocab_size() : config.vocab_size;
    return uint32_t(std::min<int64_t>(tokenizer_vocab, config.vocab_size));
  }
  // One pass over ids (<= chunk tokens) at the current position.
  void run_pass(std::span<const int32_t> ids, LogitsOut out);         // counts a decode pass's work
  void submit_pass(std::span<const int32_t> ids, LogitsOut out);
  // Resident: records a pass into the buffer not used last and submits it; returns its slot.
  // ids_from: where its ids are read (default act.ids, which the caller filled).
  uint32_t submit_resident(uint32_t position, uint32_t tokens, LogitsOut out, const BufferRange* ids_from = nullptr);
  // Waits; adds a decode pass's GPU time (chained: submitted before the last one finished).
  void finish_resident(uint32_t slot, uint32_t tokens, bool chained = false);
  bool can_chain() const {
    return !streamer && !layer_breaks && !stages &&
           std::count_if(sequences.begin(), sequences.end(), [](const auto& s) { return s != nullptr; }) == 1;
  }
  // Waits for a pass submitted ahead and forgets it: its K/V row lies past the position, so it
  // is rewritten before anything reads it.
  void settle() {
    if (!ahead) return;
    const uint32_t slot = ahead->slot;
    ahead.reset();
    passes[slot].cmd->wait();
  }
  int32_t greedy_step(int32_t id);
};

// Resident or streaming, the cache size in slots, and how uploads travel, from the options.
void Engine::Impl::choose_streaming(const EngineOptions& options) {
  const ModelWeights& w = model->weights();
  const uint64_t stride = expert_slot_stride(w);
  uint64_t total = 0;
  for (const std::vector<ExpertWeights>& pool : w.pools) total += pool.size();
  const uint64_t expert_bytes = total * stride;
  const uint64_t budget = options.expert_budget.empty() ? expert_bytes : parse_expert_budget(options.expert_budget, expert_bytes);
  const uint64_t slots = std::min<uint64_t>(total, stride ? budget / stride : total);
  mode = options.stream;
  if (mode == StreamMode::Auto) mode = slots < total ? StreamMode::Prefetch : StreamMode::Resident;
  const std::string held = "expert budget " + (options.expert_budget.empty() ? std::string("(all)") : options.expert_budget) +
                           " holds " + std::to_string(slots) + " of the " + std::to_string(total) + " routed experts (" +
                           format_bytes(stride) + " each, " + format_bytes(expert_bytes) + " in all)";
  if (mode == StreamMode::Resident) {
    if (slots < total) throw Error("--stream resident needs every expert in device memory, but the " + held);
    return;
  }
  const uint64_t minimum = uint64_t(config.num_experts_per_tok) + 1;
  if (slots < minimum) {
    throw Error("the " + held + "; streaming needs at least top_k + 1 = " + std::to_string(minimum) + " experts (" +
                format_bytes(minimum * stride) + ")");
  }
  streaming.mode = mode;
  streaming.slots = uint32_t(slots);
  if (!eviction_policy_from_name(options.eviction, streaming.policy)) {
    throw Error("unknown eviction policy '" + options.eviction + "' (pool, lru)");
  }
  streaming.path = default_expert_upload_path(ctx);
  if (options.expert_upload == "queue") {
    streaming.path = ExpertUploadPath::Queue;
  } else if (options.expert_upload == "host") {
    if (streaming.path != ExpertUploadPath::HostCopy) {
      throw Error("expert uploads by host copy need device memory the host can map (unified memory); " +
                  ctx.info().name() + " has none: use the transfer queue");
    }
  } else if (!options.expert_upload.empty()) {
    throw Error("unknown expert upload path '" + options.expert_upload + "' (queue, host)");
  }
  if (!std::isfinite(options.storage_bw) || options.storage_bw < 0 ||
      (options.storage_bw > 0 && options.storage_bw < kMinStorageBandwidth)) {
    throw Error("storage bandwidth must be 0 (unthrottled) or at least " + std::to_string(kMinStorageBandwidth) +
                " GB/s, got " + std::to_string(options.storage_bw));
  }
  streaming.storage_bytes_per_second = options.storage_bw * 1e9;
}

void Engine::Impl::check_fits_device(const EngineOptions& options) const {
  const bool resident = mode == StreamMode::Resident;
  const uint64_t weight_bytes =
      DeviceWeights::bytes_needed(ctx.caps(), config, model->weights(), resident) +
      (resident ? 0 : expert_streaming_bytes(ctx.caps(), config, model->weights(), streaming.slots, streaming.path));
  const uint64_t cache_bytes = KvCache::bytes_needed(config, context_length, to_kv_type(options.kv_type));
  const uint64_t act_bytes = Activations::bytes_needed(ctx, config, chunk, context_length);
  const uint64_t heap = device_memory_bytes(ctx);
  const uint64_t available = memory_available;
  if (weight_bytes + cache_bytes + act_bytes > available) {
    throw Error("model " + model->path() + " needs " + format_bytes(weight_bytes + cache_bytes + act_bytes) +
                " of device memory (weights " + format_bytes(weight_bytes) + ", KV cache " + format_bytes(cache_bytes) +
                " for " + std::to_string(context_length) + " tokens, activations " + format_bytes(act_bytes) +
                ") but " + ctx.info().name() + " has " + format_bytes(available) +
                (available < heap ? " (the memory limit given)" : "") +
                "; use a smaller weight type, a shorter context, an f16 KV cache" +
                (resident ? std::string(" or an expert budget (streaming)") : std::string(" or a smaller expert budget")),
                ErrorKind::OutOfMemory);
  }
}

// Records (and discards) one decode and one prefill pass so every pipeline is built now,
// not during the first token.
void Engine::Impl::warm_up() {
  CommandBuffer scratch(ctx);
  scratch.begin();
  ExpertFeed* feed = streamer ? &streamer->recording_only() : nullptr;
  forward->record(scratch, 0, 1, LogitsOut::Argmax, feed);
  forward->record(scratch, 0, 1, LogitsOut::Last, feed);
  if (chunk > 1) forward->record(scratch, 0, chunk, LogitsOut::Last, feed);
}

void Engine::Impl::check_tokens(std::span<const int32_t> ids, const char* what) const {
  if (ids.empty()) throw Error(std::string(what) + ": no tokens", ErrorKind::InvalidArgument);
  for (int32_t id : ids) {
    if (id < 0 || id >= config.vocab_size) {
      throw Error(std::string(what) + ": token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                  std::to_string(config.vocab_size - 1) + ")", ErrorKind::InvalidArgument);
    }
  }
  if (uint64_t(seq->position) + ids.size() > context_length) {
    throw Error(std::string(what) + ": " + std::to_string(ids.size()) + " tokens at position " +
                std::to_string(seq->position) + " do not fit the context of " + std::to_string(context_length) +
                " tokens (choose a longer context or a shorter prompt)", ErrorKind::ContextFull);
  }
}

void Engine::Impl::select(SequenceId id) {
  if (id >= sequences.size() || !sequences[id]) {
    throw Error("no sequence " + std::to_string(id), ErrorKind::InvalidArgument);
  }
  selected = id;
  seq = sequences[id].get();
  forward->set_cache(*seq->cache);
}

void Engine::Impl::run_pass(std::span<const int32_t> ids, LogitsOut out) {
  settle();
  const RecordCounts before = record_counts();
  submit_pass(ids, out);
  if (ids.size() == 1) {
    const RecordCounts& after = record_counts();
    stats.decode_pass = {uint32_t(after.dispatches - before.dispatches), uint32_t(after.barriers - before.barriers),
                         uint32_t(after.submissions - before.submissions)};
  }
}

void Engine::Impl::submit_pass(std::span<const int32_t> ids, LogitsOut out) {
  std::memcpy(act->ids.mapped, ids.data(), ids.size_bytes());
  if (streamer) {
    // A pass that failed half way (GPU timeout, unreadable model file) may leave slots the
    // cache believes filled: the streamer recovers in place (waits, empties the cache); only
    // when that fails too is the engine unusable.
    if (streaming_failed) {
      throw Error("an earlier GPU error left the expert cache in an unknown state and recovery failed; "
                  "load the model again");
    }
    try {
      CommandBuffer& first = streamer->begin_pass();
      if (stages) stages->reset(first);
      streamer->finish_pass(forward->record(first, seq->position, uint32_t(ids.size()), out, streamer.get()));
    } catch (...) {
      try {
        streamer->recover();
      } catch (...) {
        streaming_failed = true;
      }
      throw;
    }
    stats.stream = streamer->totals();
    if (stages) stages->collect();
    last_slot = 0;  // the argmax result Forward writes by default
  } else {
    finish_resident(submit_resident(seq->position, uint32_t(ids.size()), out), uint32_t(ids.size()));
  }
  seq->position += uint32_t(ids.size());
}

uint32_t Engine::Impl::submit_resident(uint32_t position, uint32_t tokens, LogitsOut out, const BufferRange* ids_from) {
  const uint32_t slot = 1 - last_slot;
  PassBuffer& pass = passes[slot];
  CommandBuffer& cmd = *pass.cmd;
  pass_start = Clock::now();
  cmd.begin();
  if (stages) stages->reset(cmd);
  // Layer breaks submit parts of the pass and wait between them: a timer would count the waits.
  GpuProfiler* timer = layer_breaks ? nullptr : pass.timer.get();
  uint32_t scope = 0;
  if (timer) {
    timer->reset(cmd);
    scope = timer->begin(cmd, "pass");
  }
  if (layer_breaks) layer_breaks->begin_pass();
  forward->record(cmd, position, tokens, out, layer_breaks.get(), TokenIo{ids_from, &act->argmax_results[slot]});
  if (timer) timer->end(cmd, scope);
  cmd.submit();
  last_slot = slot;
  return slot;
}

void Engine::Impl::finish_resident(uint32_t slot, uint32_t tokens, bool chained) {
  PassBuffer& pass = passes[slot];
  pass.cmd->wait();
  if (layer_breaks) layer_breaks->end_pass(seconds_since(pass_start));
  if (stages) stages->collect();
  if (tokens != 1 || !pass.timer || layer_breaks) {
    last_end_ticks.reset();
    return;
  }
  const GpuProfiler::Scope timed = pass.timer->results().at(0);
  stats.decode_gpu_seconds += timed.ms * 1e-3;
  stats.decode_gpu_tokens += 1;
  if (chained && last_end_ticks) {
    const uint32_t bits = ctx.caps().timestamp_valid_bits;
    const uint64_t mask = bits >= 64 ? ~uint64_t{0} : (uint64_t{1} << bits) - 1;
    stats.decode_chained_gap_seconds += double((timed.begin_ticks - *last_end_ticks) & mask) * ctx.caps().timestamp_period_ns * 1e-9;
    stats.decode_chained_passes += 1;
  }
  last_end_ticks = timed.end_ticks;
}

// One greedy token. Resident passes are chained: the pass of the token this one returns is
// submitted before this one is waited for (its id read on the GPU), so the GPU goes from one
// pass to the next without waiting for the host to wake up, read the id and record. When the
// caller feeds that id next, its pass is already running; anything else forgets it (settle).
int32_t Engine::Impl::greedy_step(int32_t id) {
  if (!can_chain()) {
    run_pass(std::span<const int32_t>(&id, 1), LogitsOut::Argmax);
    return int32_t(reinterpret_cast<const uint32_t*>(act->argmax_results[last_slot].mapped)[0]);
  }
  uint32_t slot = 0;
  const bool chained = ahead && ahead->sequence == selected && ahead->position == seq->position && ahead->input == id;
  if (chained) {
    slot = ahead->slot;
    ahead.reset();
  } else {
    settle();
    std::memcpy(act->ids.mapped, &id, sizeof id);
    const RecordCounts before = record_counts();
    slot = submit_resident(seq->position, 1, LogitsOut::Argmax);
    const RecordCounts& after = record_counts();
    stats.decode_pass = {uint32_t(after.dispatches - before.dispatches), uint32_t(after.barriers - before.barriers),
                         uint32_t(after.submissions - before.submissions)};
  }
  if (uint64_t(seq->position) + 2 <= context_length) {  // room for the next token's K/V row
    const uint32_t next = submit_resident(seq->position + 1, 1, LogitsOut::Argmax, &act->argmax_results[slot]);
    ahead = Ahead{selected, seq->position + 1, next, -1};
  }
  finish_resident(slot, 1, chained);
  seq->position += 1;
  const int32_t result = int32_t(reinterpret_cast<const uint32_t*>(act->argmax_results[slot].mapped)[0]);
  if (ahead) ahead->input = result;
  return result;
}

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

namespace {

void progress(const EngineOptions& options, float fraction, std::string_view stage) {
  if (options.on_progress) options.on_progress(fraction, stage);
}

// Opens, checks and uploads; `owned` is null when the caller lends `ctx`.
std::unique_ptr<Engine::Impl> build(std::unique_ptr<Model> model, std::unique_ptr<Context> owned, Context& ctx,
                                    const EngineOptions& options, Clock::time_point start) {
  check_supported(model->config(), model->path());
  auto m = std::make_unique<Engine::Impl>(std::move(model), std::move(owned), ctx);
  m->context_length = choose_context(m->config, options.ctx_len);
  m->chunk = choose_chunk(ctx, options.chunk, m->context_length);
  m->kv_type = to_kv_type(options.kv_type);
  const uint64_t heap = device_memory_bytes(ctx);
  m->memory_available = options.memory_limit ? std::min(options.memory_limit, heap) : heap;
  try {
    m->choose_streaming(options);
  } catch (const Error& e) {  // every problem there is an option value
    if (e.kind() != ErrorKind::General) throw;
    throw Error(e.what(), ErrorKind::InvalidArgument);
  }
  check_half_conversions(ctx, m->model->weights(), options.kv_type, m->model->path());
  m->check_fits_device(options);
  const bool resident = m->mode == StreamMode::Resident;
  progress(options, 0.1f, "weights");
  m->weights = std::make_unique<DeviceWeights>(ctx, m->config, m->model->weights(), resident);
  progress(options, 0.8f, "kv cache");
  m->sequences.push_back(std::make_unique<Sequence>());
  m->sequences[0]->cache = std::make_unique<KvCache>(ctx, m->config, m->context_length, m->kv_type);
  m->act = std::make_unique<Activations>(ctx, m->config, m->chunk, m->context_length);
  if (!resident) {
    m->streamer = std::make_unique<ExpertStreamer>(ctx, m->config, m->model->weights(), *m->act,
                                                   m->streaming);
    m->stats.expert_cache_bytes = uint64_t(m->streaming.slots) * expert_slot_stride(m->model->weights());
  }
  m->forward = std::make_unique<Forward>(m->config, *m->weights, *m->sequences[0]->cache, *m->act,
                                         m->sampleable_vocab());
  m->select(0);
  for (Engine::Impl::PassBuffer& pass : m->passes) {
    pass.cmd = std::make_unique<CommandBuffer>(ctx);
    if (ctx.caps().timestamps) pass.timer = std::make_unique<GpuProfiler>(ctx, 1);
  }
  if (options.layer_breaks && resident) m->layer_breaks = std::make_unique<LayerBreaks>(*m->weights);
  progress(options, 0.85f, "pipelines");
  const Clock::time_point pipelines_start = Clock::now();
  m->warm_up();
  m->stats.pipeline_seconds = seconds_since(pipelines_start);
  if (options.profile_stages) {  // after the warm-up, which records without a profiler reset
    uint32_t scopes = Forward::max_stage_scopes(m->config);
    if (m->streamer) {  // every cut of the pass reopens the open stage in the next submission
      const uint32_t rounds = uint32_t((m->config.n_routed_experts + m->streaming.slots - 1) / m->streaming.slots);
      scopes += uint32_t(m->config.num_hidden_layers) * (rounds + 2);
    }
    m->stages = std::make_unique<StageProfiler>(ctx, scopes);
    m->forward->set_stage_profiler(m->stages.get());
  }
  m->stats.weight_bytes = m->weights->bytes();
  m->stats.kv_cache_bytes = m->seq->cache->bytes();
  m->stats.activation_bytes = Activations::bytes_needed(ctx, m->config, m->chunk, m->context_length);
  m->stats.load_seconds = seconds_since(start);
  progress(options, 1.0f, "ready");
  return m;
}

// Model::open's errors are the model's (a missing file is a bad path, not a device problem).
std::unique_ptr<Model> open_model(const std::string& path, const EngineOptions& options) {
  progress(options, 0.0f, "opening");
  try {
    return Model::open(path);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::General) throw;
    throw Error(e.what(), ErrorKind::Model);
  }
}

}  // namespace

std::unique_ptr<Engine> Engine::load(const std::string& path, const EngineOptions& options) {
  const Clock::time_point start = Clock::now();
  std::unique_ptr<Model> model = open_model(path, options);  // file errors come before any Vulkan work
  progress(options, 0.05f, "device");
  ContextOptions context_options;
  context_options.device = options.device;
  context_options.profile = options.profile;
  context_options.validation = options.validation;
  context_options.pipeline_cache = options.pipeline_cache;
  std::unique_ptr<Context> context;
  try {
    context = std::make_unique<Context>(context_options);
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::General) throw;
    throw Error(e.what(), ErrorKind::Device);
  }
  Context& ctx = *context;
  return std::unique_ptr<Engine>(new Engine(build(std::move(model), std::move(context), ctx, options, start)));
}

std::unique_ptr<Engine> Engine::load(const std::string& path, const EngineOptions& options, Context& context) {
  const Clock::time_point start = Clock::now();
  std::unique_ptr<Model> model = open_model(path, options);
  return std::unique_ptr<Engine>(new Engine(build(std::move(model), nullptr, context, options, start)));
}

// ---- Model facts and the tokenizer ----------------------------------------------------------

const ModelConfig& Engine::config() const { return impl_->config; }
std::string Engine::device_name() const { return impl_->ctx.info().name(); }
uint32_t Engine::context_length() const { return impl_->context_length; }
uint32_t Engine::prefill_chunk() const { return impl_->chunk; }
bool Engine::has_tokenizer() const { return impl_->model->tokenizer() != nullptr; }

const Tokenizer& Engine::tokenizer() const {
  const Tokenizer* t = impl_->model->tokenizer();
  if (!t) throw Error("model " + impl_->model->path() + " has no tokenizer (give token ids instead of text)");
  return *t;
}

std::vector<int32_t> Engine::tokenize(std::string_view text, bool allow_special) const {
  return tokenizer().encode(text, allow_special);
}

std::string Engine::detokenize(std::span<const int32_t> ids) const { return tokenizer().decode(ids); }

// ---- Running ----------------------------------------------------------------------------

std::vector<float> Engine::prefill(std::span<const int32_t> ids, bool all_logits) {
  Impl& m = *impl_;
  m.check_tokens(ids, "prefill");
  m.settle();  // before the logit buffers may grow
  const size_t V = size_t(m.config.vocab_size);
  uint32_t chunk = m.chunk;
  if (all_logits) {
    // Every position's logits come back per pass: a pass may not hold more than one binding.
    chunk = uint32_t(std::clamp<uint64_t>(m.ctx.caps().max_storage_range / (V * 4), 1, chunk));
    m.act->reserve_logit_rows(chunk);
  }
  const Clock::time_point start = Clock::now();
  std::vector<float> logits(all_logits ? ids.size() * V : V);
  for (size_t done = 0; done < ids.size(); done += chunk) {
    const std::span<const int32_t> pass = ids.subspan(done, std::min<size_t>(chunk, ids.size() - done));
    const bool last = done + pass.size() == ids.size();
    m.run_pass(pass, all_logits ? LogitsOut::All : last ? LogitsOut::Last : LogitsOut::None);
    const auto* host = reinterpret_cast<const float*>(m.act->logits_host.mapped);
    if (all_logits) std::copy_n(host, pass.size() * V, logits.begin() + std::ptrdiff_t(done * V));
    else if (last) std::copy_n(host, V, logits.begin());
  }
  m.stats.prefill_seconds += seconds_since(start);
  m.stats.prefill_tokens += ids.size();
  return logits;
}

std::vector<float> Engine::decode(int32_t id) {
  Impl& m = *impl_;
  m.check_tokens(std::span<const int32_t>(&id, 1), "decode");
  const Clock::time_point start = Clock::now();
  m.run_pass(std::span<const int32_t>(&id, 1), LogitsOut::Last);
  const auto* host = reinterpret_cast<const float*>(m.act->logits_host.mapped);
  std::vector<float> logits(host, host + m.config.vocab_size);
  m.stats.decode_seconds += seconds_since(start);
  m.stats.decode_tokens += 1;
  return logits;
}

int32_t Engine::decode_greedy(int32_t id) {
  Impl& m = *impl_;
  m.check_tokens(std::span<const int32_t>(&id, 1), "decode");
  const Clock::time_point start = Clock::now();
  const int32_t next = m.greedy_step(id);
  m.stats.decode_seconds += seconds_since(start);
  m.stats.decode_tokens += 1;
  return next;
}

int32_t Engine::sample(std::span<const float> logits, const SamplerOptions& options, std::span<const int32_t> history) {
  Impl& m = *impl_;
  Sequence& s = *m.seq;
  if (!s.sampler_seeded || s.sampler.seed() != options.seed) {
    s.sampler.reseed(options.seed);
    s.sampler_seeded = true;
  }
  const size_t sampleable = m.sampleable_vocab();
  if (logits.size() <= sampleable) return s.sampler.sample(logits, options, history);
  // Padded ids get no probability at all (-inf survives temperature, penalties and top-p).
  std::vector<float> masked(logits.begin(), logits.end());
  std::fill(masked.begin() + std::ptrdiff_t(sampleable), masked.end(), -std::numeric_limits<float>::infinity());
  return s.sampler.sample(masked, options, history);
}

void Engine::reseed_sampler(uint64_t seed) {
  Sequence& s = *impl_->seq;
  s.sampler.reseed(seed);
  s.sampler_seeded = true;
}

StreamMode Engine::stream_mode() const { return impl_->mode; }

std::string Engine::streaming_summary() const {
  if (!impl_->streamer) return "resident: every routed expert in device memory";
  return impl_->streamer->summary();
}

const StreamStats& Engine::last_pass_stream_stats() const {
  static const StreamStats none;
  return impl_->streamer ? impl_->streamer->last_pass() : none;
}

ExpertMap Engine::expert_map() const {
  if (impl_->streamer) return impl_->streamer->expert_map();
  ExpertMap map;
  for (const auto& pool : impl_->model->weights().pools) map.resident.emplace_back(pool.size(), 1);
  return map;
}

void Engine::reset_stream_stats() {
  if (!impl_->streamer) return;
  impl_->streamer->reset_totals();
  impl_->stats.stream = {};
}

void Engine::reset() {
  impl_->settle();
  impl_->seq->position = 0;
}
uint32_t Engine::position() const { return impl_->seq->position; }

void Engine::rewind(uint32_t position) {
  if (position > impl_->seq->position) {
    throw Error("cannot rewind to position " + std::to_string(position) + ": the sequence holds " +
                std::to_string(impl_->seq->position) + " tokens", ErrorKind::InvalidArgument);
  }
  impl_->settle();
  impl_->seq->position = position;  // rows past it are rewritten before attention reads them
}

Engine::SequenceId Engine::add_sequence() {
  Impl& m = *impl_;
  const uint64_t in_use = m.stats.weight_bytes + m.stats.expert_cache_bytes + m.stats.activation_bytes +
                          m.stats.kv_cache_bytes;
  const uint64_t need = KvCache::bytes_needed(m.config, m.context_length, m.kv_type);
  if (in_use + need > m.memory_available) {
    throw Error("another sequence needs a KV cache of " + format_bytes(need) + " but " + format_bytes(in_use) +
                " of the " + format_bytes(m.memory_available) + " of device memory are in use; use a shorter context",
                ErrorKind::OutOfMemory);
  }
  auto seq = std::make_unique<Sequence>();
  seq->cache = std::make_unique<KvCache>(m.ctx, m.config, m.context_length, m.kv_type);
  m.stats.kv_cache_bytes += seq->cache->bytes();
  for (SequenceId id = 1; id < m.sequences.size(); ++id) {
    if (!m.sequences[id]) {
      m.sequences[id] = std::move(seq);
      return id;
    }
  }
  m.sequences.push_back(std::move(seq));
  return SequenceId(m.sequences.size() - 1);
}

void Engine::remove_sequence(SequenceId id) {
  Impl& m = *impl_;
  if (id == 0) throw Error("sequence 0 cannot be removed", ErrorKind::InvalidArgument);
  if (id >= m.sequences.size() || !m.sequences[id]) throw Error("no sequence " + std::to_string(id), ErrorKind::InvalidArgument);
  m.settle();  // no pass may still run on a KV cache being freed
  if (m.selected == id) m.select(0);
  m.stats.kv_cache_bytes -= m.sequences[id]->cache->bytes();
  m.sequences[id].reset();
}

void Engine::select_sequence(SequenceId id) { impl_->select(id); }
Engine::SequenceId Engine::selected_sequence() const { return impl_->selected; }
const EngineStats& Engine::stats() const { return impl_->stats; }

std::vector<StageTiming> Engine::stage_timings() const {
  std::vector<StageTiming> out;
  if (!impl_->stages) return out;
  for (const StageTotal& t : impl_->stages->totals()) out.push_back({t.stage, t.ms, t.weight_bytes});
  return out;
}

void Engine::reset_stage_timings() {
  if (impl_->stages) impl_->stages->clear();
}

}  // namespace megrez
