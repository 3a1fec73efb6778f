// GGUF v3 reader/writer (loader/gguf_*.cpp) and the metadata mapping (gguf_metadata.cpp):
// exact bytes against a hand-written layout, every value type, and hostile files.
#include <doctest/doctest.h>

#include <chrono>
#include <cmath>
#include <functional>

#include "loader/formats/gguf.h"
#include "loader/formats/gguf_metadata.h"
#include "loader/quant/quant.h"
#include "loader/synthetic/synthetic.h"
#include "test_formats_util.h"

using namespace megrez;
using formats_test::Bytes;
using formats_test::error_of;

namespace {

Bytes header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
  Bytes b;
  b.raw("GGUF").u32(version).u64(tensors).u64(kvs);
  return b;
}

std::string gguf_error(const Bytes& b) {
  return error_of([&] { parse_gguf(b.v, "bad.gguf"); });
}

// A one-tensor file built by hand: f32 tensor "t" with ne = {ne0, ne1}, given type and offset.
Bytes one_tensor(uint32_t type, std::vector<uint64_t> ne, uint64_t offset, size_t data_bytes) {
  Bytes b = header(1, 0);
  b.str("t").u32(uint32_t(ne.size()));
  for (uint64_t n : ne) b.u64(n);
  b.u32(type).u64(offset).pad_to(32).zeros(data_bytes);
  return b;
}

}  // namespace

TEST_CASE("GGUF writer: exact bytes of a small file, and the reader reads them back") {
  GgufWriter w;
  w.set("k", GgufValue::u32(7));
  const std::vector<float> values = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  const std::vector<uint8_t> data = quantize(DType::F32, values, 3);
  w.add_tensor("t", DType::F32, {2, 3}, data);  // HF [2, 3] -> ne {3, 2}
  Bytes expected = header(1, 1);
  expected.str("k").u32(4).u32(7);
  expected.str("t").u32(2).u64(3).u64(2).u32(0).u64(0).pad_to(32);
  for (float v : values) expected.f32(v);
  expected.pad_to(32);
  const std::vector<uint8_t> bytes = w.to_bytes();
  CHECK(bytes == expected.v);
  CHECK(bytes.size() == 128);

  const GgufContents g = parse_gguf(bytes, "small.gguf");
  CHECK(g.version == 3);
  CHECK(g.alignment == 32);
  CHECK(g.data_offset == 96);
  REQUIRE(g.find("k"));
  CHECK(std::get<uint64_t>(g.find("k")->data) == 7);
  const GgufTensorInfo* t = g.find_tensor("t");
  REQUIRE(t);
  CHECK(t->ne == std::vector<int64_t>{3, 2});
  CHECK(t->view().shape == std::vector<int64_t>{2, 3});
  CHECK(dequantize(t->view()) == values);
  CHECK(w.to_bytes() == bytes);  // deterministic
}

