#pragma once
// Writing a model (config, weights, tokenizer) as a GGUF file: the core of megrez-convert
// and of the synthetic GGUF writer. Matrices are stored in the requested type; the router
// weights, norms and router biases stay f32; a matrix whose rows are not a multiple of 32
// values cannot be block-quantized and falls back to f16 (with a note). Routed experts are
// stacked per pool into blk.OWNER.ffn_{gate,up,down}_exps. Same input, same bytes.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "loader/formats/config.h"
#include "loader/formats/gguf.h"
#include "loader/tokenizer/tokenizer.h"
#include "loader/weights.h"

namespace megrez {

struct GgufExportOptions {
  DType matrix_type = DType::F16;
  // Per-tensor exceptions by GGUF name (matrices only), e.g. a mixed-format file for tests.
  std::map<std::string, DType> tensor_types;
  std::string name;  // general.name
  // Called before each tensor's data is written.
  std::function<void(size_t index, size_t count, const std::string& tensor)> progress;
};

struct GgufExportSummary {
  size_t tensors = 0;
  uint64_t weights = 0;       // stored values
  uint64_t tensor_bytes = 0;  // tensor data, without alignment padding
  uint64_t file_bytes = 0;    // whole file (0 until written)
  std::vector<std::string> notes;
  double bits_per_weight() const { return weights ? 8.0 * double(tensor_bytes) / double(weights) : 0.0; }
};

// Adds the metadata and every tensor to `w` (the views must outlive the write).
GgufExportSummary plan_gguf_export(GgufWriter& w, const ModelConfig& cfg, const ModelWeights& weights,
                                   const TokenizerData* tokenizer, const GgufExportOptions& options);

// Plans and writes `path` (through PATH.tmp and a rename).
GgufExportSummary export_gguf(const ModelConfig& cfg, const ModelWeights& weights, const TokenizerData* tokenizer,
                              const std::string& path, const GgufExportOptions& options);

}  // namespace megrez
