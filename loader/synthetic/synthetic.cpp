#include "loader/synthetic/synthetic.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "loader/error.h"
#include "loader/formats/gguf_export.h"
#include "loader/formats/mapped_file.h"
#include "loader/formats/safetensors.h"
#include "loader/formats/weight_layout.h"
#include "loader/quant/quant.h"
#include "loader/synthetic/deterministic_random.h"

namespace megrez {

namespace {

using nlohmann::json;

// ---------------------------------------------------------------- deterministic values

std::vector<float> tensor_values(const WeightSlot& slot, uint64_t seed) {
  uint64_t state = fnv1a(slot.hf_name) ^ (seed * 0x2545f4914f6cdd1dull);
  size_t n = 1;
  for (int64_t d : slot.shape) n *= size_t(d);
  std::vector<float> v(n);
  const float unit = std::sqrt(3.0f);  // uniform [-1,1) scaled by sqrt(3) has variance 1
  if (slot.role == WeightRole::Vector) {
    const bool norm = slot.hf_name.find("norm") != std::string::npos;
    for (float& x : v) x = norm ? 1.0f + 0.1f * uniform(state) : 0.05f * uniform(state);
  } else {
    const bool embedding = slot.hf_name == "model.embed_tokens.weight";
    const float scale = embedding ? unit : unit / std::sqrt(float(slot.shape.back()));
    for (float& x : v) x = scale * uniform(state);
  }
  return v;
}

std::vector<uint8_t> encode(const std::vector<float>& values, DType dtype) {
  if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16)
    throw Error(std::string("synthetic safetensors cannot be stored as ") + dtype_name(dtype));
  return quantize(dtype, values, int64_t(values.size()));
}

// ---------------------------------------------------------------- tokenizer

// GPT-2's byte -> printable code point mapping, as UTF-8.
std::string byte_token(int b) {
  int cp = b;
  if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) {
    int n = 0;
    for (int x = 0; x < b; ++x)
      if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += char(cp);
  } else {
    s += char(0xc0 | (cp >> 6));
    s += char(0x80 | (cp & 0x3f));
  }
  return s;
}

// Merges whose parts are bytes or earlier results ("Ġ" is the byte-level space).
const std::vector<std::pair<std::string, std::string>> kMerges = {
    {"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"}, {"l", "l"}, {"e", "ll"}, {"i", "n"}, {"o", "u"},
    {"Ġ", "a"}, {"e", "r"}, {"o", "n"},   {"Ġ", "s"}, {"r", "e"},  {"a", "n"}, {"Ġ", "w"},
};
const char* const kSpecials[] = {"<|eos|>", "<|unk|>", "<|pad|>", "<|role_start|>", "<|role_end|>", "<|turn_end|>"};
constexpr const char* kChatTemplate =
    "{%- for message in messages -%}{{ '<|role_start|>' + message['role'] + '<|role_end|>' + message['content'] + "
    "'<|turn_end|>' }}{%- endfor -%}{%- if add_generation_prompt -%}{{ '<|role_start|>assistant<|role_end|>' }}"
    "{%- endif -%}";

int32_t first_special_id() { return int32_t(256 + kMerges.size()); }

void write_text(const std::string& path, const std::string& text) {
  write_file_bytes(path, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

std::string shard_name(int k, int n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", k, n);
  return buf;
}

}  // namespace

// ---------------------------------------------------------------- public

ModelConfig synthetic_config() {
  ModelConfig c;
  c.hidden_size = 64;
  c.num_hidden_layers = 5;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 96;
  c.moe_intermediate_size = 32;
  c.n_routed_experts = 8;
  c.num_experts_per_tok = 2;
  c.n_shared_experts = 1;
  c.experts_shared_frequency = 2;
  c.first_k_dense_replace = 1;
  c.n_group = 2;
  c.topk_group = 1;
  c.vocab_size = 288;
  c.max_position_embeddings = 128;
  c.rope_theta = 10000.0;
  c.rms_norm_eps = 1e-6;
  c.routed_scaling_factor = 1.5;
  c.eos_token_id = first_special_id();
  return c;
}

std::string hf_config_json(const ModelConfig& c) {
  auto id = [](int64_t v) { return v < 0 ? json(nullptr) : json(v); };
  const json j = {
      {"architectures", {c.architecture}},
      {"model_type", "megrez_moe"},
      {"hidden_size", c.hidden_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"intermediate_size", c.intermediate_size},
      {"moe_intermediate_size", c.moe_intermediate_size},
      {"n_routed_experts", c.n_routed_experts},
      {"num_experts_per_tok", c.num_experts_per_tok},
      {"n_shared_experts", c.n_shared_experts},
      {"experts_shared_frequency", c.experts_shared_frequency},
      {"first_k_dense_replace", c.first_k_dense_replace},
      {"moe_layer_freq", c.moe_layer_freq},
      {"n_group", c.n_group},
      {"topk_group", c.topk_group},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"pre_gate", c.pre_gate},
      {"norm_topk_prob", c.norm_topk_prob},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"rope_theta", c.rope_theta},
      {"rms_norm_eps", c.rms_norm_eps},
      {"routed_scaling_factor", c.routed_scaling_factor},
      {"scoring_func", c.scoring_func},
      {"topk_method", c.topk_method},
      {"hidden_act", c.hidden_act},
      {"attention_bias", false},
      {"rope_scaling", nullptr},
      {"bos_token_id", id(c.bos_token_id)},
      {"eos_token_id", id(c.eos_token_id)},
  };
  return j.dump(2) + "\n";
}

