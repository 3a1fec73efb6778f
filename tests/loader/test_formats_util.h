#pragma once
// Helpers shared by the model-file tests: a temporary directory, byte builders for hand-made
// (hostile) files, and exact comparisons of configs and tensors.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "loader/error.h"
#include "loader/formats/config.h"
#include "loader/formats/mapped_file.h"
#include "loader/tensor.h"

namespace formats_test {

// A fresh directory under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "megrez-formats-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Little-endian byte builder.
struct Bytes {
  std::vector<uint8_t> v;
  Bytes& u8(uint8_t x) {
    v.push_back(x);
    return *this;
  }
  Bytes& u32(uint32_t x) {
    for (int i = 0; i < 4; ++i) v.push_back(uint8_t(x >> (8 * i)));
    return *this;
  }
  Bytes& u64(uint64_t x) {
    for (int i = 0; i < 8; ++i) v.push_back(uint8_t(x >> (8 * i)));
    return *this;
  }
  Bytes& f32(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return u32(b);
  }
  Bytes& str(const std::string& s) {
    u64(s.size());
    v.insert(v.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& raw(const std::string& s) {
    v.insert(v.end(), s.begin(), s.end());
    return *this;
  }
  Bytes& zeros(size_t n) {
    v.insert(v.end(), n, 0);
    return *this;
  }
  Bytes& pad_to(size_t align) {
    while (v.size() % align) v.push_back(0);
    return *this;
  }
};

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  megrez::write_file_bytes(path, bytes);
}

inline void write_text(const std::string& path, const std::string& text) {
  megrez::write_file_bytes(path, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  megrez::MappedFile f(path);
  return {f.data(), f.data() + f.size()};
}

// Every field, so a difference names the field.
inline void check_same_config(const megrez::ModelConfig& a, const megrez::ModelConfig& b) {
  CHECK(a.architecture == b.architecture);
  CHECK(a.hidden_size == b.hidden_size);
  CHECK(a.num_hidden_layers == b.num_hidden_layers);
  CHECK(a.num_attention_heads == b.num_attention_heads);
  CHECK(a.num_key_value_heads == b.num_key_value_heads);
  CHECK(a.head_dim == b.head_dim);
  CHECK(a.intermediate_size == b.intermediate_size);
  CHECK(a.moe_intermediate_size == b.moe_intermediate_size);
  CHECK(a.n_routed_experts == b.n_routed_experts);
  CHECK(a.num_experts_per_tok == b.num_experts_per_tok);
  CHECK(a.n_shared_experts == b.n_shared_experts);
  CHECK(a.experts_shared_frequency == b.experts_shared_frequency);
  CHECK(a.first_k_dense_replace == b.first_k_dense_replace);
  CHECK(a.moe_layer_freq == b.moe_layer_freq);
  CHECK(a.n_group == b.n_group);
  CHECK(a.topk_group == b.topk_group);
  CHECK(a.vocab_size == b.vocab_size);
  CHECK(a.max_position_embeddings == b.max_position_embeddings);
  CHECK(a.pre_gate == b.pre_gate);
  CHECK(a.norm_topk_prob == b.norm_topk_prob);
  CHECK(a.tie_word_embeddings == b.tie_word_embeddings);
  CHECK(a.rope_theta == b.rope_theta);
  CHECK(a.rms_norm_eps == b.rms_norm_eps);
  CHECK(a.routed_scaling_factor == b.routed_scaling_factor);
  CHECK(a.scoring_func == b.scoring_func);
  CHECK(a.topk_method == b.topk_method);
  CHECK(a.hidden_act == b.hidden_act);
  CHECK(a.bos_token_id == b.bos_token_id);
  CHECK(a.eos_token_id == b.eos_token_id);
}

// Runs `f`, requires a megrez::Error, and returns its message.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const megrez::Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL("expected megrez::Error, got another exception: " << e.what());
  }
  FAIL("expected megrez::Error, got none");
  return {};
}

}  // namespace formats_test
