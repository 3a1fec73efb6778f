// GGUF v3 writer: the exact inverse of gguf_reader.cpp for everything it accepts.
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "loader/checked_math.h"
#include "loader/error.h"
#include "loader/formats/gguf.h"

namespace megrez {

// ---------------------------------------------------------------- array builders

GgufArray GgufArray::of_u8(std::span<const uint8_t> v) {
  GgufArray a;
  a.elem = GgufType::U8;
  a.packed.assign(v.begin(), v.end());
  return a;
}

GgufArray GgufArray::of_i32(std::span<const int32_t> v) {
  GgufArray a;
  a.elem = GgufType::I32;
  a.packed.resize(v.size() * 4);
  if (!v.empty()) std::memcpy(a.packed.data(), v.data(), a.packed.size());
  return a;
}

GgufArray GgufArray::of_f32(std::span<const float> v) {
  GgufArray a;
  a.elem = GgufType::F32;
  a.packed.resize(v.size() * 4);
  if (!v.empty()) std::memcpy(a.packed.data(), v.data(), a.packed.size());
  return a;
}

GgufArray GgufArray::of_strings(std::vector<std::string> v) {
  GgufArray a;
  a.elem = GgufType::STRING;
  a.strings = std::move(v);
  return a;
}

// ---------------------------------------------------------------- encoding

namespace {

class Encoder {
 public:
  std::vector<uint8_t> out;

  template <typename T>
  void scalar(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.insert(out.end(), b, b + sizeof(T));
  }
  void string(const std::string& s) {
    scalar<uint64_t>(s.size());
    out.insert(out.end(), s.begin(), s.end());
  }

  void array(const GgufArray& a) {
    scalar<uint32_t>(uint32_t(a.elem));
    scalar<uint64_t>(a.size());
    if (a.elem == GgufType::STRING) {
      for (const std::string& s : a.strings) string(s);
    } else if (a.elem == GgufType::ARRAY) {
      for (const GgufArray& inner : a.arrays) array(inner);
    } else {
      out.insert(out.end(), a.packed.begin(), a.packed.end());
    }
  }

