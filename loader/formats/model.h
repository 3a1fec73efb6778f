#pragma once
// A Megrez2 checkpoint opened from disk: a Hugging Face directory (config.json +
// safetensors, sharded or not) or a GGUF file. Tensors stay memory-mapped; only small
// tensors that need converting (norms, router biases) are copied.
#include <memory>
#include <string>

#include "loader/formats/config.h"
#include "loader/tokenizer/tokenizer.h"
#include "loader/weights.h"

namespace megrez {

class Model {
 public:
  virtual ~Model() = default;

  // Path is an HF directory or a .gguf file. Throws megrez::Error with one clear message
  // (naming the file and the offending tensor or key) on anything wrong.
  static std::unique_ptr<Model> open(const std::string& path);

  virtual const ModelConfig& config() const = 0;
  virtual const ModelWeights& weights() const = 0;
  virtual const Tokenizer* tokenizer() const = 0;  // null when the checkpoint has none
  virtual std::string format() const = 0;          // "hf" or "gguf"
  virtual std::string path() const = 0;
};

}  // namespace megrez
