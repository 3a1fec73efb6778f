// Opening a GGUF file as a Model: llama.cpp tensor names, routed experts stacked per pool
// ([n_expert, rows, cols] in HF order) and sliced into one view per expert.
#include <set>

#include "loader/error.h"
#include "loader/formats/gguf.h"
#include "loader/formats/gguf_metadata.h"
#include "loader/formats/model_impl.h"

namespace megrez {

namespace {

// One expert's matrix inside a stacked tensor: experts are contiguous and equally sized.
TensorView expert_slice(const GgufTensorInfo& stacked, const WeightSlot& slot, int64_t n_experts,
                        const std::string& path) {
  TensorView all = stacked.view();
  std::vector<int64_t> expected = slot.shape;
  expected.insert(expected.begin(), n_experts);
  if (all.shape != expected)
    throw Error("expected ne " + shape_string({expected.rbegin(), expected.rend()}) + " got ne " +
                shape_string(stacked.ne) + " for " + stacked.name + " in " + path);
  const size_t per_expert = all.bytes.size() / size_t(all.shape[0]);
  TensorView v;
  v.name = stacked.name + "[" + std::to_string(slot.expert) + "]";
  v.dtype = all.dtype;
  v.shape = slot.shape;
  v.bytes = all.bytes.subspan(size_t(slot.expert) * per_expert, per_expert);
  return v;
}

// Fills `m` from a GGUF file's bytes, which `m` owns or the caller keeps alive.
void load_gguf(LoadedModel& m, std::span<const uint8_t> bytes) {
  const std::string& path = m.path_;
  const GgufContents g = parse_gguf(bytes, path);
  m.config_ = config_from_gguf(g, path);
  m.check_size_plausible(bytes.size(), 4, path);  // no supported type stores under 4 bits

  prepare_weights(m.config_, m.weights_);
  std::set<std::string> used;
  for (const WeightSlot& slot : weight_slots(m.config_, m.weights_)) {
    const GgufTensorInfo* t = g.find_tensor(slot.gguf_name);
    if (!t) throw Error("missing tensor " + slot.gguf_name + " in " + path);
    if (slot.expert < 0) {
      m.bind(slot, t->view(), path, true);
    } else {
      m.bind(slot, expert_slice(*t, slot, m.config_.n_routed_experts, path), path, true);
    }
    used.insert(slot.gguf_name);
  }
  for (const GgufTensorInfo& t : g.tensors)
    if (!used.count(t.name)) throw Error("unexpected tensor " + t.name + " in " + path);
  if (m.config_.tie_word_embeddings) m.weights_.output = m.weights_.token_embd;

  if (auto data = tokenizer_data_from_gguf(g, path)) {
    try {
      m.tokenizer_ = Tokenizer::from_data(std::move(*data));
    } catch (const Error& e) {
      throw Error(path + ": tokenizer: " + e.what());
    }
  }
  m.check_tokenizer_fits(path);
}

}  // namespace

std::unique_ptr<Model> open_gguf_model(const std::string& path) {
  auto m = std::make_unique<LoadedModel>("gguf", path);
  m->gguf_file_ = std::make_unique<MappedFile>(path);
  load_gguf(*m, m->gguf_file_->bytes());
  return m;
}

std::unique_ptr<Model> open_gguf_bytes(std::span<const uint8_t> bytes, const std::string& name) {
  auto m = std::make_unique<LoadedModel>("gguf", name);
  load_gguf(*m, bytes);
  return m;
}

}  // namespace megrez
