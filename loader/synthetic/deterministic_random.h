#pragma once
// Deterministic pseudo-random values for synthetic checkpoints: the same bits on every
// platform and compiler (own generator, no <random> distributions), so a seed names a model.
#include <cstdint>
#include <string>

namespace megrez {

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// FNV-1a of a tensor name: gives every tensor its own stream from one seed.
inline uint64_t fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

// Uniform in [-1, 1) from the top 24 bits: exactly representable in float.
inline float uniform(uint64_t& state) { return float(splitmix64(state) >> 40) * (2.0f / 16777216.0f) - 1.0f; }

}  // namespace megrez