TEST_CASE("GGUF: every metadata value type round-trips, nested arrays included") {
  GgufWriter w;
  w.set("u8", {GgufType::U8, uint64_t(200)});
  w.set("i8", {GgufType::I8, int64_t(-5)});
  w.set("u16", {GgufType::U16, uint64_t(65535)});
  w.set("i16", {GgufType::I16, int64_t(-32768)});
  w.set("u32", GgufValue::u32(4000000000u));
  w.set("i32", GgufValue::i32(-2000000000));
  w.set("u64", {GgufType::U64, (uint64_t(1) << 63) + 1});
  w.set("i64", {GgufType::I64, -(int64_t(1) << 40)});
  w.set("f32", GgufValue::f32(0.1f));
  w.set("f64", GgufValue::f64(M_PI));
  w.set("bool", GgufValue::boolean(true));
  w.set("string", GgufValue::string(std::string("h\0llo", 5)));
  w.set("empty", GgufValue::string(""));
  const std::vector<int32_t> ints = {1, -2, 3};
  const std::vector<float> floats = {0.5f, -1.5f};
  w.set("a.i32", GgufValue::array(GgufArray::of_i32(ints)));
  w.set("a.f32", GgufValue::array(GgufArray::of_f32(floats)));
  w.set("a.u8", GgufValue::array(GgufArray::of_u8(std::vector<uint8_t>{0, 255, 7})));
  w.set("a.str", GgufValue::array(GgufArray::of_strings({"x", "", "yz"})));
  GgufArray bools;
  bools.elem = GgufType::BOOL;
  bools.packed = {1, 0, 1};
  w.set("a.bool", GgufValue::array(bools));
  GgufArray nested;
  nested.elem = GgufType::ARRAY;
  nested.arrays = {GgufArray::of_strings({"in"}), GgufArray::of_i32(ints)};
  w.set("a.nested", GgufValue::array(nested));
  w.set("a.none", GgufValue::array(GgufArray::of_f32({})));

  const std::vector<uint8_t> bytes = w.to_bytes();
  const GgufContents g = parse_gguf(bytes, "types.gguf");
  REQUIRE(g.metadata.size() == 20);
  CHECK(g.metadata[0].first == "u8");  // file order kept
  auto u = [&](const char* k) { return std::get<uint64_t>(g.find(k)->data); };
  auto i = [&](const char* k) { return std::get<int64_t>(g.find(k)->data); };
  auto f = [&](const char* k) { return std::get<double>(g.find(k)->data); };
  CHECK(u("u8") == 200);
  CHECK(i("i8") == -5);
  CHECK(u("u16") == 65535);
  CHECK(i("i16") == -32768);
  CHECK(u("u32") == 4000000000u);
  CHECK(i("i32") == -2000000000);
  CHECK(u("u64") == (uint64_t(1) << 63) + 1);
  CHECK(i("i64") == -(int64_t(1) << 40));
  CHECK(f("f32") == double(0.1f));
  CHECK(f("f64") == M_PI);
  CHECK(u("bool") == 1);
  CHECK(g.find("bool")->type == GgufType::BOOL);
  CHECK(std::get<std::string>(g.find("string")->data) == std::string("h\0llo", 5));
  CHECK(std::get<std::string>(g.find("empty")->data).empty());
  const auto& ai = std::get<GgufArray>(g.find("a.i32")->data);
  CHECK(ai.elem == GgufType::I32);
  CHECK(ai.size() == 3);
  CHECK(ai.packed == GgufArray::of_i32(ints).packed);
  CHECK(std::get<GgufArray>(g.find("a.f32")->data).packed == GgufArray::of_f32(floats).packed);
  CHECK(std::get<GgufArray>(g.find("a.u8")->data).packed == std::vector<uint8_t>{0, 255, 7});
  CHECK(std::get<GgufArray>(g.find("a.str")->data).strings == std::vector<std::string>{"x", "", "yz"});
  CHECK(std::get<GgufArray>(g.find("a.bool")->data).packed == std::vector<uint8_t>{1, 0, 1});
  const auto& n = std::get<GgufArray>(g.find("a.nested")->data);
  REQUIRE(n.arrays.size() == 2);
  CHECK(n.arrays[0].strings == std::vector<std::string>{"in"});
  CHECK(n.arrays[1].packed == GgufArray::of_i32(ints).packed);
  CHECK(std::get<GgufArray>(g.find("a.none")->data).size() == 0);
  // And writing what was read gives the same bytes.
  GgufWriter again;
  for (const auto& [k, v] : g.metadata) again.set(k, v);
  CHECK(again.to_bytes() == bytes);
}

TEST_CASE("GGUF: alignment other than 32 is written as general.alignment and honoured") {
  GgufWriter w(64);
  const std::vector<uint8_t> a(12, 1), b(64, 2);
  w.add_tensor("a", DType::F32, {3}, a);
  w.add_tensor("b", DType::F16, {2, 16}, b);
  const auto bytes = w.to_bytes();
  const GgufContents g = parse_gguf(bytes, "aligned.gguf");
  CHECK(g.alignment == 64);
  CHECK(g.data_offset % 64 == 0);
  CHECK(g.find_tensor("b")->offset == 64);
  CHECK(g.find_tensor("b")->ne == std::vector<int64_t>{16, 2});
  CHECK(std::all_of(g.find_tensor("b")->bytes.begin(), g.find_tensor("b")->bytes.end(),
                    [](uint8_t x) { return x == 2; }));
  CHECK_THROWS_AS(GgufWriter(48), Error);
}

