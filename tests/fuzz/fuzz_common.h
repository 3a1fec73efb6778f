#pragma once
// Shared by the loader fuzz targets: touch every byte of a tensor view (through the same
// decoder the CPU reference uses) so AddressSanitizer sees any view that points outside
// its buffer; the tokenizer fixtures the text targets work with.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "loader/quant/quant.h"
#include "loader/tensor.h"
#include "loader/tokenizer/tokenizer.h"

namespace fuzz {

// tests/data/tokenizers/<name>; aborts when missing (a broken checkout, not a finding).
inline std::string read_fixture(const char* name) {
  const std::string path = std::string(MEGREZ_SOURCE_DIR) + "/tests/data/tokenizers/" + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "fuzz: missing fixture %s\n", path.c_str());
    std::abort();
  }
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The Qwen2-style byte-level BPE fixture with its tokenizer_config.json (chat template, specials).
inline const megrez::Tokenizer& bpe_fixture() {
  static const auto t = megrez::Tokenizer::from_hf_json(read_fixture("bpe_qwen2.tokenizer.json"),
                                                        read_fixture("bpe_qwen2.tokenizer_config.json"));
  return *t;
}

inline void touch(const megrez::TensorView& t) {
  if (t.shape.empty() || t.bytes.empty() || t.numel() > (int64_t(1) << 22)) return;
  const std::vector<float> values = megrez::dequantize(t);
  volatile float sink = 0;
  for (float v : values) sink = sink + v;
}

}  // namespace fuzz
