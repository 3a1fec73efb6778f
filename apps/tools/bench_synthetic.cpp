#include "apps/tools/bench_synthetic.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include "loader/error.h"
#include "loader/formats/gguf_export.h"
#include "loader/formats/weight_layout.h"
#include "loader/quant/quant.h"
#include "loader/synthetic/deterministic_random.h"
#include "loader/synthetic/synthetic.h"

namespace megrez {

namespace {

ModelConfig megrez2_config() {
  ModelConfig c;
  c.hidden_size = 2048;
  c.num_hidden_layers = 31;
  c.num_attention_heads = 16;
  c.num_key_value_heads = 4;
  c.head_dim = 128;
  c.intermediate_size = 10944;
  c.moe_intermediate_size = 1408;
  c.n_routed_experts = 64;
  c.num_experts_per_tok = 6;
  c.n_shared_experts = 4;
  c.experts_shared_frequency = 3;
  c.first_k_dense_replace = 1;
  c.n_group = 1;
  c.topk_group = 1;
  c.vocab_size = 128880;
  c.max_position_embeddings = 32768;
  c.rope_theta = 1e6;
  c.rms_norm_eps = 1e-6;
  c.routed_scaling_factor = 1.0;
  return c;
}

ModelConfig megrez2_half_config() {
  ModelConfig c = megrez2_config();
  c.hidden_size = 1536;
  c.num_hidden_layers = 16;
  c.num_attention_heads = 12;
  c.num_key_value_heads = 4;
  c.head_dim = 128;
  c.intermediate_size = 8192;
  c.moe_intermediate_size = 1024;
  return c;
}

ModelConfig tiny_config() {  // models/megrez2-tiny/config.json
  ModelConfig c = megrez2_config();
  c.hidden_size = 256;
  c.num_hidden_layers = 7;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 2;
  c.head_dim = 32;
  c.intermediate_size = 640;
  c.moe_intermediate_size = 128;
  c.n_routed_experts = 16;
  c.num_experts_per_tok = 4;
  c.n_shared_experts = 2;
  c.n_group = 4;
  c.topk_group = 2;
  c.routed_scaling_factor = 2.0;
  c.vocab_size = 4096;
  c.max_position_embeddings = 512;
  c.rope_theta = 10000.0;
  return c;
}

// The type a slot is stored in, as plan_gguf_export() decides it (so views pass through).
DType stored_type(const WeightSlot& slot, DType matrix_type) {
  if (slot.role != WeightRole::Matrix) return DType::F32;
  if (dtype_is_quantized(matrix_type) && slot.shape.back() % kQuantBlock != 0) return DType::F16;
  return matrix_type;
}

uint64_t slot_bytes(const WeightSlot& slot, DType type) {
  uint64_t rows = 1;
  for (size_t d = 0; d + 1 < slot.shape.size(); ++d) rows *= uint64_t(slot.shape[d]);
  return rows * row_bytes(type, slot.shape.back());
}

// `bytes` of random values with standard deviation `stddev`, encoded as `type` (a whole number
// of 32-value groups, so any 32-value boundary starts a valid block).
std::vector<uint8_t> random_pool(DType type, uint64_t bytes, float stddev, uint64_t seed) {
  const uint64_t group_bytes = row_bytes(type, kQuantBlock);
  const uint64_t groups = (bytes + group_bytes - 1) / group_bytes;
  std::vector<uint8_t> pool;
  pool.reserve(groups * group_bytes);
  uint64_t state = seed ^ 0x706f6f6cull;
  const float scale = stddev * std::sqrt(3.0f);
  constexpr uint64_t kChunkGroups = 4096;
  std::vector<float> values(kChunkGroups * kQuantBlock);
  for (uint64_t done = 0; done < groups; done += kChunkGroups) {
    const uint64_t n = std::min(kChunkGroups, groups - done) * kQuantBlock;
    for (uint64_t i = 0; i < n; ++i) values[i] = scale * uniform(state);
    quantize_row(type, values.data(), int64_t(n), pool);
  }
  return pool;
}

std::vector<float> own_values(const WeightSlot& slot, uint64_t seed, float matrix_stddev) {
  uint64_t state = fnv1a(slot.hf_name) ^ (seed * 0x2545f4914f6cdd1dull);
  uint64_t n = 1;
  for (int64_t d : slot.shape) n *= uint64_t(d);
  std::vector<float> v(n);
  const bool norm = slot.hf_name.find("norm") != std::string::npos;
  for (float& x : v) {
    if (slot.role == WeightRole::Router) x = matrix_stddev * std::sqrt(3.0f) * uniform(state);
    else x = norm ? 1.0f + 0.1f * uniform(state) : 0.05f * uniform(state);
  }
  return v;
}

}  // namespace

std::vector<std::string> bench_model_names() { return {"megrez2", "megrez2-half", "tiny"}; }

ModelConfig bench_model_config(const std::string& name) {
  ModelConfig c;
  if (name == "megrez2") c = megrez2_config();
  else if (name == "megrez2-half") c = megrez2_half_config();
  else if (name == "tiny") c = tiny_config();
  else throw Error("unknown synthetic model '" + name + "' (known: megrez2, megrez2-half, tiny)");
  c.eos_token_id = synthetic_bpe_vocab_size() - 6;  // <|eos|> of the embedded synthetic tokenizer
  c.validate();
  return c;
}

BenchModelSummary write_bench_gguf(const std::string& path, const ModelConfig& config, DType matrix_type,
                                   uint64_t seed) {
  ModelWeights weights;
  prepare_weights(config, weights);
  const std::vector<WeightSlot> slots = weight_slots(config, weights);
  const float stddev = 1.0f / std::sqrt(float(config.hidden_size));

  // One pool per stored matrix type, an eighth larger than the largest matrix (plus 1 MiB)
  // so the windows of different matrices start at different places.
  std::map<DType, uint64_t> largest;
  for (const WeightSlot& slot : slots) {
    if (slot.role != WeightRole::Matrix) continue;
    const DType type = stored_type(slot, matrix_type);
    largest[type] = std::max(largest[type], slot_bytes(slot, type));
  }
  std::map<DType, std::vector<uint8_t>> pools;
  for (const auto& [type, bytes] : largest) pools[type] = random_pool(type, bytes + bytes / 8 + (1u << 20), stddev, seed);

  std::vector<std::vector<float>> owned;  // routers, norms, biases: alive until written
  owned.reserve(slots.size());
  for (const WeightSlot& slot : slots) {
    TensorView& view = *slot.target;
    view.name = slot.hf_name;
    view.shape = slot.shape;
    if (slot.role != WeightRole::Matrix) {
      owned.push_back(own_values(slot, seed, stddev));
      view.dtype = DType::F32;
      view.bytes = std::span(reinterpret_cast<const uint8_t*>(owned.back().data()), owned.back().size() * 4);
      continue;
    }
    const DType type = stored_type(slot, matrix_type);
    const std::vector<uint8_t>& pool = pools.at(type);
    const uint64_t bytes = slot_bytes(slot, type), unit = row_bytes(type, kQuantBlock);
    uint64_t state = fnv1a(slot.hf_name) ^ seed;
    const uint64_t offset = (splitmix64(state) % ((pool.size() - bytes) / unit + 1)) * unit;
    view.dtype = type;
    view.bytes = std::span(pool.data() + offset, bytes);
  }
  if (config.tie_word_embeddings) weights.output = weights.token_embd;

  const TokenizerData tokenizer =
      Tokenizer::from_hf_json(synthetic_bpe_tokenizer_json(), synthetic_bpe_tokenizer_config_json())->data();
  GgufExportOptions options;
  options.matrix_type = matrix_type;
  options.name = "megrez-bench synthetic seed " + std::to_string(seed);
  const GgufExportSummary summary = export_gguf(config, weights, &tokenizer, path, options);
  return {summary.weights, summary.file_bytes};
}

}  // namespace megrez
