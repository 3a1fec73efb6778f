// Model::open on Hugging Face directories and GGUF files (loader/formats/hf_model.cpp,
// gguf_model.cpp), the GGUF export behind megrez-convert, and the synthetic writers.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "loader/formats/gguf.h"
#include "loader/formats/gguf_export.h"
#include "loader/formats/gguf_metadata.h"
#include "loader/formats/model.h"
#include "loader/formats/safetensors.h"
#include "loader/formats/weight_layout.h"
#include "loader/quant/quant.h"
#include "loader/synthetic/synthetic.h"
#include "test_formats_util.h"

using namespace megrez;
using formats_test::error_of;
using formats_test::TempDir;

namespace {

// Every weight of `m` by its HF name (experts included), dequantized.
std::map<std::string, std::vector<float>> values_by_hf_name(const Model& m) {
  ModelWeights w = m.weights();
  std::map<std::string, std::vector<float>> out;
  for (const WeightSlot& s : weight_slots(m.config(), w)) out[s.hf_name] = dequantize(*s.target);
  return out;
}

std::map<std::string, WeightSlot> slots_by_hf_name(const Model& m, ModelWeights& w) {
  w = m.weights();
  std::map<std::string, WeightSlot> out;
  for (const WeightSlot& s : weight_slots(m.config(), w)) out[s.hf_name] = s;
  return out;
}

std::vector<float> round_trip(DType t, const std::vector<float>& v, int64_t cols) {
  const std::vector<uint8_t> bytes = quantize(t, v, cols);
  return dequantize(TensorView{"", t, {int64_t(v.size()) / cols, cols}, bytes});
}

// Config variants the later suites depend on (see synthetic.h).
std::vector<std::pair<std::string, ModelConfig>> config_variants() {
  std::vector<std::pair<std::string, ModelConfig>> out;
  ModelConfig c = synthetic_config();
  out.push_back({"base", c});
  for (int kv : {1, 4}) {
    ModelConfig v = c;
    v.num_key_value_heads = kv;
    out.push_back({"kv" + std::to_string(kv), v});
  }
  {
    ModelConfig v = c;
    v.n_group = 4;
    v.topk_group = 2;
    v.norm_topk_prob = false;
    v.routed_scaling_factor = 2.5;
    out.push_back({"groups4_nonorm", v});
  }
  for (int freq : {1, 3}) {
    ModelConfig v = c;
    v.experts_shared_frequency = freq;
    out.push_back({"freq" + std::to_string(freq), v});
  }
  {
    ModelConfig v = c;
    v.first_k_dense_replace = 2;
    out.push_back({"dense2", v});
  }
  {
    ModelConfig v = c;
    v.tie_word_embeddings = true;
    out.push_back({"tied", v});
  }
  {
    ModelConfig v = c;  // rows of 48 cannot be block-quantized: f16 fallback
    v.hidden_size = 48;
    v.num_attention_heads = 3;
    v.num_key_value_heads = 1;
    out.push_back({"odd48", v});
  }
  {
    ModelConfig v = c;  // an odd width: rows of 33 values, 2-byte rows of 66 bytes
    v.hidden_size = 33;
    v.num_attention_heads = 3;
    v.num_key_value_heads = 3;
    v.head_dim = 11;
    out.push_back({"odd33", v});
  }
  return out;
}

}  // namespace

TEST_CASE("HF directory: config and every tensor, experts aliased per pool") {
  TempDir dir;
  const ModelConfig cfg = synthetic_config();
  write_synthetic_hf(dir.path(), cfg);
  const auto model = Model::open(dir.path());
  CHECK(model->format() == "hf");
  CHECK(model->path() == dir.path());
  CHECK(model->tokenizer() == nullptr);
  formats_test::check_same_config(model->config(), cfg);

  const ModelWeights& w = model->weights();
  REQUIRE(w.layers.size() == 5);
  REQUIRE(w.pools.size() == 2);
  CHECK(w.layers[0].pool == -1);
  CHECK(w.layers[1].pool == 0);
  CHECK(w.layers[2].pool == 0);
  CHECK(w.layers[3].pool == 1);
  CHECK(w.layers[4].pool == 1);
  CHECK(w.layers[0].router.empty());
  CHECK(w.layers[1].ffn_gate.empty());
  CHECK(w.layers[3].wk.shape == std::vector<int64_t>{32, 64});
  CHECK(w.layers[3].wk.name == "model.layers.3.self_attn.k_proj.weight");
  CHECK(w.layers[2].router_bias.dtype == DType::F32);
  CHECK(w.layers[2].shexp_down.shape == std::vector<int64_t>{64, 32});
  CHECK(w.pools[1][7].down.name == "model.layers.3.mlp.experts.7.down_proj.weight");
  CHECK(w.pools[1][7].down.shape == std::vector<int64_t>{64, 32});
  CHECK(w.output.name == "lm_head.weight");

  const auto expected = synthetic_tensors(cfg, 1);
  const auto got = values_by_hf_name(*model);
  CHECK(got.size() == expected.size());
  for (const auto& t : expected) {
    CAPTURE(t.name);
    REQUIRE(got.count(t.name));
    CHECK(got.at(t.name) == t.values);
  }
}

