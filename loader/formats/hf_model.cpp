// Opening a Hugging Face checkpoint directory: config.json, safetensors (single or sharded),
// and the tokenizer (tokenizer.model, else tokenizer.json + tokenizer_config.json).
#include <filesystem>
#include <iostream>
#include <set>

#include "loader/error.h"
#include "loader/formats/hf_config.h"
#include "loader/formats/json_strict.h"
#include "loader/formats/model_impl.h"

namespace megrez {

namespace {

namespace fs = std::filesystem;

std::string join(const std::string& dir, const char* name) { return (fs::path(dir) / name).string(); }

// HF may store the template as a string or as a list of {"name", "template"} (the one
// named "default" is the chat template).
std::string chat_template_from(const std::string& config_text, const std::string& source) {
  if (config_text.empty()) return {};
  const nlohmann::json cfg = parse_json_strict(config_text, source);
  const auto it = cfg.is_object() ? cfg.find("chat_template") : cfg.end();
  if (it == cfg.end() || it->is_null()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    for (const auto& entry : *it) {
      if (!entry.is_object()) continue;
      const auto name = entry.find("name"), text = entry.find("template");
      if (name != entry.end() && *name == "default" && text != entry.end() && text->is_string())
        return text->get<std::string>();
    }
  }
  throw Error(source + ": chat_template must be a string or a list with a \"default\" template");
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir) {
  const std::string spm = join(dir, "tokenizer.model"), hf = join(dir, "tokenizer.json");
  const std::string config_path = join(dir, "tokenizer_config.json");
  const std::string config_text = fs::exists(config_path) ? read_text_file(config_path) : std::string();
  const std::string source = fs::exists(spm) ? spm : hf;
  try {
    if (fs::exists(spm)) {
      auto tok = Tokenizer::from_sentencepiece(read_text_file(spm));
      const std::string chat_template = chat_template_from(config_text, config_path);
      if (chat_template.empty()) return tok;
      TokenizerData data = tok->data();
      data.chat_template = chat_template;
      return Tokenizer::from_data(std::move(data));
    }
    if (fs::exists(hf)) return Tokenizer::from_hf_json(read_text_file(hf), config_text);
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  return nullptr;
}

// An unexpected tensor is an error; routed experts under a non-owner layer get a hint,
// since aliasing the pool is the point of the format.
[[noreturn]] void unexpected_tensor(const std::string& name, const std::string& file, const ModelConfig& cfg) {
  std::string hint;
  const std::string prefix = "model.layers.";
  if (name.rfind(prefix, 0) == 0 && name.find(".mlp.experts.") != std::string::npos) {
    const int64_t layer = std::atoll(name.c_str() + prefix.size());
    if (layer >= 0 && layer < cfg.num_hidden_layers && cfg.is_moe_layer(layer))
      hint = " (layer " + std::to_string(layer) + " shares pool " + std::to_string(cfg.pool_of(layer)) +
             ", whose experts belong under owner layer " + std::to_string(cfg.owner_of_pool(cfg.pool_of(layer))) + ")";
    else
      hint = " (layer " + std::to_string(layer) + " has no routed experts)";
  } else if (name == "lm_head.weight" && cfg.tie_word_embeddings) {
    hint = " (tie_word_embeddings is true, so the output projection is the embedding)";
  }
  throw Error("unexpected tensor " + name + " in " + file + hint);
}

}  // namespace

std::unique_ptr<Model> open_hf_model(const std::string& dir) {
  auto m = std::make_unique<LoadedModel>("hf", dir);
  m->safetensors_ = std::make_unique<SafetensorsCheckpoint>(dir);
  const auto& tensors = m->safetensors_->tensors();

  std::optional<int64_t> k_proj_rows;
  if (auto it = tensors.find("model.layers.0.self_attn.k_proj.weight");
      it != tensors.end() && !it->second.view.shape.empty())
    k_proj_rows = it->second.view.shape[0];
  const std::string config_path = join(dir, "config.json");
  m->config_ = parse_hf_config(read_text_file(config_path), config_path, k_proj_rows, &std::cerr);
  m->check_size_plausible(m->safetensors_->data_bytes(), 16, dir);  // BF16/F16/F32 only

  prepare_weights(m->config_, m->weights_);
  std::set<std::string> used;
  for (const WeightSlot& slot : weight_slots(m->config_, m->weights_)) {
    auto it = tensors.find(slot.hf_name);
    if (it == tensors.end()) {
      const bool lm_head = slot.hf_name == "lm_head.weight";
      throw Error("missing tensor " + slot.hf_name + " in " + dir + (lm_head ? " (tie_word_embeddings is false)" : ""));
    }
    m->bind(slot, it->second.view, it->second.file, false);
    used.insert(slot.hf_name);
  }
  for (const auto& [name, entry] : tensors)
    if (!used.count(name) && name.find("rotary_emb.") == std::string::npos)
      unexpected_tensor(name, entry.file, m->config_);
  if (m->config_.tie_word_embeddings) m->weights_.output = m->weights_.token_embd;

  m->tokenizer_ = load_tokenizer(dir);
  m->check_tokenizer_fits(dir);
  return m;
}

}  // namespace megrez