  void value(const std::string& key, const GgufValue& v) {
    try {
      switch (v.type) {
        case GgufType::U8: scalar<uint8_t>(uint8_t(std::get<uint64_t>(v.data))); break;
        case GgufType::U16: scalar<uint16_t>(uint16_t(std::get<uint64_t>(v.data))); break;
        case GgufType::U32: scalar<uint32_t>(uint32_t(std::get<uint64_t>(v.data))); break;
        case GgufType::U64: scalar<uint64_t>(std::get<uint64_t>(v.data)); break;
        case GgufType::BOOL: scalar<uint8_t>(std::get<uint64_t>(v.data) ? 1 : 0); break;
        case GgufType::I8: scalar<int8_t>(int8_t(std::get<int64_t>(v.data))); break;
        case GgufType::I16: scalar<int16_t>(int16_t(std::get<int64_t>(v.data))); break;
        case GgufType::I32: scalar<int32_t>(int32_t(std::get<int64_t>(v.data))); break;
        case GgufType::I64: scalar<int64_t>(std::get<int64_t>(v.data)); break;
        case GgufType::F32: scalar<float>(float(std::get<double>(v.data))); break;
        case GgufType::F64: scalar<double>(std::get<double>(v.data)); break;
        case GgufType::STRING: string(std::get<std::string>(v.data)); break;
        case GgufType::ARRAY: array(std::get<GgufArray>(v.data)); break;
        default: throw Error("GGUF writer: key " + key + " has an invalid type");
      }
    } catch (const std::bad_variant_access&) {
      throw Error("GGUF writer: key " + key + " holds a value that does not match its type " + gguf_type_name(v.type));
    }
  }
};

}  // namespace

// ---------------------------------------------------------------- writer

GgufWriter::GgufWriter(uint64_t alignment) : alignment_(alignment) {
  if (alignment == 0 || !std::has_single_bit(alignment) || alignment > 0xffffffffu)
    throw Error("GGUF writer: alignment " + std::to_string(alignment) + " is not a 32-bit power of two");
  if (alignment != 32) set("general.alignment", GgufValue::u32(uint32_t(alignment)));
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  if (key.empty()) throw Error("GGUF writer: empty metadata key");
  for (const auto& kv : metadata_)
    if (kv.first == key) throw Error("GGUF writer: metadata key " + key + " set twice");
  metadata_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, DType dtype, std::vector<int64_t> hf_shape, Producer produce) {
  if (name.empty() || name.size() >= 64) throw Error("GGUF writer: tensor name \"" + name + "\" must be 1..63 bytes");
  for (const Tensor& t : tensors_)
    if (t.name == name) throw Error("GGUF writer: tensor " + name + " added twice");
  if (hf_shape.empty() || hf_shape.size() > 4) throw Error("GGUF writer: tensor " + name + " must have 1..4 dims");
  for (int64_t d : hf_shape)
    if (d <= 0) throw Error("GGUF writer: tensor " + name + " has a non-positive dimension");
  if (dtype_is_quantized(dtype) && hf_shape.back() % kQuantBlock != 0)
    throw Error("GGUF writer: tensor " + name + " has rows of " + std::to_string(hf_shape.back()) +
                " values, not a multiple of 32 as " + dtype_name(dtype) + " needs");
  const auto rows = checked_product(std::span(hf_shape).first(hf_shape.size() - 1), uint64_t(1) << 48);
  const auto size = rows ? checked_mul(*rows, row_bytes(dtype, hf_shape.back())) : std::nullopt;
  if (!size) throw Error("GGUF writer: tensor " + name + " is absurdly large");
  tensors_.push_back(Tensor{name, dtype, std::move(hf_shape), *size, std::move(produce)});
}

void GgufWriter::add_tensor(const std::string& name, DType dtype, std::vector<int64_t> hf_shape,
                            std::span<const uint8_t> bytes) {
  add_tensor(name, dtype, std::move(hf_shape), [bytes](const Emit& emit) { emit(bytes); });
}

uint64_t GgufWriter::tensor_data_bytes() const {
  uint64_t total = 0;
  for (const Tensor& t : tensors_) total += t.size;
  return total;
}

void GgufWriter::write(const Emit& sink, const Progress& progress) const {
  Encoder head;
  head.scalar<uint32_t>(0x46554747);  // "GGUF"
  head.scalar<uint32_t>(3);
  head.scalar<uint64_t>(tensors_.size());
  head.scalar<uint64_t>(metadata_.size());
  for (const auto& [key, value] : metadata_) {
    head.string(key);
    head.scalar<uint32_t>(uint32_t(value.type));
    head.value(key, value);
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    head.string(t.name);
    head.scalar<uint32_t>(uint32_t(t.hf_shape.size()));
    for (auto d = t.hf_shape.rbegin(); d != t.hf_shape.rend(); ++d) head.scalar<uint64_t>(uint64_t(*d));
    head.scalar<uint32_t>(ggml_type_id(t.dtype));
    head.scalar<uint64_t>(offset);
    offset = *align_up(offset + t.size, alignment_);
  }
  head.out.resize(size_t(*align_up(head.out.size(), alignment_)), 0);
  sink(head.out);

  const std::vector<uint8_t> zeros(size_t(alignment_), 0);
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    if (progress) progress(i, t.name);
    uint64_t written = 0;
    t.produce([&](std::span<const uint8_t> chunk) {
      written += chunk.size();
      if (written > t.size) throw Error("GGUF writer: tensor " + t.name + " produced more bytes than its shape holds");
      sink(chunk);
    });
    if (written != t.size)
      throw Error("GGUF writer: tensor " + t.name + " produced " + std::to_string(written) + " bytes, expected " +
                  std::to_string(t.size));
    const uint64_t pad = *align_up(t.size, alignment_) - t.size;
    if (pad) sink(std::span(zeros).first(size_t(pad)));
  }
}

std::vector<uint8_t> GgufWriter::to_bytes() const {
  std::vector<uint8_t> out;
  write([&](std::span<const uint8_t> s) { out.insert(out.end(), s.begin(), s.end()); });
  return out;
}

void GgufWriter::write_file(const std::string& path, const Progress& progress) const {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error("cannot create " + tmp + ": " + std::strerror(errno));
  try {
    write(
        [&](std::span<const uint8_t> s) {
          if (std::fwrite(s.data(), 1, s.size(), f) != s.size())
            throw Error("cannot write " + tmp + ": " + std::strerror(errno));
        },
        progress);
    if (std::fclose(f) != 0) {
      f = nullptr;
      throw Error("cannot write " + tmp + ": " + std::strerror(errno));
    }
    f = nullptr;
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw Error("cannot rename " + tmp + " to " + path + ": " + ec.message());
  } catch (...) {
    if (f) std::fclose(f);
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw;
  }
}

}  // namespace megrez
