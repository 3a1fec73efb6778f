// GGUF v3 reader. The layout is described in gguf.h; this file only parses and checks.
#include <algorithm>
#include <bit>
#include <cstring>

#include "loader/checked_math.h"
#include "loader/error.h"
#include "loader/formats/gguf.h"

namespace megrez {

static_assert(std::endian::native == std::endian::little, "GGUF files are little-endian");

// ---------------------------------------------------------------- type facts

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kMaxDims = 4;         // GGML_MAX_DIMS
constexpr size_t kMaxTensorName = 64;    // GGML_MAX_NAME, including the terminating NUL in ggml
constexpr size_t kMaxKey = 65535;
constexpr int kMaxArrayNesting = 4;
constexpr uint64_t kMaxElements = uint64_t(1) << 48;

// Size in the file of one scalar element, 0 for STRING/ARRAY and unknown ids.
uint64_t scalar_size(uint32_t type) {
  switch (GgufType(type)) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::BOOL: return 1;
    case GgufType::U16:
    case GgufType::I16: return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32: return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64: return 8;
    default: return 0;
  }
}

bool valid_type(uint32_t type) { return type <= uint32_t(GgufType::F64); }

// Smallest number of bytes one array element of this type can occupy in the file.
uint64_t min_element_size(uint32_t type) {
  if (type == uint32_t(GgufType::STRING)) return 8;  // u64 length
  if (type == uint32_t(GgufType::ARRAY)) return 12;  // u32 type + u64 count
  return scalar_size(type);
}

struct GgmlTypeInfo {
  uint32_t id;
  const char* name;
};
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {0, "f32"},      {1, "f16"},     {2, "q4_0"},     {3, "q4_1"},   {6, "q5_0"},    {7, "q5_1"},   {8, "q8_0"},
    {9, "q8_1"},     {10, "q2_K"},   {11, "q3_K"},    {12, "q4_K"},  {13, "q5_K"},   {14, "q6_K"},  {15, "q8_K"},
    {16, "iq2_xxs"}, {17, "iq2_xs"}, {18, "iq3_xxs"}, {19, "iq1_s"}, {20, "iq4_nl"}, {21, "iq3_s"}, {22, "iq2_s"},
    {23, "iq4_xs"},  {24, "i8"},     {25, "i16"},     {26, "i32"},   {27, "i64"},    {28, "f64"},   {29, "iq1_m"},
    {30, "bf16"},    {34, "tq1_0"},  {35, "tq2_0"},
};

bool dtype_of_ggml(uint32_t id, DType& out) {
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0})
    if (ggml_type_id(t) == id) {
      out = t;
      return true;
    }
  return false;
}

}  // namespace

const char* gguf_type_name(GgufType t) {
  static const char* const names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                      "bool", "string", "array", "u64", "i64", "f64"};
  return uint32_t(t) <= uint32_t(GgufType::F64) ? names[uint32_t(t)] : "invalid";
}

uint32_t ggml_type_id(DType t) {
  switch (t) {
    case DType::F32: return 0;
    case DType::F16: return 1;
    case DType::Q4_0: return 2;
    case DType::Q8_0: return 8;
    case DType::BF16: return 30;
  }
  return 0;
}

const char* ggml_type_name(uint32_t id) {
  for (const auto& t : kGgmlTypes)
    if (t.id == id) return t.name;
  return "unknown";
}

uint64_t GgufArray::size() const {
  if (elem == GgufType::STRING) return strings.size();
  if (elem == GgufType::ARRAY) return arrays.size();
  const uint64_t s = scalar_size(uint32_t(elem));
  return s ? packed.size() / s : 0;
}

TensorView GgufTensorInfo::view() const {
  TensorView v;
  v.name = name;
  v.dtype = dtype;
  v.shape.assign(ne.rbegin(), ne.rend());
  v.bytes = bytes;
  return v;
}

