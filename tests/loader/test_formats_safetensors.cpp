// Safetensors parsing (loader/formats/safetensors.cpp) and the mapped-file wrapper: round trips,
// sharded checkpoints, and hostile headers that must fail with the file named.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "loader/formats/mapped_file.h"
#include "loader/formats/safetensors.h"
#include "loader/quant/quant.h"
#include "loader/synthetic/synthetic.h"
#include "test_formats_util.h"

using namespace megrez;
using formats_test::Bytes;
using formats_test::error_of;
using formats_test::TempDir;

namespace {

// A file with a hand-written header and `data_bytes` data bytes (0, 1, 2, ...).
std::vector<uint8_t> file_with_header(const std::string& header, size_t data_bytes) {
  Bytes b;
  b.u64(header.size()).raw(header);
  for (size_t i = 0; i < data_bytes; ++i) b.u8(uint8_t(i));
  return b.v;
}

std::string parse_error(const std::string& header, size_t data_bytes) {
  const auto bytes = file_with_header(header, data_bytes);
  return error_of([&] { parse_safetensors(bytes, "hostile.safetensors"); });
}

}  // namespace

TEST_CASE("MappedFile: contents, empty files, and clear errors") {
  TempDir dir;
  formats_test::write_text(dir / "a.bin", "hello");
  MappedFile f(dir / "a.bin");
  CHECK(f.size() == 5);
  CHECK(std::string(reinterpret_cast<const char*>(f.data()), 5) == "hello");
  MappedFile moved = std::move(f);
  CHECK(moved.size() == 5);
  CHECK(f.size() == 0);

  formats_test::write_text(dir / "empty.bin", "");
  MappedFile empty(dir / "empty.bin");
  CHECK(empty.size() == 0);
  CHECK(empty.bytes().empty());

  CHECK(error_of([&] { MappedFile m(dir / "missing.bin"); }).find("missing.bin: no such file") != std::string::npos);
  CHECK(error_of([&] { MappedFile m(dir.path()); }).find("is a directory") != std::string::npos);
  if (geteuid() != 0) {  // root reads anything, so permissions cannot be tested as root
    formats_test::write_text(dir / "secret.bin", "x");
    ::chmod((dir / "secret.bin").c_str(), 0);
    CHECK(error_of([&] { MappedFile m(dir / "secret.bin"); }).find("permission denied") != std::string::npos);
  }
}

TEST_CASE("safetensors: serialize then parse gives the same tensors") {
  const std::vector<float> a = {1.0f, -2.0f, 3.5f, 0.25f, 8.0f, -0.5f};
  const std::vector<uint8_t> a_bytes = quantize(DType::F32, a, 3);
  const std::vector<uint8_t> b_bytes = quantize(DType::BF16, a, 2);
  const std::vector<uint8_t> c_bytes = quantize(DType::F16, std::vector<float>{1.0f}, 1);
  const std::vector<uint8_t> file = serialize_safetensors({{"a", DType::F32, {2, 3}, a_bytes},
                                                           {"b.weight", DType::BF16, {3, 2}, b_bytes},
                                                           {"scalar", DType::F16, {}, c_bytes},
                                                           {"empty", DType::F32, {0, 4}, {}}});
  uint64_t header_len = 0;
  std::memcpy(&header_len, file.data(), 8);
  CHECK(header_len % 8 == 0);
  const std::vector<TensorView> t = parse_safetensors(file, "x.safetensors");
  REQUIRE(t.size() == 4);
  std::map<std::string, TensorView> by_name;
  for (const TensorView& v : t) by_name[v.name] = v;
  CHECK(by_name["a"].dtype == DType::F32);
  CHECK(by_name["a"].shape == std::vector<int64_t>{2, 3});
  CHECK(dequantize(by_name["a"]) == a);
  CHECK(by_name["b.weight"].dtype == DType::BF16);
  CHECK(by_name["b.weight"].shape == std::vector<int64_t>{3, 2});
  CHECK(std::equal(b_bytes.begin(), b_bytes.end(), by_name["b.weight"].bytes.begin()));
  CHECK(by_name["scalar"].shape.empty());
  CHECK(by_name["scalar"].bytes.size() == 2);
  CHECK(by_name["empty"].bytes.empty());
  CHECK(serialize_safetensors({{"a", DType::F32, {2, 3}, a_bytes}}) ==
        serialize_safetensors({{"a", DType::F32, {2, 3}, a_bytes}}));
}

TEST_CASE("safetensors: a file truncated anywhere is rejected with its name") {
  const std::vector<float> v(12, 1.5f);
  const std::vector<uint8_t> bytes = quantize(DType::F32, v, 4);
  const std::vector<uint8_t> file = serialize_safetensors({{"w", DType::F32, {3, 4}, bytes}});
  for (size_t n = 0; n < file.size(); ++n) {
    CAPTURE(n);
    const std::span<const uint8_t> prefix(file.data(), n);
    CHECK(error_of([&] { parse_safetensors(prefix, "cut.safetensors"); }).rfind("cut.safetensors: ", 0) == 0);
  }
  CHECK(parse_safetensors(file, "whole").size() == 1);
}