TEST_CASE("HF directory: bf16 storage keeps matrices bf16 and presents norms and biases as f32") {
  TempDir dir;
  SyntheticOptions opt;
  opt.dtype = DType::BF16;
  opt.seed = 9;
  write_synthetic_hf(dir.path(), synthetic_config(), opt);
  const auto model = Model::open(dir.path());
  const ModelWeights& w = model->weights();
  CHECK(w.token_embd.dtype == DType::BF16);
  CHECK(w.layers[1].router.dtype == DType::BF16);
  CHECK(w.pools[0][0].gate.dtype == DType::BF16);
  CHECK(w.output_norm.dtype == DType::F32);
  CHECK(w.layers[1].attn_norm.dtype == DType::F32);
  CHECK(w.layers[1].router_bias.dtype == DType::F32);
  CHECK(w.layers[1].router_bias.bytes.size() == 8 * 4);
  CHECK(reinterpret_cast<uintptr_t>(w.output_norm.bytes.data()) % alignof(float) == 0);
  const auto got = values_by_hf_name(*model);
  for (const auto& t : synthetic_tensors(synthetic_config(), 9)) {
    CAPTURE(t.name);
    CHECK(got.at(t.name) == round_trip(DType::BF16, t.values, int64_t(t.values.size())));
  }
}

TEST_CASE("HF directory: a sharded checkpoint loads the same tensors") {
  TempDir single, sharded;
  SyntheticOptions opt;
  write_synthetic_hf(single.path(), synthetic_config(), opt);
  opt.shards = 4;
  write_synthetic_hf(sharded.path(), synthetic_config(), opt);
  CHECK(values_by_hf_name(*Model::open(single.path())) == values_by_hf_name(*Model::open(sharded.path())));
}

TEST_CASE("HF directory: the golden reference fixtures open") {
  for (const char* name : {"base", "tied", "odd48", "dense2_freq2", "groups4_keep2"}) {
    CAPTURE(name);
    const std::string dir = std::string(MEGREZ_SOURCE_DIR) + "/tests/data/reference/" + name;
    const auto m = Model::open(dir);
    CHECK(m->weights().layers.size() == size_t(m->config().num_hidden_layers));
    CHECK(m->weights().pools.size() == size_t(m->config().n_pools()));
  }
}

namespace {

// An HF directory from the synthetic tensors after `edit`, with config.json from `cfg`.
void write_edited(const std::string& dir, const ModelConfig& cfg,
                  const std::function<void(std::vector<SyntheticTensor>&)>& edit) {
  write_synthetic_hf(dir, cfg);
  std::vector<SyntheticTensor> tensors = synthetic_tensors(cfg, 1);
  edit(tensors);
  std::vector<std::vector<uint8_t>> bytes;
  for (const auto& t : tensors) bytes.push_back(quantize(DType::F32, t.values, int64_t(t.values.size())));
  std::vector<SafetensorsEntry> entries;
  for (size_t i = 0; i < tensors.size(); ++i)
    entries.push_back({tensors[i].name, DType::F32, tensors[i].shape, bytes[i]});
  write_safetensors(dir + "/model.safetensors", entries);
}

std::string open_error(const std::string& dir) {
  return error_of([&] { Model::open(dir); });
}

SyntheticTensor tensor_named(const std::vector<SyntheticTensor>& all, const std::string& name) {
  for (const auto& t : all)
    if (t.name == name) return t;
  FAIL("no tensor " << name);
  return {};
}

}  // namespace

