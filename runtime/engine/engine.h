#pragma once
// The public C++ API of the inference engine: load a Megrez2 model into device memory and
// run it token by token. The CLI (apps/megrez-run), the benchmark, the GUI and Android use
// only this header and runtime/engine/generate.h (generation loops and multi-turn chat on top of
// it). Every error a user can cause (missing file, bad format, no Vulkan device,
// model larger than device memory, prompt longer than the context) is a megrez::Error with
// one clear message.
//
//   auto engine = megrez::Engine::load("models/megrez2-tiny", {.ctx_len = 512});
//   std::vector<int32_t> prompt = engine->tokenize("In the beginning");
//   std::vector<float> logits = engine->prefill(prompt);          // last position's logits
//   megrez::Sampler sampler(seed);
//   int32_t id = sampler.sample(logits, {.temperature = 0.7f, .top_p = 0.9f}, prompt);
//   logits = engine->decode(id);                                   // next position
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "loader/formats/config.h"
#include "loader/tokenizer/tokenizer.h"
#include "runtime/engine/sampler.h"

namespace megrez {

class Context;

// KV cache element type. f16 halves the cache; attention math stays fp32 either way.
// (Declared here rather than reusing runtime/ops/attention.h's KvType so this header does
// not pull in Vulkan.)
enum class KvCacheType { F16, F32 };
bool kv_cache_type_from_name(std::string_view name, KvCacheType& out);  // "f16" / "f32"

// Where routed experts live (design.md "Execution modes and the expert streamer").
//   Resident  all uploaded at load.
//   Prefetch  in the model file and a budgeted device cache; each layer's experts are uploaded
//             while the previous layer computes (their ids are known one layer early).
//   OnDemand  the same cache, uploaded only when the layer is reached (the no-overlap baseline).
//   Auto      Prefetch when the expert budget is below the routed experts, else Resident.
enum class StreamMode { Auto, Resident, Prefetch, OnDemand };
bool stream_mode_from_name(std::string_view name, StreamMode& out);  // auto, resident, prefetch, ondemand
const char* stream_mode_name(StreamMode mode);

// Expert cache statistics of streaming mode (all zero when resident).
struct StreamStats {
  uint64_t lookups = 0;         // (layer, distinct expert) requests; decode: top_k per MoE layer
  uint64_t hits = 0, misses = 0;// hits + misses = lookups
  uint64_t bytes_uploaded = 0;  // misses x expert bytes
  uint64_t uploads = 0;         // upload jobs (one per layer, or per round, with misses)
  uint64_t rounds = 0;          // extra expert rounds of prefill chunks larger than the cache
  double stall_ms = 0;          // GPU time the compute queue waited for uploads (timestamps)
  bool stall_measured = false;  // false when the device has no compute timestamps
  uint32_t slots = 0, occupied = 0;  // cache size and occupancy after the pass

  double hit_rate() const { return lookups ? double(hits) / double(lookups) : 0; }
  void add(const StreamStats& pass);  // sums counters, keeps the latest occupancy
};

// Which routed experts device memory holds, and which the last pass used, per pool (the chat
// GUI's expert-cache grid). Resident mode holds them all and keeps the router's choices on the
// GPU, so `used` is known only when streaming (usage_known).
struct ExpertMap {
  std::vector<std::vector<uint8_t>> resident;  // [pool][expert]: 1 in device memory
  std::vector<std::vector<uint8_t>> used;      // [pool][expert]: layers of the pool that chose it (last pass)
  bool usage_known = false;
};

// The slowest storage the expert throttle emulates, GB/s (1 MB/s): below it one expert's read
// takes minutes, and 1e-300 made every upload wait forever.
inline constexpr double kMinStorageBandwidth = 1e-3;

struct EngineOptions {
  std::string device;               // index or name substring; "": MEGREZ_DEVICE, else the best device
  std::string profile;              // device profile (minimum, adreno-7xx, file.json); "": MEGREZ_PROFILE
  uint32_t ctx_len = 0;             // context in tokens; 0: min(max_position_embeddings, 4096)
  KvCacheType kv_type = KvCacheType::F16;
  std::optional<bool> validation;   // Vulkan validation layer; nullopt: MEGREZ_VALIDATION=1
  uint32_t chunk = 0;               // prefill tokens per GPU pass; 0: chosen from the device
  uint64_t memory_limit = 0;        // device bytes the engine may use; 0: the largest device-local heap
  std::string pipeline_cache;       // pipeline cache file, "off", or "" for the default location
  bool profile_stages = false;      // GPU timestamps around each stage of every pass (stage_timings())
  // Device memory for routed experts: "" (all of them), a share of their bytes ("25%") or a
  // size ("512MB", "1.5GB"; K/M/G are binary). At least top_k + 1 experts.
  std::string expert_budget;
  StreamMode stream = StreamMode::Auto;
  double storage_bw = 0;            // GB/s the streamed expert reads are throttled to; 0: unthrottled,
                                    // else at least kMinStorageBandwidth

