#pragma once
// GGUF v3 (llama.cpp's model file format), read and written by our own code:
//   magic "GGUF", u32 version = 3, u64 tensor_count, u64 metadata_kv_count,
//   metadata: { string key, u32 value_type, value }*,
//   tensor infos: { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }*,
//   padding to `general.alignment` (default 32), then the data section; every tensor offset
//   is relative to the data section and a multiple of the alignment.
// Strings are u64 length + bytes; arrays are u32 element type + u64 count + elements.
// ne[0] is the innermost (fastest) dimension, so GGUF ne = reversed Hugging Face shape and the
// bytes are laid out exactly as HF's row-major tensor.
// Everything is little-endian. The reader treats the file as hostile: every count, length,
// dimension and offset is checked against the bytes that remain BEFORE anything is allocated.
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "loader/tensor.h"

namespace megrez {

enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};
const char* gguf_type_name(GgufType t);

// ggml tensor type ids of the formats this runtime supports (ggml.h's enum ggml_type).
uint32_t ggml_type_id(DType t);
const char* ggml_type_name(uint32_t id);  // "q4_K", ...; "unknown" for ids ggml does not define

// An array value. Numeric and bool elements are kept packed (little-endian, as in the
// file) so that a 4 MB u8 array costs 4 MB; strings and nested arrays are kept as objects.
struct GgufArray {
  GgufType elem = GgufType::U8;
  std::vector<uint8_t> packed;       // numeric / BOOL elements
  std::vector<std::string> strings;  // STRING elements
  std::vector<GgufArray> arrays;     // ARRAY elements
  uint64_t size() const;

  static GgufArray of_u8(std::span<const uint8_t> v);
  static GgufArray of_i32(std::span<const int32_t> v);
  static GgufArray of_f32(std::span<const float> v);
  static GgufArray of_strings(std::vector<std::string> v);
};

struct GgufValue {
  GgufType type = GgufType::U32;
  // U8..U64 and BOOL: uint64_t; I8..I64: int64_t; F32/F64: double; STRING; ARRAY.
  std::variant<uint64_t, int64_t, double, std::string, GgufArray> data;

  static GgufValue u32(uint32_t v) { return {GgufType::U32, uint64_t(v)}; }
  static GgufValue i32(int32_t v) { return {GgufType::I32, int64_t(v)}; }
  static GgufValue f32(float v) { return {GgufType::F32, double(v)}; }
  static GgufValue f64(double v) { return {GgufType::F64, v}; }
  static GgufValue boolean(bool v) { return {GgufType::BOOL, uint64_t(v)}; }
  static GgufValue string(std::string v) { return {GgufType::STRING, std::move(v)}; }
  static GgufValue array(GgufArray v) { return {GgufType::ARRAY, std::move(v)}; }
};

struct GgufTensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> ne;         // GGUF order: ne[0] innermost
  uint64_t offset = 0;             // relative to the data section
  std::span<const uint8_t> bytes;  // the tensor's bytes inside the parsed buffer
  TensorView view() const;         // HF order shape (ne reversed)
};

struct GgufContents {
  uint32_t version = 3;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;                                 // absolute file offset of the data section
  std::vector<std::pair<std::string, GgufValue>> metadata;  // file order
  std::vector<GgufTensorInfo> tensors;                      // file order

  const GgufValue* find(const std::string& key) const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;

  std::map<std::string, size_t> key_index, tensor_index;
};

// Parses a whole GGUF file held in `bytes` (tensor views point into it). Only tensors of
// the types in DType are accepted. `source` names the file in every message.
GgufContents parse_gguf(std::span<const uint8_t> bytes, const std::string& source);

// ---------------------------------------------------------------- writing

// Collects metadata and tensor descriptions, then writes the file in one pass, asking
// each tensor's producer for its bytes in order so a converter never holds a whole model
// in memory. The same inputs always give the same bytes.
class GgufWriter {
 public:
  using Emit = std::function<void(std::span<const uint8_t>)>;
  using Producer = std::function<void(const Emit& emit)>;  // must emit exactly the tensor's size
  using Progress = std::function<void(size_t tensor_index, const std::string& name)>;

  explicit GgufWriter(uint64_t alignment = 32);

  void set(const std::string& key, GgufValue value);  // a key given twice is an error
  // `hf_shape` in HF order (outermost first); the file stores it reversed.
  void add_tensor(const std::string& name, DType dtype, std::vector<int64_t> hf_shape, Producer produce);
  void add_tensor(const std::string& name, DType dtype, std::vector<int64_t> hf_shape, std::span<const uint8_t> bytes);

  size_t tensor_count() const { return tensors_.size(); }
  uint64_t tensor_data_bytes() const;  // sum of tensor sizes, without padding

  void write(const Emit& sink, const Progress& progress = {}) const;
  std::vector<uint8_t> to_bytes() const;
  // Writes PATH.tmp, then renames it over `path`; the partial file is removed on error.
  void write_file(const std::string& path, const Progress& progress = {}) const;

 private:
  struct Tensor {
    std::string name;
    DType dtype;
    std::vector<int64_t> hf_shape;
    uint64_t size;
    Producer produce;
  };
  uint64_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::vector<Tensor> tensors_;
};

}  // namespace megrez