TEST_CASE("HF directory: wrong, missing and unexpected tensors are named") {
  TempDir dir;
  const ModelConfig cfg = synthetic_config();
  const std::string file = dir / "model.safetensors";

  write_edited(dir.path(), cfg, [](auto& t) {
    for (auto& x : t)
      if (x.name == "model.layers.3.self_attn.k_proj.weight") x.shape = {64, 32};
  });
  CHECK(open_error(dir.path()) ==
        "expected [32, 64] got [64, 32] for model.layers.3.self_attn.k_proj.weight in " + file);

  write_edited(dir.path(), cfg, [](auto& t) {
    std::erase_if(t,
                  [](const SyntheticTensor& x) { return x.name == "model.layers.2.mlp.gate.e_score_correction_bias"; });
  });
  CHECK(open_error(dir.path()) == "missing tensor model.layers.2.mlp.gate.e_score_correction_bias in " + dir.path());

  write_edited(dir.path(), cfg, [](auto& t) { t.push_back({"model.extra.weight", {2}, {1.0f, 2.0f}}); });
  CHECK(open_error(dir.path()) == "unexpected tensor model.extra.weight in " + file);

  write_edited(dir.path(), cfg, [](auto& t) {
    SyntheticTensor e = tensor_named(t, "model.layers.1.mlp.experts.0.gate_proj.weight");
    e.name = "model.layers.2.mlp.experts.0.gate_proj.weight";
    t.push_back(e);
  });
  CHECK(open_error(dir.path()) == "unexpected tensor model.layers.2.mlp.experts.0.gate_proj.weight in " + file +
                                      " (layer 2 shares pool 0, whose experts belong under owner layer 1)");

  write_edited(dir.path(), cfg, [](auto& t) {
    SyntheticTensor e = tensor_named(t, "model.layers.1.mlp.experts.0.gate_proj.weight");
    e.name = "model.layers.1.mlp.experts.8.gate_proj.weight";  // one expert too many
    t.push_back(e);
  });
  CHECK(open_error(dir.path()).find("unexpected tensor model.layers.1.mlp.experts.8.gate_proj.weight") == 0);

  write_edited(dir.path(), cfg, [](auto& t) {
    t.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", {8}, std::vector<float>(8, 1.0f)});
  });
  CHECK_NOTHROW(Model::open(dir.path()));  // rotary_emb.* is ignored

  ModelConfig tied = cfg;
  tied.tie_word_embeddings = true;
  write_edited(dir.path(), tied,
               [&](auto& t) { t.push_back(tensor_named(synthetic_tensors(cfg, 1), "lm_head.weight")); });
  CHECK(open_error(dir.path()).find("unexpected tensor lm_head.weight in " + file + " (tie_word_embeddings is true") ==
        0);

  write_edited(dir.path(), cfg,
               [](auto& t) { std::erase_if(t, [](const SyntheticTensor& x) { return x.name == "lm_head.weight"; }); });
  CHECK(open_error(dir.path()) == "missing tensor lm_head.weight in " + dir.path() + " (tie_word_embeddings is false)");
}

TEST_CASE("HF directory: a config contradicting the tensors' shapes is an error") {
  TempDir dir;
  write_synthetic_hf(dir.path(), synthetic_config());
  ModelConfig other = synthetic_config();
  other.moe_intermediate_size = 64;
  formats_test::write_text(dir / "config.json", hf_config_json(other));
  CHECK(open_error(dir.path())
            .find("expected [64, 64] got [32, 64] for model.layers.1.mlp.shared_experts.gate_proj.weight") == 0);
  other = synthetic_config();
  other.vocab_size = 300;
  formats_test::write_text(dir / "config.json", hf_config_json(other));
  CHECK(open_error(dir.path()).find("expected [300, 64] got [288, 64] for model.embed_tokens.weight") == 0);
  // num_key_value_heads absent: derived from k_proj (32 rows / head_dim 16).
  auto j = nlohmann::json::parse(hf_config_json(synthetic_config()));
  j.erase("num_key_value_heads");
  formats_test::write_text(dir / "config.json", j.dump());
  CHECK(Model::open(dir.path())->config().num_key_value_heads == 2);
}

