#pragma once
// The one Model implementation, shared by the HF and GGUF openers (internal to loader/).
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "loader/formats/mapped_file.h"
#include "loader/formats/model.h"
#include "loader/formats/safetensors.h"
#include "loader/formats/weight_layout.h"

namespace megrez {

struct LoadedModel final : Model {
  LoadedModel(std::string format, std::string path) : format_(std::move(format)), path_(std::move(path)) {}

  const ModelConfig& config() const override { return config_; }
  const ModelWeights& weights() const override { return weights_; }
  const Tokenizer* tokenizer() const override { return tokenizer_.get(); }
  std::string format() const override { return format_; }
  std::string path() const override { return path_; }

  // Checks `found` against the slot's exact shape and stores it in the slot's field.
  // Vectors (norms, router biases) are copied into Model-owned F32 storage whatever their
  // stored type, so they are always F32 and aligned. `file` names the source in messages;
  // `gguf_order` prints shapes as GGUF ne (reversed) so they match what tools show.
  void bind(const WeightSlot& slot, const TensorView& found, const std::string& file, bool gguf_order);

  // Refuses a config whose weights cannot fit in `available` bytes at `min_bits` per weight,
  // before anything is allocated per tensor (see stored_weight_count).
  void check_size_plausible(uint64_t available, unsigned min_bits, const std::string& source) const;

  // A tokenizer that can produce ids beyond the embedding would index out of it later.
  void check_tokenizer_fits(const std::string& source) const;

  std::string format_, path_;
  ModelConfig config_;
  ModelWeights weights_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::deque<std::vector<float>> owned_f32_;            // converted vectors; deque: never moves them
  std::unique_ptr<SafetensorsCheckpoint> safetensors_;  // HF: the mapped shards
  std::unique_ptr<MappedFile> gguf_file_;               // GGUF: the mapped file
};

std::unique_ptr<Model> open_hf_model(const std::string& dir);
std::unique_ptr<Model> open_gguf_model(const std::string& path);
// A GGUF model over bytes the caller keeps alive for the Model's lifetime (fuzzing, tests);
// `name` stands for the file in messages.
std::unique_ptr<Model> open_gguf_bytes(std::span<const uint8_t> bytes, const std::string& name);

}  // namespace megrez