std::vector<SyntheticTensor> synthetic_tensors(const ModelConfig& cfg, uint64_t seed) {
  cfg.validate();
  ModelWeights w;
  prepare_weights(cfg, w);
  std::vector<SyntheticTensor> out;
  for (const WeightSlot& slot : weight_slots(cfg, w))
    out.push_back({slot.hf_name, slot.shape, tensor_values(slot, seed)});
  return out;
}

void write_synthetic_hf(const std::string& dir, const ModelConfig& cfg, const SyntheticOptions& options) {
  if (options.shards < 1) throw Error("synthetic model: shards must be >= 1");
  if (options.tokenizer && cfg.vocab_size < synthetic_bpe_vocab_size())
    throw Error("synthetic tokenizer needs vocab_size >= " + std::to_string(synthetic_bpe_vocab_size()));
  std::filesystem::create_directories(dir);
  const std::vector<SyntheticTensor> tensors = synthetic_tensors(cfg, options.seed);
  write_text(dir + "/config.json", hf_config_json(cfg));

  std::vector<std::vector<uint8_t>> bytes;
  for (const SyntheticTensor& t : tensors) bytes.push_back(encode(t.values, options.dtype));
  const size_t n = tensors.size(), shards = std::min<size_t>(size_t(options.shards), n);
  json weight_map = json::object();
  for (size_t k = 0; k < shards; ++k) {
    std::vector<SafetensorsEntry> entries;
    const std::string file = shards == 1 ? "model.safetensors" : shard_name(int(k + 1), int(shards));
    for (size_t i = k * n / shards; i < (k + 1) * n / shards; ++i) {
      entries.push_back({tensors[i].name, options.dtype, tensors[i].shape, bytes[i]});
      weight_map[tensors[i].name] = file;
    }
    write_safetensors(dir + "/" + file, entries);
  }
  if (shards > 1) {
    const json index = {{"metadata", json::object()}, {"weight_map", weight_map}};
    write_text(dir + "/model.safetensors.index.json", index.dump(2) + "\n");
  }
  if (options.tokenizer) {
    write_text(dir + "/tokenizer.json", synthetic_bpe_tokenizer_json());
    write_text(dir + "/tokenizer_config.json", synthetic_bpe_tokenizer_config_json());
  }
}

void write_synthetic_gguf(const std::string& path, const ModelConfig& cfg, DType matrix_type,
                          const SyntheticOptions& options) {
  std::vector<SyntheticTensor> tensors = synthetic_tensors(cfg, options.seed);
  // Round as the HF directory stores them, so this file equals converting that directory.
  for (SyntheticTensor& t : tensors) {
    const std::vector<uint8_t> stored = encode(t.values, options.dtype);
    t.values = dequantize(TensorView{t.name, options.dtype, {int64_t(t.values.size())}, stored});
  }
  ModelWeights w;
  prepare_weights(cfg, w);
  const std::vector<WeightSlot> slots = weight_slots(cfg, w);
  for (size_t i = 0; i < slots.size(); ++i) {
    TensorView& v = *slots[i].target;
    v.name = tensors[i].name;
    v.dtype = DType::F32;
    v.shape = tensors[i].shape;
    v.bytes = std::span(reinterpret_cast<const uint8_t*>(tensors[i].values.data()), tensors[i].values.size() * 4);
  }
  if (cfg.tie_word_embeddings) w.output = w.token_embd;
  TokenizerData tok;
  if (options.tokenizer)
    tok = Tokenizer::from_hf_json(synthetic_bpe_tokenizer_json(), synthetic_bpe_tokenizer_config_json())->data();
  GgufExportOptions export_options;
  export_options.matrix_type = matrix_type;
  export_options.name = "synthetic-megrez2-seed" + std::to_string(options.seed);
  export_gguf(cfg, w, options.tokenizer ? &tok : nullptr, path, export_options);
}

std::string synthetic_bpe_tokenizer_json() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_token(b)] = b;
  json merges = json::array();
  int id = 256;
  for (const auto& [a, b] : kMerges) {
    vocab[a + b] = id++;
    merges.push_back(a + " " + b);
  }
  json added = json::array();
  for (const char* s : kSpecials)
    added.push_back({{"id", id++},
                     {"content", s},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  const json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  const char* qwen2 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const json j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", qwen2}}}, {"behavior", "Isolated"}, {"invert", false}},
          byte_level}}}},
      {"post_processor", byte_level},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}},
  };
  return j.dump(1) + "\n";
}

std::string synthetic_bpe_tokenizer_config_json() {
  const json j = {{"bos_token", nullptr},
                  {"eos_token", "<|eos|>"},
                  {"pad_token", "<|pad|>"},
                  {"unk_token", "<|unk|>"},
                  {"chat_template", kChatTemplate}};
  return j.dump(1) + "\n";
}

int32_t synthetic_bpe_vocab_size() { return first_special_id() + int32_t(std::size(kSpecials)); }

}  // namespace megrez