const GgufValue* GgufContents::find(const std::string& key) const {
  auto it = key_index.find(key);
  return it == key_index.end() ? nullptr : &metadata[it->second].second;
}

const GgufTensorInfo* GgufContents::find_tensor(const std::string& name) const {
  auto it = tensor_index.find(name);
  return it == tensor_index.end() ? nullptr : &tensors[it->second];
}

// ---------------------------------------------------------------- cursor

namespace {

// Reads little-endian fields from the buffer; every read is bounds-checked and a failure
// names the file, the byte offset and what was being read.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> bytes, const std::string& source) : bytes_(bytes), source_(source) {}

  size_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(source_ + ": " + what + " (at byte " + std::to_string(pos_) + ")");
  }

  void need(uint64_t n, const std::string& what) const {
    if (n > remaining())
      fail("file truncated: " + what + " needs " + std::to_string(n) + " bytes, " + std::to_string(remaining()) +
           " left");
  }

  std::span<const uint8_t> take(uint64_t n, const std::string& what) {
    need(n, what);
    auto s = bytes_.subspan(pos_, size_t(n));
    pos_ += size_t(n);
    return s;
  }

  template <typename T>
  T scalar(const std::string& what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what).data(), sizeof(T));
    return v;
  }
  uint32_t u32(const std::string& what) { return scalar<uint32_t>(what); }
  uint64_t u64(const std::string& what) { return scalar<uint64_t>(what); }

  std::string string(const std::string& what, uint64_t max_len) {
    // The "... length" description is built only to fail with: strings are read per element.
    uint64_t len;
    if (remaining() >= sizeof len) {
      std::memcpy(&len, take(sizeof len, what).data(), sizeof len);
    } else {
      len = u64(what + " length");
    }
    if (len > max_len) fail(what + " is " + std::to_string(len) + " bytes long, more than " + std::to_string(max_len));
    auto s = take(len, what);
    return std::string(reinterpret_cast<const char*>(s.data()), s.size());
  }

  // Fails unless `count` items of at least `min_size` bytes each can still fit.
  void check_count(uint64_t count, uint64_t min_size, const std::string& what) const {
    if (min_size && count > remaining() / min_size)
      fail(what + " count " + std::to_string(count) + " cannot fit in the " + std::to_string(remaining()) +
           " bytes left");
  }

 private:
  std::span<const uint8_t> bytes_;
  const std::string& source_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------- metadata values

// The descriptions an array's reads carry into error messages, built once per key: built per
// element, a 64 KiB key over millions of 8-byte elements cost ~25,000x the file's size in CPU
// time before anything could fail.
struct ArrayWhat {
  explicit ArrayWhat(const std::string& k)
      : key("key " + k),
        element_type(key + ": array element type"),
        length(key + ": array length"),
        element(key + ": array element"),
        string_element(key + ": string element"),
        data(key + ": array data") {}
  std::string key, element_type, length, element, string_element, data;
};

GgufArray read_array(Cursor& in, const ArrayWhat& what, int depth) {
  if (depth > kMaxArrayNesting)
    in.fail(what.key + ": arrays nested more than " + std::to_string(kMaxArrayNesting) + " deep");
  GgufArray a;
  const uint32_t elem = in.u32(what.element_type);
  if (!valid_type(elem)) in.fail(what.key + ": invalid array element type " + std::to_string(elem));
  a.elem = GgufType(elem);
  const uint64_t count = in.u64(what.length);
  in.check_count(count, min_element_size(elem), what.element);
  if (a.elem == GgufType::STRING) {
    a.strings.reserve(size_t(count));
    for (uint64_t i = 0; i < count; ++i) a.strings.push_back(in.string(what.string_element, in.remaining()));
  } else if (a.elem == GgufType::ARRAY) {
    a.arrays.reserve(size_t(count));
    // Each element is itself an array value: its own element type, count and elements.
    for (uint64_t i = 0; i < count; ++i) a.arrays.push_back(read_array(in, what, depth + 1));
  } else {
    auto raw = in.take(count * scalar_size(elem), what.data);  // fits: checked above
    a.packed.assign(raw.begin(), raw.end());
    if (a.elem == GgufType::BOOL)
      for (uint8_t b : a.packed)
        if (b > 1) in.fail(what.key + ": bool array element " + std::to_string(b) + " is neither 0 nor 1");
  }
  return a;
}