TEST_CASE("Model::open: paths that are not models") {
  TempDir dir;
  CHECK(open_error(dir / "nothing") == dir / "nothing" + ": no such file or directory");
  CHECK(open_error(dir.path()).find("no model.safetensors or model.safetensors.index.json") != std::string::npos);
  write_synthetic_hf(dir.path(), synthetic_config());
  std::filesystem::remove(dir / "config.json");
  CHECK(open_error(dir.path()).find("config.json: no such file") != std::string::npos);
  CHECK(open_error(dir / "model.safetensors").find("not a GGUF file (bad magic)") != std::string::npos);
}

// ---------------------------------------------------------------- GGUF

TEST_CASE("GGUF: each type loads the same model as the HF directory") {
  for (const auto& variant : config_variants()) {
    const std::string& name = variant.first;  // not structured bindings: CAPTURE lambdas (clang 14)
    const ModelConfig& cfg = variant.second;
    CAPTURE(name);
    TempDir dir;
    write_synthetic_hf(dir / "hf", cfg);
    const auto hf = Model::open(dir / "hf");
    const auto hf_values = values_by_hf_name(*hf);
    for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0}) {
      CAPTURE(dtype_name(t));
      const std::string path = dir / (std::string(dtype_name(t)) + ".gguf");
      GgufExportOptions opt;
      opt.matrix_type = t;
      const GgufExportSummary summary = export_gguf(hf->config(), hf->weights(), nullptr, path, opt);
      const auto gg = Model::open(path);
      CHECK(gg->format() == "gguf");
      formats_test::check_same_config(gg->config(), cfg);
      ModelWeights w;
      const auto slots = slots_by_hf_name(*gg, w);
      for (const auto& entry : slots) {
        const std::string& hf_name = entry.first;
        const WeightSlot& slot = entry.second;
        CAPTURE(hf_name);
        const std::vector<float>& src = hf_values.at(hf_name);
        const int64_t cols = slot.shape.back();
        const std::vector<float> got = dequantize(*slot.target);
        CHECK(slot.target->shape == slot.shape);
        if (slot.role != WeightRole::Matrix) {
          CHECK(slot.target->dtype == DType::F32);  // router weight, norms, biases stay f32
          CHECK(got == src);
          continue;
        }
        const DType stored = dtype_is_quantized(t) && cols % 32 != 0 ? DType::F16 : t;
        CHECK(slot.target->dtype == stored);
        // Exactly what an independent re-encoding of the source values gives...
        CHECK(got == round_trip(stored, src, cols));
        // ...and for block formats within the format's error bound.
        if (dtype_is_quantized(stored)) {
          const double bound = stored == DType::Q8_0 ? 0.5 + 127.0 / 2048 : 1.0 + 8.0 / 2048;
          for (int64_t b = 0; b < int64_t(src.size()) / 32; ++b) {
            float amax = 0;
            for (int64_t j = b * 32; j < b * 32 + 32; ++j) amax = std::max(amax, std::fabs(src[size_t(j)]));
            const double d = stored == DType::Q8_0 ? amax / 127.0 : amax / 8.0;
            for (int64_t j = b * 32; j < b * 32 + 32; ++j)
              REQUIRE(std::fabs(double(got[size_t(j)]) - src[size_t(j)]) <= bound * d * 1.0001 + 1e-12);
          }
        }
      }
      if (cfg.tie_word_embeddings) CHECK(gg->weights().output.bytes.data() == gg->weights().token_embd.bytes.data());
      CHECK(summary.tensors == parse_gguf(formats_test::read_bytes(path), path).tensors.size());
      CHECK(summary.file_bytes == std::filesystem::file_size(path));
    }
  }
}

