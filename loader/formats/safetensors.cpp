#include "loader/formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>

#include "loader/checked_math.h"
#include "loader/error.h"
#include "loader/formats/json_strict.h"

namespace megrez {

namespace {

using nlohmann::json;

// The reference implementation's own limit; a real header is a few hundred kB.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr uint64_t kMaxElements = uint64_t(1) << 48;
constexpr size_t kMaxRank = 8;

struct DTypeName {
  const char* name;
  DType dtype;
};
constexpr DTypeName kSupported[] = {{"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}};

const char* safetensors_dtype_name(DType t) {
  for (const auto& d : kSupported)
    if (d.dtype == t) return d.name;
  throw Error(std::string("safetensors cannot store ") + dtype_name(t) + " tensors");
}

uint64_t element_size(DType t) { return row_bytes(t, 1); }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// Parses one header entry; `data` is the data section. Throws with `where` as prefix.
TensorView parse_entry(const std::string& name, const json& entry, std::span<const uint8_t> data,
                       const std::string& where) {
  if (!entry.is_object()) throw Error(where + ": expected an object, got " + std::string(entry.type_name()));
  for (const auto& [key, value] : entry.items()) {
    (void)value;
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw Error(where + ": unexpected key \"" + key + "\"");
  }
  const auto dtype_it = entry.find("dtype"), shape_it = entry.find("shape"), offsets_it = entry.find("data_offsets");
  if (dtype_it == entry.end() || !dtype_it->is_string()) throw Error(where + ": missing or non-string dtype");
  if (shape_it == entry.end() || !shape_it->is_array()) throw Error(where + ": missing or non-list shape");
  if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2)
    throw Error(where + ": data_offsets must be a list of two integers");

  TensorView t;
  t.name = name;
  const std::string dtype = dtype_it->get<std::string>();
  const auto* found =
      std::find_if(std::begin(kSupported), std::end(kSupported), [&](const DTypeName& d) { return dtype == d.name; });
  if (found == std::end(kSupported))
    throw Error(where + ": dtype " + dtype.substr(0, 32) + " is not supported (only BF16, F16, F32)");
  t.dtype = found->dtype;

  if (shape_it->size() > kMaxRank) throw Error(where + ": shape has " + std::to_string(shape_it->size()) + " dims");
  for (const json& d : *shape_it) {
    if (!d.is_number_integer()) throw Error(where + ": shape entries must be integers, got " + json_preview(d));
    if (d.is_number_unsigned() ? d.get<uint64_t>() > kMaxElements : d.get<int64_t>() < 0)
      throw Error(where + ": shape dimension " + json_preview(d) + " is negative or absurd");
    t.shape.push_back(d.get<int64_t>());
  }
  const auto numel = checked_product(t.shape, kMaxElements);
  if (!numel) throw Error(where + ": shape " + shape_text(t.shape) + " has an absurd element count");

  uint64_t range[2];
  for (int i = 0; i < 2; ++i) {
    const json& v = (*offsets_it)[size_t(i)];
    if (!v.is_number_unsigned()) throw Error(where + ": data_offsets must be non-negative integers");
    range[i] = v.get<uint64_t>();
  }
  if (range[0] > range[1] || range[1] > data.size())
    throw Error(where + ": data_offsets [" + std::to_string(range[0]) + ", " + std::to_string(range[1]) +
                "] lie outside the " + std::to_string(data.size()) + "-byte data section");
  const uint64_t expected = *numel * element_size(t.dtype);  // <= 2^48 * 4: no overflow
  if (range[1] - range[0] != expected)
    throw Error(where + ": shape " + shape_text(t.shape) + " " + dtype + " needs " + std::to_string(expected) +
                " bytes but data_offsets span " + std::to_string(range[1] - range[0]));
  t.bytes = data.subspan(size_t(range[0]), size_t(expected));
  return t;
}

// Tensors may not share bytes: a hostile header could otherwise alias two weights.
void check_no_overlap(std::vector<TensorView> tensors, const std::string& source) {
  std::erase_if(tensors, [](const TensorView& t) { return t.bytes.empty(); });
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorView& a, const TensorView& b) { return a.bytes.data() < b.bytes.data(); });
  for (size_t i = 1; i < tensors.size(); ++i) {
    const TensorView& prev = tensors[i - 1];
    if (tensors[i].bytes.data() < prev.bytes.data() + prev.bytes.size())
      throw Error(source + ": tensors " + prev.name + " and " + tensors[i].name + " overlap in the data section");
  }
}

}  // namespace