TEST_CASE("GGUF: a file truncated anywhere before its last tensor's end is rejected") {
  GgufWriter w;
  w.set("general.name", GgufValue::string("cut"));
  w.set("list", GgufValue::array(GgufArray::of_strings({"a", "bc"})));
  const std::vector<uint8_t> data(64 * 34 / 32, 3);
  w.add_tensor("q", DType::Q8_0, {1, 64}, data);
  const auto bytes = w.to_bytes();
  const GgufContents whole = parse_gguf(bytes, "whole.gguf");
  const size_t end = size_t(whole.data_offset + whole.find_tensor("q")->offset + data.size());
  for (size_t n = 0; n < end; ++n) {
    CAPTURE(n);
    const std::span<const uint8_t> prefix(bytes.data(), n);
    CHECK(error_of([&] { parse_gguf(prefix, "cut.gguf"); }).rfind("cut.gguf: ", 0) == 0);
  }
  CHECK_NOTHROW(parse_gguf(std::span(bytes.data(), end), "exact.gguf"));
}

TEST_CASE("GGUF: hostile headers fail before allocating, with the problem named") {
  const uint64_t huge = uint64_t(1) << 60;
  // Header-only cases get 64 spare bytes so that the count checks pass and the field
  // under test is what fails.
  struct Case {
    Bytes bytes;
    const char* expect;
  };
  Bytes magic;
  magic.raw("GGUX").u32(3).u64(0).u64(0);
  std::vector<Case> cases = {
      {magic, "not a GGUF file (bad magic)"},
      {header(0, 0, 2).zeros(64), "GGUF version 2 is not supported"},
      {header(0, 0, 1).zeros(64), "GGUF version 1 is not supported"},
      {header(huge, 0).zeros(64), "tensor info count 1152921504606846976 cannot fit"},
      {header(0, huge).zeros(64), "metadata entry count 1152921504606846976 cannot fit"},
      {header(0, 1).u64(huge).zeros(64), "metadata key 0 is 1152921504606846976 bytes long"},
      {header(0, 1).str("k").u32(8).u64(huge).zeros(64), "value of key k is 1152921504606846976 bytes long"},
      {header(0, 1).str("k").u32(9).u32(0).u64(huge).zeros(64),
       "key k: array element count 1152921504606846976 cannot fit"},
      {header(0, 1).str("k").u32(9).u32(8).u64(huge).zeros(64), "key k: array element count"},
      {header(0, 1).str("k").u32(9).u32(9).u64(huge).zeros(64), "key k: array element count"},
      {header(0, 1).str("k").u32(13).u32(0).zeros(64), "invalid value type 13"},
      {header(0, 1).str("k").u32(9).u32(99).u64(1).zeros(64), "invalid array element type 99"},
      {header(0, 1).str("k").u32(7).u8(2).zeros(64), "bool value 2 is neither 0 nor 1"},
      {header(0, 1).str("k").u32(9).u32(7).u64(2).u8(1).u8(5).zeros(64), "bool array element 5"},
      {header(0, 1).str("").u32(4).u32(1).zeros(64), "metadata key 0 is empty"},
      {header(0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).zeros(64), "metadata key k appears twice"},
      {header(0, 1).str("general.alignment").u32(4).u32(0).zeros(64), "general.alignment 0 is not a power of two"},
      {header(0, 1).str("general.alignment").u32(4).u32(48).zeros(64), "general.alignment 48 is not a power of two"},
      {header(0, 1).str("general.alignment").u32(10).u64(32).zeros(64), "general.alignment must be u32, got u64"},
      {header(1, 0).str(std::string(64, 'n')).zeros(64), "name of tensor 0 is 64 bytes long, more than 63"},
      {header(1, 0).str("").u32(1).zeros(64), "tensor 0 has an empty name"},
      {header(1, 0).str("t").u32(0).zeros(64), "tensor t: n_dims 0 is not in 1..4"},
      {header(1, 0).str("t").u32(5).zeros(64), "tensor t: n_dims 5 is not in 1..4"},
      {header(1, 0).str("t").u32(2).u64(4).u64(0).zeros(64), "ne[1] = 0 is zero or absurd"},
      {header(1, 0).str("t").u32(1).u64(huge).zeros(64), "ne[0] = 1152921504606846976 is zero or absurd"},
      {header(1, 0).str("t").u32(2).u64(uint64_t(1) << 40).u64(uint64_t(1) << 40).zeros(64), "element count overflows"},
      {one_tensor(12, {256}, 0, 256), "ggml type 12 (q4_K) is not supported"},
      {one_tensor(1000, {256}, 0, 256), "ggml type 1000 (unknown) is not supported"},
      {one_tensor(8, {48}, 0, 64), "ne[0] = 48 is not a multiple of the q8_0 block size 32"},
      {one_tensor(0, {4}, 4, 64), "offset 4 is not a multiple of the alignment 32"},
      {one_tensor(0, {4}, 32, 32), "16 bytes at offset 32 run past the 32-byte data section"},
      {one_tensor(0, {4}, huge, 32), "run past"},
  };
  Bytes overlap = header(2, 0);
  overlap.str("a").u32(1).u64(16).u32(0).u64(0).str("b").u32(1).u64(8).u32(0).u64(32).pad_to(32).zeros(64);
  cases.push_back({overlap, "tensors a and b overlap"});
  Bytes twice = header(2, 0);
  twice.str("a").u32(1).u64(8).u32(0).u64(0).str("a").u32(1).u64(8).u32(0).u64(32).pad_to(32).zeros(64);
  cases.push_back({twice, "tensor a appears twice"});
  Bytes deep = header(0, 1);
  deep.str("k").u32(9);
  for (int d = 0; d < 6; ++d) deep.u32(9).u64(1);
  deep.u32(4).u64(0);
  cases.push_back({deep, "nested more than"});
  for (const Case& c : cases) {
    CAPTURE(c.expect);
    const std::string msg = gguf_error(c.bytes);
    CHECK(msg.find(c.expect) != std::string::npos);
    CHECK(msg.rfind("bad.gguf: ", 0) == 0);
  }
}