TEST_CASE("GGUF: experts are one stacked tensor per pool and matrix, sliced per expert") {
  TempDir dir;
  const ModelConfig cfg = synthetic_config();
  write_synthetic_gguf(dir / "m.gguf", cfg, DType::Q8_0);
  const auto bytes = formats_test::read_bytes(dir / "m.gguf");
  const GgufContents g = parse_gguf(bytes, "m.gguf");
  const GgufTensorInfo* gate = g.find_tensor("blk.3.ffn_gate_exps.weight");
  REQUIRE(gate);
  CHECK(gate->ne == std::vector<int64_t>{64, 32, 8});
  CHECK(gate->dtype == DType::Q8_0);
  CHECK(g.find_tensor("blk.1.ffn_down_exps.weight")->ne == std::vector<int64_t>{32, 64, 8});
  CHECK(!g.find_tensor("blk.2.ffn_gate_exps.weight"));
  CHECK(g.find_tensor("blk.2.exp_probs_b.bias")->dtype == DType::F32);
  CHECK(g.find_tensor("blk.2.ffn_gate_inp.weight")->dtype == DType::F32);
  CHECK(g.find_tensor("output_norm.weight")->dtype == DType::F32);
  CHECK(g.find_tensor("blk.0.ffn_gate.weight")->ne == std::vector<int64_t>{64, 96});
  CHECK(std::get<uint64_t>(g.find("general.file_type")->data) == 7);
  const auto model = Model::open(dir / "m.gguf");
  const ExpertWeights& e5 = model->weights().pools[1][5];
  CHECK(e5.gate.bytes.size() == 32 * 2 * 34);
  const size_t per_expert = 32 * 2 * 34;
  CHECK(e5.gate.bytes.data() == model->weights().pools[1][0].gate.bytes.data() + 5 * per_expert);
  CHECK(std::equal(e5.gate.bytes.begin(), e5.gate.bytes.end(), gate->bytes.begin() + 5 * per_expert));
  CHECK(e5.gate.name == "blk.3.ffn_gate_exps.weight[5]");
}

TEST_CASE("GGUF: hostile model files") {
  TempDir dir;
  const ModelConfig cfg = synthetic_config();
  write_synthetic_gguf(dir / "good.gguf", cfg, DType::F32);
  // The parsed tensors point into these bytes: they must outlive `good`.
  const std::vector<uint8_t> good_bytes = formats_test::read_bytes(dir / "good.gguf");
  const GgufContents good = parse_gguf(good_bytes, "good");
  // Rewrite the file with one tensor changed (or dropped, or added).
  auto rewrite = [&](const std::function<bool(const GgufTensorInfo&, GgufWriter&)>& edit) {
    GgufWriter w;
    for (const auto& [k, v] : good.metadata) w.set(k, v);
    for (const GgufTensorInfo& t : good.tensors)
      if (!edit(t, w)) w.add_tensor(t.name, t.dtype, t.view().shape, t.bytes);
    w.write_file(dir / "bad.gguf");
    return error_of([&] { Model::open(dir / "bad.gguf"); });
  };
  const std::string bad = dir / "bad.gguf";
  CHECK(rewrite([](const GgufTensorInfo& t, GgufWriter&) { return t.name == "blk.4.attn_k.weight"; }) ==
        "missing tensor blk.4.attn_k.weight in " + bad);
  CHECK(rewrite([](const GgufTensorInfo& t, GgufWriter& w) {
          if (t.name != "blk.4.attn_k.weight") return false;
          w.add_tensor(t.name, t.dtype, {64, 32}, t.bytes);  // transposed
          return true;
        }) == "expected ne [64, 32] got ne [32, 64] for blk.4.attn_k.weight in " + bad);
  CHECK(rewrite([](const GgufTensorInfo& t, GgufWriter& w) {
          if (t.name != "blk.1.ffn_up_exps.weight") return false;
          w.add_tensor(t.name, t.dtype, {4, 32, 64}, t.bytes.first(t.bytes.size() / 2));  // 4 experts, not 8
          return true;
        }) == "expected ne [64, 32, 8] got ne [64, 32, 4] for blk.1.ffn_up_exps.weight in " + bad);
  CHECK(rewrite([](const GgufTensorInfo& t, GgufWriter& w) {
          if (t.name != "blk.1.ffn_up_exps.weight") return false;
          w.add_tensor(t.name, t.dtype, t.view().shape, t.bytes);
          w.add_tensor("blk.2.ffn_up_exps.weight", t.dtype, t.view().shape, t.bytes);
          return true;
        }) == "unexpected tensor blk.2.ffn_up_exps.weight in " + bad);
  CHECK(rewrite([](const GgufTensorInfo& t, GgufWriter&) {
          return t.name == "output.weight";
        }).find("missing tensor output.weight") == 0);
}