std::vector<TensorView> parse_safetensors(std::span<const uint8_t> bytes, const std::string& source) {
  if (bytes.size() < 8)
    throw Error(source + ": " + std::to_string(bytes.size()) + " bytes is too small for a safetensors file");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | bytes[size_t(i)];
  if (header_len > bytes.size() - 8 || header_len > kMaxHeaderBytes)
    throw Error(source + ": header length " + std::to_string(header_len) + " does not fit the " +
                std::to_string(bytes.size()) + "-byte file");
  const std::string_view header_text(reinterpret_cast<const char*>(bytes.data() + 8), size_t(header_len));
  const json header = parse_json_strict(header_text, source);
  if (!header.is_object()) throw Error(source + ": the safetensors header must be a JSON object");

  const auto data = bytes.subspan(8 + size_t(header_len));
  std::vector<TensorView> tensors;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) throw Error(source + ": __metadata__ must be an object");
      continue;
    }
    if (name.empty()) throw Error(source + ": a tensor has an empty name");
    tensors.push_back(parse_entry(name, entry, data, source + ": tensor " + name));
  }
  check_no_overlap(tensors, source);
  return tensors;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : file_(path) {
  tensors_ = parse_safetensors(file_.bytes(), path);
}

// ---------------------------------------------------------------- checkpoint directory

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string single = (fs::path(dir) / "model.safetensors").string();
  const std::string index = (fs::path(dir) / "model.safetensors.index.json").string();
  if (fs::exists(single)) {
    add_file(std::make_unique<SafetensorsFile>(single));
  } else if (fs::exists(index)) {
    load_index(dir, index);
  } else {
    throw Error(dir + ": no model.safetensors or model.safetensors.index.json");
  }
}

uint64_t SafetensorsCheckpoint::data_bytes() const {
  uint64_t total = 0;
  for (const auto& [name, entry] : tensors_) total += entry.view.bytes.size();  // no overlaps: <= file sizes
  return total;
}

void SafetensorsCheckpoint::add_file(std::unique_ptr<SafetensorsFile> file) {
  for (const TensorView& t : file->tensors()) {
    auto [it, inserted] = tensors_.emplace(t.name, Entry{t, file->path()});
    if (!inserted) throw Error("tensor " + t.name + " appears in both " + it->second.file + " and " + file->path());
  }
  files_.push_back(std::move(file));
}

void SafetensorsCheckpoint::load_index(const std::string& dir, const std::string& index_path) {
  const json index = parse_json_strict(read_text_file(index_path), index_path);
  const auto map_it = index.is_object() ? index.find("weight_map") : index.end();
  if (map_it == index.end() || !map_it->is_object())
    throw Error(index_path + ": expected an object with a \"weight_map\" object");
  std::map<std::string, std::string> shard_of;  // tensor -> shard file name
  std::set<std::string> shards;
  for (const auto& [name, shard] : map_it->items()) {
    if (!shard.is_string()) throw Error(index_path + ": weight_map entry for " + name + " must be a file name");
    const std::string file = shard.get<std::string>();
    // Shards are plain names inside the checkpoint directory, never paths out of it.
    if (file.empty() || file.find('/') != std::string::npos || file.find('\\') != std::string::npos || file == "." ||
        file == "..")
      throw Error(index_path + ": shard name \"" + file.substr(0, 80) + "\" for " + name + " is not a plain file name");
    shard_of[name] = file;
    shards.insert(file);
  }
  for (const std::string& shard : shards) {
    const std::string path = (std::filesystem::path(dir) / shard).string();
    auto file = std::make_unique<SafetensorsFile>(path);
    for (const TensorView& t : file->tensors()) {
      auto it = shard_of.find(t.name);
      if (it == shard_of.end() || it->second != shard)
        throw Error(path + ": tensor " + t.name + " is not listed for this shard in " + index_path);
    }
    add_file(std::move(file));
  }
  for (const auto& [name, shard] : shard_of)
    if (!tensors_.count(name)) throw Error(index_path + ": tensor " + name + " is not in its shard " + shard);
}

// ---------------------------------------------------------------- writing

std::vector<uint8_t> serialize_safetensors(const std::vector<SafetensorsEntry>& entries) {
  json header = json::object();
  uint64_t offset = 0;
  for (const SafetensorsEntry& e : entries) {
    const auto numel = checked_product(e.shape, kMaxElements);
    if (!numel || *numel * element_size(e.dtype) != e.bytes.size())
      throw Error("safetensors writer: tensor " + e.name + " has " + std::to_string(e.bytes.size()) +
                  " bytes, which does not match shape " + shape_text(e.shape));
    if (header.contains(e.name)) throw Error("safetensors writer: tensor " + e.name + " given twice");
    header[e.name] = {{"dtype", safetensors_dtype_name(e.dtype)},
                      {"shape", e.shape},
                      {"data_offsets", {offset, offset + e.bytes.size()}}};
    offset += e.bytes.size();
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  std::vector<uint8_t> out(8 + text.size());
  for (int i = 0; i < 8; ++i) out[size_t(i)] = uint8_t(uint64_t(text.size()) >> (8 * i));
  std::memcpy(out.data() + 8, text.data(), text.size());
  out.reserve(out.size() + offset);
  for (const SafetensorsEntry& e : entries) out.insert(out.end(), e.bytes.begin(), e.bytes.end());
  return out;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsEntry>& entries) {
  write_file_bytes(path, serialize_safetensors(entries));
}

}  // namespace megrez