GgufValue read_value(Cursor& in, uint32_t type, const std::string& key, int depth) {
  const std::string what = "value of key " + key;
  GgufValue v;
  v.type = GgufType(type);
  switch (GgufType(type)) {
    case GgufType::U8: v.data = uint64_t(in.scalar<uint8_t>(what)); break;
    case GgufType::U16: v.data = uint64_t(in.scalar<uint16_t>(what)); break;
    case GgufType::U32: v.data = uint64_t(in.scalar<uint32_t>(what)); break;
    case GgufType::U64: v.data = in.scalar<uint64_t>(what); break;
    case GgufType::I8: v.data = int64_t(in.scalar<int8_t>(what)); break;
    case GgufType::I16: v.data = int64_t(in.scalar<int16_t>(what)); break;
    case GgufType::I32: v.data = int64_t(in.scalar<int32_t>(what)); break;
    case GgufType::I64: v.data = in.scalar<int64_t>(what); break;
    case GgufType::F32: v.data = double(in.scalar<float>(what)); break;
    case GgufType::F64: v.data = in.scalar<double>(what); break;
    case GgufType::BOOL: {
      const uint8_t b = in.scalar<uint8_t>(what);
      if (b > 1) in.fail("key " + key + ": bool value " + std::to_string(b) + " is neither 0 nor 1");
      v.data = uint64_t(b);
      break;
    }
    case GgufType::STRING: v.data = in.string(what, in.remaining()); break;
    case GgufType::ARRAY: v.data = read_array(in, ArrayWhat(key), depth + 1); break;
    default: in.fail("key " + key + ": invalid value type " + std::to_string(type));
  }
  return v;
}

void read_metadata(Cursor& in, uint64_t count, GgufContents& out) {
  in.check_count(count, 8 + 1 + 4 + 1, "metadata entry");
  for (uint64_t i = 0; i < count; ++i) {
    std::string key = in.string("metadata key " + std::to_string(i), kMaxKey);
    if (key.empty()) in.fail("metadata key " + std::to_string(i) + " is empty");
    const uint32_t type = in.u32("type of key " + key);
    GgufValue value = read_value(in, type, key, 0);
    if (!out.key_index.emplace(key, out.metadata.size()).second) in.fail("metadata key " + key + " appears twice");
    out.metadata.emplace_back(std::move(key), std::move(value));
  }
  if (const GgufValue* a = out.find("general.alignment")) {
    if (a->type != GgufType::U32) in.fail("general.alignment must be u32, got " + std::string(gguf_type_name(a->type)));
    const uint64_t align = std::get<uint64_t>(a->data);
    if (align == 0 || !std::has_single_bit(align))
      in.fail("general.alignment " + std::to_string(align) + " is not a power of two");
    out.alignment = align;
  }
}

// ---------------------------------------------------------------- tensor infos

