#pragma once
// Overflow-checked size arithmetic for parsing untrusted files: every offset and size read
// from a model file goes through these before it is compared or used.
#include <cstdint>
#include <optional>
#include <span>

namespace megrez {

inline std::optional<uint64_t> checked_add(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

inline std::optional<uint64_t> checked_mul(uint64_t a, uint64_t b) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// Product of non-negative dims, or nullopt when it exceeds `limit`.
inline std::optional<uint64_t> checked_product(std::span<const int64_t> dims, uint64_t limit) {
  uint64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return std::nullopt;
    auto m = checked_mul(n, uint64_t(d));
    if (!m || *m > limit) return std::nullopt;
    n = *m;
  }
  return n;
}

// Rounds `v` up to a multiple of the power of two `align`; nullopt on overflow.
inline std::optional<uint64_t> align_up(uint64_t v, uint64_t align) {
  auto s = checked_add(v, align - 1);
  if (!s) return std::nullopt;
  return *s & ~(align - 1);
}

}  // namespace megrez