TEST_CASE("GGUF and HF: a config describing far more weights than the file holds fails before allocating") {
  ModelConfig huge = synthetic_config();
  huge.num_hidden_layers = 4096;
  huge.n_routed_experts = 65536;
  huge.experts_shared_frequency = 1;
  huge.hidden_size = 1 << 20;
  huge.head_dim = 1 << 18;
  GgufWriter w;
  add_config_metadata(w, huge);
  const std::vector<uint8_t> bytes = w.to_bytes();
  const GgufContents g = parse_gguf(bytes, "huge.gguf");
  CHECK(config_from_gguf(g, "huge.gguf").n_pools() == 4095);
  TempDir dir;
  formats_test::write_bytes(dir / "huge.gguf", bytes);
  CHECK(error_of([&] { Model::open(dir / "huge.gguf"); }).find(dir / "huge.gguf" + ": the config describes ") == 0);

  write_synthetic_hf(dir / "hf", synthetic_config());
  formats_test::write_text(dir / "hf/config.json", hf_config_json(huge));
  CHECK(error_of([&] { Model::open(dir / "hf"); }).find(" bytes of tensor data can hold") != std::string::npos);
}

TEST_CASE("GGUF export: deterministic bytes, and equal to the synthetic GGUF writer") {
  TempDir dir;
  SyntheticOptions opt;
  opt.dtype = DType::BF16;
  opt.seed = 5;
  write_synthetic_hf(dir / "hf", synthetic_config(), opt);
  const auto hf = Model::open(dir / "hf");
  for (DType t : {DType::F16, DType::Q4_0}) {
    GgufExportOptions eo;
    eo.matrix_type = t;
    eo.name = "synthetic-megrez2-seed5";
    export_gguf(hf->config(), hf->weights(), nullptr, dir / "a.gguf", eo);
    export_gguf(Model::open(dir / "hf")->config(), Model::open(dir / "hf")->weights(), nullptr, dir / "b.gguf", eo);
    const auto a = formats_test::read_bytes(dir / "a.gguf");
    CHECK(a == formats_test::read_bytes(dir / "b.gguf"));
    CHECK(!std::filesystem::exists(dir / "a.gguf.tmp"));
    write_synthetic_gguf(dir / "c.gguf", synthetic_config(), t, opt);
    CHECK(a == formats_test::read_bytes(dir / "c.gguf"));
  }
}

TEST_CASE("GGUF export: summary counts weights and bits per weight") {
  const ModelConfig cfg = synthetic_config();
  TempDir dir;
  write_synthetic_hf(dir.path(), cfg);
  const auto m = Model::open(dir.path());
  uint64_t weights = 0;
  for (const auto& t : synthetic_tensors(cfg, 1)) weights += t.values.size();
  GgufWriter w;
  GgufExportOptions eo;
  eo.matrix_type = DType::F32;
  const GgufExportSummary s = plan_gguf_export(w, cfg, m->weights(), nullptr, eo);
  CHECK(s.weights == weights);
  CHECK(s.tensor_bytes == weights * 4);
  CHECK(s.bits_per_weight() == 32.0);
  CHECK(s.notes.empty());
  // 1 + 3 per model, 6 per layer, +3 dense, +5 MoE, +3 per owner layer.
  CHECK(s.tensors == 3 + 5 * 6 + 3 + 4 * 5 + 2 * 3);
}

TEST_CASE("GGUF export: rows that are not a multiple of 32 fall back to f16 with a note") {
  ModelConfig cfg = synthetic_config();
  cfg.hidden_size = 48;
  cfg.num_attention_heads = 3;
  cfg.num_key_value_heads = 1;
  TempDir dir;
  write_synthetic_hf(dir.path(), cfg);
  const auto m = Model::open(dir.path());
  GgufWriter w;
  GgufExportOptions eo;
  eo.matrix_type = DType::Q4_0;
  const GgufExportSummary s = plan_gguf_export(w, cfg, m->weights(), nullptr, eo);
  REQUIRE(!s.notes.empty());
  CHECK(s.notes[0] == "token_embd.weight: rows of 48 values are not a multiple of 32, stored as f16 instead of q4_0");
  const GgufContents g = parse_gguf(w.to_bytes(), "odd");
  CHECK(g.find_tensor("token_embd.weight")->dtype == DType::F16);
  CHECK(g.find_tensor("blk.1.ffn_down_exps.weight")->dtype == DType::Q4_0);  // rows of moe_inter = 32
  CHECK(g.find_tensor("blk.1.ffn_gate_exps.weight")->dtype == DType::F16);   // rows of 48
}
