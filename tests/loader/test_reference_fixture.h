#pragma once
// Golden fixtures of tests/data/reference/<case>/ (written by make_golden.py from the
// independent PyTorch module) and small helpers shared by the reference tests.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "loader/error.h"
#include "loader/formats/model.h"
#include "loader/weights.h"

namespace reference_test {

inline const std::string kFixtureRoot = std::string(MEGREZ_SOURCE_DIR) + "/tests/data/reference/";

// Every case make_golden.py writes; a missing directory fails the tests.
inline const std::vector<std::string> kFixtureCases = {
    "base",          "mqa_freq2", "mha_freq3", "groups4_keep2", "groups2_keep1_k3", "nonorm_scaled",
    "norm_scaled_shared2", "dense2_freq2", "tied", "odd48", "theta1e6_long"};

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot open " << path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// float32 little-endian file holding exactly `count` values.
inline std::vector<float> read_f32(const std::string& path, size_t count) {
  const std::string raw = read_text(path);
  REQUIRE_MESSAGE(raw.size() == count * sizeof(float), path << ": " << raw.size() << " bytes, expected " << count * 4);
  std::vector<float> v(count);
  std::memcpy(v.data(), raw.data(), raw.size());
  return v;
}

// A checkpoint opened with Model::open; config and weights copied out for convenience (the
// weight views point into the Model, which `owner` keeps alive).
struct OpenedModel {
  megrez::ModelConfig config;
  megrez::ModelWeights weights;
  std::shared_ptr<megrez::Model> owner;
};

inline OpenedModel open_model(const std::string& path) {
  std::shared_ptr<megrez::Model> model = megrez::Model::open(path);
  return {model->config(), model->weights(), model};
}

// One golden case: the model plus what PyTorch computed for it.
struct Fixture {
  std::string name;
  OpenedModel model;
  std::vector<int32_t> ids;
  int64_t vocab = 0;
  std::vector<float> logits;            // [T, vocab]
  std::vector<float> own_layer_logits;  // [T, vocab] routed from each layer's own h2; may be empty
  std::map<int64_t, std::vector<std::vector<int32_t>>> routing;  // layer -> [T][k] expert ids
  double max_abs_logit = 0;
};

inline Fixture load_fixture(const std::string& name) {
  Fixture f;
  f.name = name;
  const std::string dir = kFixtureRoot + name;
  f.model = open_model(dir);
  const nlohmann::json e = nlohmann::json::parse(read_text(dir + "/expected.json"));
  f.ids = e.at("ids").get<std::vector<int32_t>>();
  f.vocab = e.at("vocab_size").get<int64_t>();
  f.logits = read_f32(dir + "/" + e.at("logits").get<std::string>(), f.ids.size() * size_t(f.vocab));
  if (e.contains("own_layer_logits"))
    f.own_layer_logits = read_f32(dir + "/" + e.at("own_layer_logits").get<std::string>(), f.logits.size());
  for (const auto& [layer, ids] : e.at("routing").items())
    f.routing[std::stoll(layer)] = ids.get<std::vector<std::vector<int32_t>>>();
  f.max_abs_logit = e.at("max_abs_logit").get<double>();
  return f;
}

inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(double(a[i]) - double(b[i])));
  return m;
}

inline std::vector<int64_t> argmax_rows(const std::vector<float>& logits, int64_t vocab) {
  std::vector<int64_t> out;
  for (size_t r = 0; r * size_t(vocab) < logits.size(); ++r) {
    auto row = logits.begin() + std::ptrdiff_t(r * size_t(vocab));
    out.push_back(std::max_element(row, row + vocab) - row);
  }
  return out;
}

}  // namespace reference_test