TEST_CASE("GGUF metadata: ModelConfig round-trips exactly, with llama.cpp's key names") {
  ModelConfig c = synthetic_config();
  c.rope_theta = 5e6;     // exact in f32: written as f32
  c.rms_norm_eps = 1e-5;  // not exact in f32: written as f64
  c.routed_scaling_factor = 2.5;
  c.norm_topk_prob = false;
  c.tie_word_embeddings = true;
  c.bos_token_id = 3;
  GgufWriter w;
  add_config_metadata(w, c);
  const GgufContents g = parse_gguf(w.to_bytes(), "cfg.gguf");
  formats_test::check_same_config(config_from_gguf(g, "cfg.gguf"), c);
  const char* keys[] = {"general.architecture",
                        "megrez-moe.context_length",
                        "megrez-moe.embedding_length",
                        "megrez-moe.block_count",
                        "megrez-moe.feed_forward_length",
                        "megrez-moe.expert_feed_forward_length",
                        "megrez-moe.attention.head_count",
                        "megrez-moe.attention.head_count_kv",
                        "megrez-moe.attention.key_length",
                        "megrez-moe.attention.value_length",
                        "megrez-moe.rope.dimension_count",
                        "megrez-moe.rope.freq_base",
                        "megrez-moe.attention.layer_norm_rms_epsilon",
                        "megrez-moe.expert_count",
                        "megrez-moe.expert_used_count",
                        "megrez-moe.expert_shared_count",
                        "megrez-moe.expert_group_count",
                        "megrez-moe.expert_group_used_count",
                        "megrez-moe.expert_weights_norm",
                        "megrez-moe.expert_weights_scale",
                        "megrez-moe.expert_gating_func",
                        "megrez-moe.leading_dense_block_count",
                        "megrez-moe.vocab_size",
                        "megrez-moe.expert_shared_frequency",
                        "megrez-moe.tie_word_embeddings",
                        "megrez-moe.pre_gate",
                        "megrez-moe.bos_token_id",
                        "megrez-moe.eos_token_id"};
  CHECK(g.metadata.size() == std::size(keys));
  for (const char* k : keys) CHECK_MESSAGE(g.find(k), k);
  CHECK(std::get<std::string>(g.find("general.architecture")->data) == "megrez-moe");
  CHECK(g.find("megrez-moe.rope.freq_base")->type == GgufType::F32);
  CHECK(g.find("megrez-moe.attention.layer_norm_rms_epsilon")->type == GgufType::F64);
  CHECK(std::get<uint64_t>(g.find("megrez-moe.expert_gating_func")->data) == 2);
  CHECK(std::get<uint64_t>(g.find("megrez-moe.block_count")->data) == 5);
}