GgufTensorInfo read_tensor_info(Cursor& in, uint64_t index) {
  GgufTensorInfo t;
  t.name = in.string("name of tensor " + std::to_string(index), kMaxTensorName - 1);
  if (t.name.empty()) in.fail("tensor " + std::to_string(index) + " has an empty name");
  const std::string where = "tensor " + t.name;
  const uint32_t n_dims = in.u32(where + ": n_dims");
  if (n_dims == 0 || n_dims > kMaxDims) in.fail(where + ": n_dims " + std::to_string(n_dims) + " is not in 1..4");
  for (uint32_t d = 0; d < n_dims; ++d) {
    const uint64_t ne = in.u64(where + ": ne[" + std::to_string(d) + "]");
    if (ne == 0 || ne > kMaxElements)
      in.fail(where + ": ne[" + std::to_string(d) + "] = " + std::to_string(ne) + " is zero or absurd");
    t.ne.push_back(int64_t(ne));
  }
  if (!checked_product(t.ne, kMaxElements)) in.fail(where + ": the element count overflows");
  const uint32_t type = in.u32(where + ": type");
  if (!dtype_of_ggml(type, t.dtype))
    in.fail(where + ": ggml type " + std::to_string(type) + " (" + ggml_type_name(type) +
            ") is not supported (only f32, f16, bf16, q8_0, q4_0)");
  if (dtype_is_quantized(t.dtype) && t.ne[0] % kQuantBlock != 0)
    in.fail(where + ": ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " + dtype_name(t.dtype) +
            " block size 32");
  t.offset = in.u64(where + ": offset");
  return t;
}

// Points each tensor at its bytes after checking alignment, bounds and overlap.
void place_tensors(std::span<const uint8_t> bytes, GgufContents& out, const std::string& source) {
  const uint64_t data_size = out.data_offset <= bytes.size() ? bytes.size() - out.data_offset : 0;
  std::vector<std::pair<uint64_t, size_t>> starts;  // (offset, index) of non-empty tensors
  for (size_t i = 0; i < out.tensors.size(); ++i) {
    GgufTensorInfo& t = out.tensors[i];
    const std::string where = source + ": tensor " + t.name;
    const uint64_t rows = *checked_product(std::span(t.ne).subspan(1), kMaxElements);
    const auto size = checked_mul(row_bytes(t.dtype, t.ne[0]), rows);
    if (!size) throw Error(where + ": byte size overflows");
    if (t.offset % out.alignment != 0)
      throw Error(where + ": offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                  std::to_string(out.alignment));
    const auto end = checked_add(t.offset, *size);
    if (!end || *end > data_size)
      throw Error(where + ": " + std::to_string(*size) + " bytes at offset " + std::to_string(t.offset) +
                  " run past the " + std::to_string(data_size) + "-byte data section");
    t.bytes = bytes.subspan(size_t(out.data_offset + t.offset), size_t(*size));
    starts.emplace_back(t.offset, i);
  }
  std::sort(starts.begin(), starts.end());
  for (size_t i = 1; i < starts.size(); ++i) {
    const GgufTensorInfo& prev = out.tensors[starts[i - 1].second];
    if (starts[i].first < prev.offset + prev.bytes.size())
      throw Error(source + ": tensors " + prev.name + " and " + out.tensors[starts[i].second].name + " overlap");
  }
}

}  // namespace

GgufContents parse_gguf(std::span<const uint8_t> bytes, const std::string& source) {
  Cursor in(bytes, source);
  GgufContents out;
  if (in.u32("magic") != kMagic) throw Error(source + ": not a GGUF file (bad magic)");
  out.version = in.u32("version");
  if (out.version != 3)
    throw Error(source + ": GGUF version " + std::to_string(out.version) + " is not supported (only 3)");
  const uint64_t tensor_count = in.u64("tensor count");
  const uint64_t kv_count = in.u64("metadata count");
  read_metadata(in, kv_count, out);

  in.check_count(tensor_count, 8 + 1 + 4 + 8 + 4 + 8, "tensor info");
  out.tensors.reserve(size_t(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    GgufTensorInfo t = read_tensor_info(in, i);
    if (!out.tensor_index.emplace(t.name, out.tensors.size()).second) in.fail("tensor " + t.name + " appears twice");
    out.tensors.push_back(std::move(t));
  }
  const auto data_offset = align_up(in.pos(), out.alignment);
  if (!data_offset) throw Error(source + ": data section offset overflows");
  out.data_offset = *data_offset;
  place_tensors(bytes, out, source);
  return out;
}

}  // namespace megrez
