#pragma once
// Safetensors: u64 little-endian header length, a JSON header
//   {"NAME": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}
// then the data section; offsets are relative to its start. Only BF16/F16/F32 are accepted.
// Everything in the header is untrusted: offsets, sizes and shapes are checked with
// overflow-safe arithmetic before any view is made.
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "loader/formats/mapped_file.h"
#include "loader/tensor.h"

namespace megrez {

// Parses a whole safetensors file held in `bytes`; the views point into it. `source` names
// the file in every message. Throws megrez::Error on anything malformed.
std::vector<TensorView> parse_safetensors(std::span<const uint8_t> bytes, const std::string& source);

// One mapped and parsed .safetensors file.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return file_.path(); }
  const std::vector<TensorView>& tensors() const { return tensors_; }

 private:
  MappedFile file_;
  std::vector<TensorView> tensors_;
};

// Every tensor of a Hugging Face checkpoint directory: model.safetensors, or else the shards
// listed by model.safetensors.index.json (each tensor must be in the shard the index names).
class SafetensorsCheckpoint {
 public:
  struct Entry {
    TensorView view;
    std::string file;  // path of the shard holding it, for messages
  };

  explicit SafetensorsCheckpoint(const std::string& dir);
  const std::map<std::string, Entry>& tensors() const { return tensors_; }
  size_t file_count() const { return files_.size(); }
  uint64_t data_bytes() const;  // sum of the tensors' sizes

 private:
  void add_file(std::unique_ptr<SafetensorsFile> file);
  void load_index(const std::string& dir, const std::string& index_path);

  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry> tensors_;
};

// ---------------------------------------------------------------- writing (tests, synthetic models)

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::F32;  // F32, F16 or BF16
  std::vector<int64_t> shape;
  std::span<const uint8_t> bytes;  // numel * element size
};

// Deterministic bytes: header keys sorted, header padded with spaces to 8 bytes, data in
// the order given, contiguous.
std::vector<uint8_t> serialize_safetensors(const std::vector<SafetensorsEntry>& entries);
void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries);

}  // namespace megrez