TEST_CASE("GGUF metadata: bad or missing config keys") {
  auto config_error = [](const std::function<void(GgufWriter&)>& fill) {
    GgufWriter w;
    fill(w);
    const auto bytes = w.to_bytes();
    const GgufContents g = parse_gguf(bytes, "m.gguf");
    return error_of([&] { config_from_gguf(g, "m.gguf"); });
  };
  // Copy every key of a valid config but one changed or left out.
  auto with = [&](const std::string& key, std::optional<GgufValue> value) {
    return config_error([&](GgufWriter& w) {
      GgufWriter full;
      add_config_metadata(full, synthetic_config());
      const GgufContents g = parse_gguf(full.to_bytes(), "full");
      for (const auto& [k, v] : g.metadata) {
        if (k != key)
          w.set(k, v);
        else if (value)
          w.set(k, *value);
      }
    });
  };
  CHECK(with("megrez-moe.expert_count", std::nullopt).find("missing metadata key megrez-moe.expert_count") !=
        std::string::npos);
  CHECK(with("megrez-moe.block_count", GgufValue::string("5"))
            .find("megrez-moe.block_count must be an integer, got string") != std::string::npos);
  CHECK(with("megrez-moe.rope.freq_base", GgufValue::u32(10000)).find("must be f32 or f64, got u32") !=
        std::string::npos);
  CHECK(with("megrez-moe.expert_weights_norm", GgufValue::u32(1)).find("must be bool") != std::string::npos);
  CHECK(with("general.architecture", GgufValue::string("llama")).find("\"llama\", expected \"megrez-moe\"") !=
        std::string::npos);
  CHECK(with("megrez-moe.expert_gating_func", GgufValue::u32(1)).find("scoring_func \"softmax\" is not supported") !=
        std::string::npos);
  CHECK(with("megrez-moe.expert_gating_func", GgufValue::u32(7)).find("neither 1 (softmax) nor 2") !=
        std::string::npos);
  CHECK(with("megrez-moe.expert_used_count", GgufValue::u32(100)).find("num_experts_per_tok = 100") !=
        std::string::npos);
  CHECK(with("megrez-moe.attention.head_count_kv", GgufValue{GgufType::I64, int64_t(-2)})
            .find("num_key_value_heads = -2") != std::string::npos);
  CHECK(with("megrez-moe.rope.dimension_count", GgufValue::u32(8)).find("partial RoPE") != std::string::npos);
  CHECK(with("megrez-moe.block_count", GgufValue{GgufType::U64, ~uint64_t(0)}).find("is absurd") != std::string::npos);
}

