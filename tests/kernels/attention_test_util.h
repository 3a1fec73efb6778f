#pragma once
// Helpers shared by the attention kernel tests: random data, KV caches in both storage
// types with the exact values the GPU will read, error measures.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "loader/quant/quant.h"
#include "runtime/ops/attention.h"

namespace megrez::test {

inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float amplitude = 1.0f) {
  std::uniform_real_distribution<float> dist(-amplitude, amplitude);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A KV cache buffer: `values` are what the kernel reads (f16-rounded for KvType::F16), `words`
// the bytes to upload (halves packed two per word, even element low, as packHalf2x16).
struct CacheData {
  std::vector<float> values;
  std::vector<uint32_t> words;
};

inline CacheData pack_cache(KvType type, const std::vector<float>& source) {
  CacheData cache;
  if (type == KvType::F32) {
    cache.values = source;
    for (float v : source) cache.words.push_back(std::bit_cast<uint32_t>(v));
    return cache;
  }
  for (size_t i = 0; i < source.size(); i += 2) {
    const uint16_t lo = f32_to_f16(source[i]), hi = f32_to_f16(source[i + 1]);
    cache.values.push_back(f16_to_f32(lo));
    cache.values.push_back(f16_to_f32(hi));
    cache.words.push_back(uint32_t{lo} | (uint32_t{hi} << 16));
  }
  return cache;
}

inline CacheData random_cache(KvType type, size_t elements, std::mt19937& rng, float amplitude = 1.0f) {
  return pack_cache(type, random_floats(elements, rng, amplitude));
}

inline double max_abs_error(const std::vector<float>& got, const std::vector<double>& expected) {
  double worst = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = std::fabs(double{got[i]} - expected[i]);
    worst = std::isnan(e) ? INFINITY : std::max(worst, e);
  }
  return worst;
}

inline const char* kv_name(KvType type) { return type == KvType::F16 ? "f16" : "f32"; }

}  // namespace megrez::test
