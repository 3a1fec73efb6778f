// Opening a GGUF file as a Model: llama.cpp tensor names, routed experts stacked per pool
// ([n_expert, rows, cols] in HF order) and sliced into one view per expert.
#include <set>

#include "loader/error.h"
#include "loader/gguf.h"
#include "loader/gguf_metadata.h"
#include "loader/model_impl.h"

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

}  // namespace

std::unique_ptr<Model> open_gguf_model(const std::string& path) {
  auto m = std::make_unique<LoadedModel>("gguf", path);
  m->gguf_file_ = std::make_unique<MappedFile>(path);
  const GgufContents g = parse_gguf(m->gguf_file_->bytes(), path);
  m->config_ = config_from_gguf(g, path);

  prepare_weights(m->config_, m->weights_);
  std::set<std::string> used;
  for (const WeightSlot& slot : weight_slots(m->config_, m->weights_)) {
    const GgufTensorInfo* t = g.find_tensor(slot.gguf_name);
    if (!t) throw Error("missing tensor " + slot.gguf_name + " in " + path);
    if (slot.expert < 0) {
      m->bind(slot, t->view(), path, true);
    } else {
      const TensorView v = expert_slice(*t, slot, m->config_.n_routed_experts, path);
      m->bind(slot, v, path, true);
    }
    used.insert(slot.gguf_name);
  }
  for (const GgufTensorInfo& t : g.tensors)
    if (!used.count(t.name)) throw Error("unexpected tensor " + t.name + " in " + path);
  if (m->config_.tie_word_embeddings) m->weights_.output = m->weights_.token_embd;

  if (auto data = tokenizer_data_from_gguf(g, path)) {
    try {
      m->tokenizer_ = Tokenizer::from_data(std::move(*data));
    } catch (const Error& e) {
      throw Error(path + ": tokenizer: " + e.what());
    }
  }
  m->check_tokenizer_fits(path);
  return m;
}

}  // namespace megrez