TEST_CASE("GGUF metadata: TokenizerData round-trips, SentencePiece bytes included") {
  TokenizerData t;
  t.model = "llama";
  t.pre = "default";
  t.tokens = {"<unk>", "<s>", "</s>", "\xe2\x96\x81the", "a"};
  t.scores = {0.0f, 0.0f, 0.0f, -1.5f, -2.25f};
  t.token_types = {2, 3, 3, 1, 1};
  t.merges = {"a b", "ab c"};
  t.spm_model = std::string("\x0a\x05\x00\xff proto", 11);
  t.bos_id = 1;
  t.eos_id = 2;
  t.unk_id = 0;
  t.pad_id = -1;
  t.chat_template = "{{ messages }}";
  GgufWriter w;
  add_tokenizer_metadata(w, t);
  const GgufContents g = parse_gguf(w.to_bytes(), "tok.gguf");
  CHECK(!g.find("tokenizer.ggml.padding_token_id"));
  CHECK(g.find("tokenizer.ggml.spm_model")->type == GgufType::ARRAY);
  const auto back = tokenizer_data_from_gguf(g, "tok.gguf");
  REQUIRE(back);
  CHECK(back->model == t.model);
  CHECK(back->pre == t.pre);
  CHECK(back->tokens == t.tokens);
  CHECK(back->scores == t.scores);
  CHECK(back->token_types == t.token_types);
  CHECK(back->merges == t.merges);
  CHECK(back->spm_model == t.spm_model);
  CHECK(back->bos_id == 1);
  CHECK(back->eos_id == 2);
  CHECK(back->unk_id == 0);
  CHECK(back->pad_id == -1);
  CHECK(back->chat_template == t.chat_template);

  CHECK(!tokenizer_data_from_gguf(parse_gguf(GgufWriter().to_bytes(), "none"), "none"));
  auto tok_error = [&](const std::string& key, GgufValue v) {
    GgufWriter bad;
    for (const auto& [k, value] : g.metadata)
      if (k != key) bad.set(k, value);
    bad.set(key, std::move(v));
    const GgufContents gb = parse_gguf(bad.to_bytes(), "tok.gguf");
    return error_of([&] { tokenizer_data_from_gguf(gb, "tok.gguf"); });
  };
  CHECK(tok_error("tokenizer.ggml.scores", GgufValue::array(GgufArray::of_f32(std::vector<float>{1.0f})))
            .find("scores has 1 entries for 5 tokens") != std::string::npos);
  CHECK(tok_error("tokenizer.ggml.token_type", GgufValue::array(GgufArray::of_f32(t.scores)))
            .find("token_type must be an i32 array, got array") != std::string::npos);
  CHECK(tok_error("tokenizer.ggml.eos_token_id", GgufValue::u32(5)).find("eos_token_id = 5 is not a token id") !=
        std::string::npos);
  CHECK(tok_error("tokenizer.ggml.tokens", GgufValue::string("x")).find("tokens must be a string array") !=
        std::string::npos);
}

TEST_CASE("GGUF: metadata arrays of millions of elements under a 64 KiB key read in linear time") {
  const std::string key(65535, 'k');
  const uint64_t n = 1'000'000;
  Bytes strings = header(0, 1);
  strings.str(key).u32(9).u32(8).u64(n);  // an array of n empty strings: 8 bytes each
  for (uint64_t i = 0; i < n; ++i) strings.u64(0);
  Bytes arrays = header(0, 1);
  arrays.str(key).u32(9).u32(9).u64(n);  // an array of n empty u8 arrays: 12 bytes each
  for (uint64_t i = 0; i < n; ++i) arrays.u32(0).u64(0);
  for (const Bytes* file : {&strings, &arrays}) {
    const auto start = std::chrono::steady_clock::now();
    const GgufContents contents = parse_gguf(file->v, "many.gguf");
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(contents.metadata.size() == 1);
    // Per-element message strings made this 10^6 x 64 KiB = 65 GB of copying (minutes).
    CHECK(seconds < 5.0);
  }
  // A bad element deep inside still names the key.
  Bytes bad = header(0, 1);
  bad.str("k").u32(9).u32(9).u64(3).u32(0).u64(0).u32(0).u64(0).u32(77).u64(0);
  CHECK(gguf_error(bad).find("key k: invalid array element type 77") != std::string::npos);
}
