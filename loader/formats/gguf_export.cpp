#include "loader/formats/gguf_export.h"

#include <filesystem>

#include "loader/error.h"
#include "loader/formats/gguf_metadata.h"
#include "loader/formats/weight_layout.h"
#include "loader/quant/quant.h"

namespace megrez {

namespace {

// llama.cpp's LLAMA_FTYPE for a file whose matrices are mostly `t`.
uint32_t llama_file_type(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q8_0: return 7;
    case DType::BF16: return 32;
  }
  return 0;
}

// Re-encodes `src` row by row as `dst`, emitting about 1 MiB at a time; a tensor already
// in the right type is passed through untouched.
void emit_converted(const TensorView& src, DType dst, const GgufWriter::Emit& emit) {
  if (src.dtype == dst) {
    emit(src.bytes);
    return;
  }
  const int64_t cols = src.cols();
  std::vector<float> row(static_cast<size_t>(cols));
  std::vector<uint8_t> out;
  const size_t flush_at = size_t(1) << 20;
  for (int64_t r = 0; r < src.rows(); ++r) {
    dequantize_row(src.dtype, src.row(r), row.data(), cols);
    quantize_row(dst, row.data(), cols, out);
    if (out.size() >= flush_at) {
      emit(out);
      out.clear();
    }
  }
  if (!out.empty()) emit(out);
}

DType stored_type(const WeightSlot& slot, DType requested, std::vector<std::string>& notes) {
  if (slot.role != WeightRole::Matrix) return DType::F32;
  if (dtype_is_quantized(requested) && slot.shape.back() % kQuantBlock != 0) {
    notes.push_back(slot.gguf_name + ": rows of " + std::to_string(slot.shape.back()) +
                    " values are not a multiple of 32, stored as f16 instead of " + dtype_name(requested));
    return DType::F16;
  }
  return requested;
}

}  // namespace

GgufExportSummary plan_gguf_export(GgufWriter& w, const ModelConfig& cfg, const ModelWeights& weights,
                                   const TokenizerData* tokenizer, const GgufExportOptions& options) {
  GgufExportSummary summary;
  add_config_metadata(w, cfg);  // general.architecture and the megrez-moe.* keys
  w.set("general.name", GgufValue::string(options.name));
  w.set("general.file_type", GgufValue::u32(llama_file_type(options.matrix_type)));
  if (dtype_is_quantized(options.matrix_type)) w.set("general.quantization_version", GgufValue::u32(2));
  if (tokenizer) add_tokenizer_metadata(w, *tokenizer);

  // weight_slots() wants a mutable ModelWeights to point into; a copy of the views is cheap.
  ModelWeights views = weights;
  const std::vector<WeightSlot> slots = weight_slots(cfg, views);
  for (size_t i = 0; i < slots.size();) {
    const WeightSlot& first = slots[i];
    const auto exception = options.tensor_types.find(first.gguf_name);
    const DType type = stored_type(
        first, exception != options.tensor_types.end() ? exception->second : options.matrix_type, summary.notes);
    if (first.expert < 0) {
      const TensorView src = *first.target;
      w.add_tensor(first.gguf_name, type, first.shape,
                   [src, type](const GgufWriter::Emit& emit) { emit_converted(src, type, emit); });
      summary.weights += uint64_t(src.numel());
      ++i;
      continue;
    }
    // A run of expert slots with one GGUF name is one stacked tensor [n_expert, rows, cols].
    std::vector<TensorView> experts;
    for (; i < slots.size() && slots[i].gguf_name == first.gguf_name; ++i) experts.push_back(*slots[i].target);
    std::vector<int64_t> shape = first.shape;
    shape.insert(shape.begin(), int64_t(experts.size()));
    for (const TensorView& e : experts) summary.weights += uint64_t(e.numel());
    w.add_tensor(first.gguf_name, type, shape, [experts = std::move(experts), type](const GgufWriter::Emit& emit) {
      for (const TensorView& e : experts) emit_converted(e, type, emit);
    });
  }
  summary.tensors = w.tensor_count();
  summary.tensor_bytes = w.tensor_data_bytes();
  return summary;
}

GgufExportSummary export_gguf(const ModelConfig& cfg, const ModelWeights& weights, const TokenizerData* tokenizer,
                              const std::string& path, const GgufExportOptions& options) {
  GgufWriter w;
  GgufExportSummary summary = plan_gguf_export(w, cfg, weights, tokenizer, options);
  const size_t count = w.tensor_count();
  w.write_file(path, [&](size_t index, const std::string& name) {
    if (options.progress) options.progress(index, count, name);
  });
  std::error_code ec;
  summary.file_bytes = std::filesystem::file_size(path, ec);
  return summary;
}

}  // namespace megrez