  // Submit resident passes in parts of about 10 ms (a few layers), each waited for, so that
  // other work on the same queue runs in between: the chat GUI draws on the engine's queue, and
  // on a device with one queue (lavapipe) its frames would otherwise wait for whole tokens.
  // Same logits; costs some speed (LayerBreaks in forward.h).
  bool layer_breaks = false;
  std::string eviction = "pool";    // expert cache policy: "pool" (next use by pool) or "lru"
  std::string expert_upload;        // "": chosen per device; "queue" (transfer queue), "host" (mapped copy)
  // Called on the loading thread as loading proceeds: fraction 0..1 and the stage
  // ("opening", "device", "weights", "kv cache", "pipelines", "ready"); fraction 1 once.
  std::function<void(float fraction, std::string_view stage)> on_progress;
};

// GPU time of one stage of the forward pass, summed over every pass since the engine loaded
// or reset_stage_timings() (EngineOptions::profile_stages). Stages: embed, norms, attention
// (q/k/v/o projections, RoPE, KV store, attention), router, experts (routed experts and their
// combine), shared MLP, dense MLP, lm_head, sampling (GPU argmax) / logits read-back.
struct StageTiming {
  std::string stage;
  double ms = 0;
  uint64_t weight_bytes = 0;        // weights its kernels read; experts: k per token, so in a
                                    // prefill chunk an upper bound (min(E, T*k) experts)
};

struct RecordedPass {
  uint32_t dispatches = 0, barriers = 0, submissions = 0;
};

struct EngineStats {
  double load_seconds = 0;          // open + upload + pipeline warm-up
  double pipeline_seconds = 0;      // of which building pipelines (the pipeline cache shortens it)
  uint64_t prefill_tokens = 0;
  double prefill_seconds = 0;
  uint64_t decode_tokens = 0;
  double decode_seconds = 0;
  // GPU time of the decode passes, from a timestamp at each one's start and end, where they are
  // timed: resident mode without layer breaks, on a device with timestamps (else 0 tokens).
  // decode_seconds minus this, per token, is what the host adds to each token.
  uint64_t decode_gpu_tokens = 0;
  double decode_gpu_seconds = 0;
  // Of the timed decode passes, those submitted while the one before still ran
  // (decode_greedy's chaining), and the time between that one's end and their start: the
  // device idle although the pass was waiting in its queue, i.e. the driver's own cost per
  // submission, which the host cannot hide.
  uint64_t decode_chained_passes = 0;
  double decode_chained_gap_seconds = 0;
  uint64_t weight_bytes = 0, kv_cache_bytes = 0, activation_bytes = 0;  // device memory
  uint64_t expert_cache_bytes = 0;  // streaming: the expert slots (weight_bytes excludes them)
  // The last one-token pass as recorded: kernel dispatches, pipeline barriers, queue submissions
  // (streaming and EngineOptions::layer_breaks cut a pass into several).
  RecordedPass decode_pass;
  StreamStats stream;               // streaming: totals since load or reset_stream_stats()

