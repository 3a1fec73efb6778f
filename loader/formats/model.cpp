#include <algorithm>
#include <filesystem>

#include "loader/checked_math.h"
#include "loader/error.h"
#include "loader/formats/model_impl.h"
#include "loader/quant/quant.h"

namespace megrez {

void LoadedModel::bind(const WeightSlot& slot, const TensorView& found, const std::string& file, bool gguf_order) {
  if (found.shape != slot.shape) {
    auto show = [&](std::vector<int64_t> s) {
      if (gguf_order) std::reverse(s.begin(), s.end());
      return (gguf_order ? "ne " : "") + shape_string(s);
    };
    throw Error("expected " + show(slot.shape) + " got " + show(found.shape) + " for " + found.name + " in " + file);
  }
  if (slot.role != WeightRole::Vector) {
    *slot.target = found;
    return;
  }
  std::vector<float>& values = owned_f32_.emplace_back(dequantize(found));
  TensorView v = found;
  v.dtype = DType::F32;
  v.bytes = std::span(reinterpret_cast<const uint8_t*>(values.data()), values.size() * sizeof(float));
  *slot.target = std::move(v);
}

void LoadedModel::check_size_plausible(uint64_t available, unsigned min_bits, const std::string& source) const {
  const auto count = stored_weight_count(config_);
  const auto bits = count ? checked_mul(*count, min_bits) : std::nullopt;
  if (!bits || *bits / 8 > available)
    throw Error(source + ": the config describes " + (count ? std::to_string(*count) : std::string("over 2^64")) +
                " weights, more than " + std::to_string(available) + " bytes of tensor data can hold");
}

void LoadedModel::check_tokenizer_fits(const std::string& source) const {
  if (tokenizer_ && tokenizer_->vocab_size() > config_.vocab_size)
    throw Error(source + ": the tokenizer has " + std::to_string(tokenizer_->vocab_size()) +
                " tokens but the model's vocab_size is " + std::to_string(config_.vocab_size));
}

std::unique_ptr<Model> Model::open(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw Error(path + ": no such file or directory");
  if (fs::is_directory(st)) return open_hf_model(path);
  return open_gguf_model(path);
}

}  // namespace megrez