TEST_CASE("safetensors: each malformed header names the problem") {
  struct Case {
    std::string header;
    size_t data;
    const char* expect;
  };
  const Case cases[] = {
      {R"({"w":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", 16, "dtype I64 is not supported"},
      {R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2, "dtype F8_E4M3 is not supported"},
      {R"({"w":{"dtype":"F32","shape":[1073741824,1073741824],"data_offsets":[0,16]}})", 16, "absurd element count"},
      {R"({"w":{"dtype":"F32","shape":[1152921504606846976],"data_offsets":[0,16]}})", 16, "negative or absurd"},
      {R"({"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}})", 16, "negative or absurd"},
      {R"({"w":{"dtype":"F32","shape":["4"],"data_offsets":[0,16]}})", 16, "shape entries must be integers"},
      {R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4, "dims"},
      {R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}})", 16, "lie outside"},
      {R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,1000]}})", 16, "lie outside the 16-byte data section"},
      {R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}})", 16, "needs 16 bytes but data_offsets span 12"},
      {R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[-4,12]}})", 16, "non-negative integers"},
      {R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0]}})", 16, "list of two integers"},
      {R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
       R"("w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})",
       16, "\"w\" appears twice"},
      {R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},)"
       R"("b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
       24, "tensors a and b overlap"},
      {R"({"w":{"shape":[4],"data_offsets":[0,16]}})", 16, "missing or non-string dtype"},
      {R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16],"extra":1}})", 16, "unexpected key \"extra\""},
      {R"({"w":[1,2]})", 0, "expected an object"},
      {R"({"__metadata__":[1]})", 0, "__metadata__ must be an object"},
      {R"({"":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 16, "empty name"},
      {R"([1,2,3])", 0, "must be a JSON object"},
      {R"({"w": )", 0, "not valid JSON"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.header);
    const std::string msg = parse_error(c.header, c.data);
    CHECK(msg.find(c.expect) != std::string::npos);
    CHECK(msg.rfind("hostile.safetensors: ", 0) == 0);
  }
  // The metadata entry is allowed and ignored.
  const auto ok =
      file_with_header(R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 16);
  CHECK(parse_safetensors(ok, "ok").size() == 1);
}

TEST_CASE("safetensors: a header length that does not fit the file") {
  Bytes b;
  b.u64(100).raw("{}");
  CHECK(error_of([&] { parse_safetensors(b.v, "f.safetensors"); }).find("header length 100 does not fit") !=
        std::string::npos);
  Bytes huge;
  huge.u64(~uint64_t(0)).raw("{}");
  CHECK(error_of([&] { parse_safetensors(huge.v, "f.safetensors"); }).find("does not fit") != std::string::npos);
  CHECK(error_of([&] {
          parse_safetensors(std::vector<uint8_t>{1, 2, 3}, "f.safetensors");
        }).find("too small") != std::string::npos);
}

TEST_CASE("safetensors checkpoint: shards through the index, and index errors") {
  TempDir dir;
  SyntheticOptions opt;
  opt.shards = 3;
  write_synthetic_hf(dir.path(), synthetic_config(), opt);
  CHECK(std::filesystem::exists(dir / "model-00002-of-00003.safetensors"));
  SafetensorsCheckpoint ck(dir.path());
  CHECK(ck.file_count() == 3);
  const auto expected = synthetic_tensors(synthetic_config(), opt.seed);
  CHECK(ck.tensors().size() == expected.size());
  for (const auto& t : expected) {
    auto it = ck.tensors().find(t.name);
    REQUIRE(it != ck.tensors().end());
    CHECK(dequantize(it->second.view) == t.values);
  }

  const std::string index_path = dir / "model.safetensors.index.json";
  auto index = nlohmann::json::parse(formats_test::read_bytes(index_path));
  auto with_index = [&](const nlohmann::json& j) {
    formats_test::write_text(index_path, j.dump());
    return error_of([&] { SafetensorsCheckpoint c(dir.path()); });
  };
  auto moved = index;
  moved["weight_map"]["model.norm.weight"] = "model-00003-of-00003.safetensors";
  const std::string first_shard = index["weight_map"]["model.norm.weight"];
  CHECK(with_index(moved).find("is not listed for this shard") != std::string::npos);
  auto escaping = index;
  escaping["weight_map"]["model.norm.weight"] = "../model-00001-of-00003.safetensors";
  CHECK(with_index(escaping).find("is not a plain file name") != std::string::npos);
  auto phantom = index;
  phantom["weight_map"]["ghost.weight"] = first_shard;
  CHECK(with_index(phantom).find("tensor ghost.weight is not in its shard") != std::string::npos);
  auto missing_file = index;
  missing_file["weight_map"]["ghost.weight"] = "model-00009-of-00009.safetensors";
  CHECK(with_index(missing_file).find("model-00009-of-00009.safetensors: no such file") != std::string::npos);
  CHECK(with_index(nlohmann::json::array()).find("weight_map") != std::string::npos);

  std::filesystem::remove(index_path);
  CHECK(error_of([&] { SafetensorsCheckpoint c(dir.path()); }).find("no model.safetensors") != std::string::npos);
}