  double prefill_tokens_per_second() const { return prefill_seconds > 0 ? prefill_tokens / prefill_seconds : 0; }
  double decode_tokens_per_second() const { return decode_seconds > 0 ? decode_tokens / decode_seconds : 0; }
};

// Used from one thread at a time (callers serialise; the C API does it for its sessions).
class Engine {
 public:
  // Opens `path` (Hugging Face directory or .gguf) and uploads every weight to the device.
  static std::unique_ptr<Engine> load(const std::string& path, const EngineOptions& options = {});
  // Same on a context the caller owns (tests share one validated context); options.device,
  // profile, validation and pipeline_cache are then the context's.
  static std::unique_ptr<Engine> load(const std::string& path, const EngineOptions& options, Context& context);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const ModelConfig& config() const;
  std::string device_name() const;
  uint32_t context_length() const;  // positions the KV cache holds
  uint32_t prefill_chunk() const;

  // Tokenizer of the checkpoint; tokenizer() throws megrez::Error when the model has none.
  bool has_tokenizer() const;
  const Tokenizer& tokenizer() const;
  std::vector<int32_t> tokenize(std::string_view text, bool allow_special = true) const;
  std::string detokenize(std::span<const int32_t> ids) const;

  // Feeds `ids` at positions position() .. position()+n-1 (in chunks) and returns the logits
  // of the last one [vocab], or of every one [n, vocab] when all_logits. Throws megrez::Error
  // (and changes nothing) when ids are empty, out of the vocabulary, or do not fit the context.
  std::vector<float> prefill(std::span<const int32_t> ids, bool all_logits = false);
  // Feeds one token; returns its logits [vocab].
  std::vector<float> decode(int32_t id);
  // Feeds one token and returns the argmax of its logits (lowest id on ties), computed on the
  // GPU: greedy decoding without reading the logits back. Like sample(), it never returns an
  // id the tokenizer cannot decode (a padded embedding's extra rows).
  // Resident mode with one sequence (without layer breaks or stage timestamps) submits the pass
  // of the returned id before it returns, reading that id on the GPU: fed back next, it is
  // already running, so the GPU never waits for the host between tokens. Any other call first
  // waits for that pass and forgets it (the work of one token, after the last one a caller wanted).
  int32_t decode_greedy(int32_t id);

  // Samples from `logits` with the engine's sampler (seeded from options.seed on first use
  // and whenever the seed changes); `history` feeds the repetition penalty. Ids at or past the
  // tokenizer's vocabulary size have no probability.
  int32_t sample(std::span<const float> logits, const SamplerOptions& options, std::span<const int32_t> history);
  // Restarts the selected sequence's generator from `seed`, so a request with a seed gives the
  // same text whatever ran on the sequence before.
  void reseed_sampler(uint64_t seed);

  // Streaming: how experts are held and uploaded, one line; the last pass's cache statistics
  // (a decode step: one token); stats().stream has the totals.
  StreamMode stream_mode() const;   // Resident, Prefetch or OnDemand (never Auto)
  std::string streaming_summary() const;
  const StreamStats& last_pass_stream_stats() const;
  ExpertMap expert_map() const;
  void reset_stream_stats();

  // Sequences: independent token streams over the same weights and expert cache, each with its
  // own KV cache of context_length() positions, position and sampler (several chats or server
  // slots on one loaded model). Sequence 0 exists from load; prefill, decode, sample,
  // position, reset and rewind act on the selected one.
  using SequenceId = uint32_t;
  // A new, empty sequence; Error (ErrorKind::OutOfMemory) when its KV cache does not fit the
  // device memory left (or the memory limit).
  SequenceId add_sequence();
  void remove_sequence(SequenceId id);  // frees its KV cache; not 0; selects 0 if it was selected
  void select_sequence(SequenceId id);  // Error (InvalidArgument) for an unknown id
  SequenceId selected_sequence() const;

  void reset();                     // forget the sequence (position 0); weights stay loaded
  // Keeps the first `position` tokens of the sequence and forgets the rest (position must not
  // exceed position()): a prompt sharing a prefix with what the cache holds feeds only the rest.
  void rewind(uint32_t position);
  uint32_t position() const;        // tokens in the KV cache
  const EngineStats& stats() const;
  // Per-stage totals in first-recorded order; empty unless options.profile_stages.
  std::vector<StageTiming> stage_timings() const;
  void reset_stage_timings();

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace megrez
