// ggml-compatible scalar conversions and block quantizers (loader/quant/quant.cpp) against exact
// bit patterns and hand-computed blocks.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "loader/error.h"
#include "loader/quant/quant.h"

using namespace megrez;

namespace {

float from_bits(uint32_t b) { return std::bit_cast<float>(b); }
uint16_t u16_at(const std::vector<uint8_t>& v, size_t at) { return uint16_t(v[at] | (v[at + 1] << 8)); }

}  // namespace

TEST_CASE("f32 -> f16: exact patterns, rounding ties to even, subnormals, overflow, inf, NaN") {
  CHECK(f32_to_f16(1.0f) == 0x3c00);
  CHECK(f32_to_f16(-2.0f) == 0xc000);
  CHECK(f32_to_f16(0.0f) == 0x0000);
  CHECK(f32_to_f16(-0.0f) == 0x8000);
  CHECK(f32_to_f16(65504.0f) == 0x7bff);   // largest finite
  CHECK(f32_to_f16(65519.99f) == 0x7bff);  // just below the rounding boundary
  CHECK(f32_to_f16(65520.0f) == 0x7c00);   // halfway to 2^16: rounds to inf
  CHECK(f32_to_f16(1e10f) == 0x7c00);
  CHECK(f32_to_f16(-1e10f) == 0xfc00);
  CHECK(f32_to_f16(std::numeric_limits<float>::infinity()) == 0x7c00);
  CHECK(f32_to_f16(-std::numeric_limits<float>::infinity()) == 0xfc00);
  const uint16_t nan = f32_to_f16(std::numeric_limits<float>::quiet_NaN());
  CHECK((nan & 0x7c00) == 0x7c00);
  CHECK((nan & 0x03ff) != 0);
  CHECK((f32_to_f16(from_bits(0x7f800001)) & 0x03ff) != 0);  // NaN with only low payload bits
  // 1 + 2^-11 is halfway between 1 (even mantissa 0) and 1 + 2^-10: ties go to even.
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);
  // 1 + 3*2^-11 is halfway between mantissa 1 (odd) and 2 (even).
  CHECK(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)) == 0x3c01);  // above the tie
  // Subnormals: units of 2^-24.
  CHECK(f32_to_f16(std::ldexp(1.0f, -24)) == 0x0001);
  CHECK(f32_to_f16(std::ldexp(1.0f, -25)) == 0x0000);      // half a unit: tie to even (0)
  CHECK(f32_to_f16(3 * std::ldexp(1.0f, -25)) == 0x0002);  // 1.5 units: tie to even (2)
  CHECK(f32_to_f16(std::ldexp(1.0f, -26)) == 0x0000);
  CHECK(f32_to_f16(1023 * std::ldexp(1.0f, -24)) == 0x03ff);
  CHECK(f32_to_f16(std::ldexp(1.0f, -14)) == 0x0400);  // smallest normal
  CHECK(f32_to_f16(-std::ldexp(1.0f, -24)) == 0x8001);
  CHECK(f32_to_f16(0.333333333f) == 0x3555);
}

TEST_CASE("f16 -> f32: exact values, and every non-NaN f16 survives a round trip") {
  CHECK(f16_to_f32(0x3c00) == 1.0f);
  CHECK(f16_to_f32(0x0001) == std::ldexp(1.0f, -24));
  CHECK(f16_to_f32(0x03ff) == 1023 * std::ldexp(1.0f, -24));
  CHECK(f16_to_f32(0x3555) == 0.333251953125f);
  CHECK(f16_to_f32(0x7bff) == 65504.0f);
  CHECK(std::isinf(f16_to_f32(0x7c00)));
  CHECK(f16_to_f32(0xfc00) < 0);
  CHECK(std::isnan(f16_to_f32(0x7e00)));
  CHECK(std::signbit(f16_to_f32(0x8000)));
  int failures = 0;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (std::isnan(f)) {
      failures += !std::isnan(f16_to_f32(f32_to_f16(f)));
    } else {
      failures += f32_to_f16(f) != h;
    }
  }
  CHECK(failures == 0);
}

TEST_CASE("f32 <-> bf16: ties to even, overflow to inf, NaN stays NaN, exhaustive round trip") {
  CHECK(f32_to_bf16(1.0f) == 0x3f80);
  CHECK(f32_to_bf16(from_bits(0x3f808000)) == 0x3f80);  // tie, lower neighbour even
  CHECK(f32_to_bf16(from_bits(0x3f818000)) == 0x3f82);  // tie, lower neighbour odd
  CHECK(f32_to_bf16(from_bits(0x3f808001)) == 0x3f81);  // just above the tie
  CHECK(f32_to_bf16(from_bits(0x3f807fff)) == 0x3f80);  // just below the tie
  CHECK(f32_to_bf16(from_bits(0x7f7fffff)) == 0x7f80);  // largest f32 rounds up to inf
  CHECK(f32_to_bf16(std::numeric_limits<float>::infinity()) == 0x7f80);
  CHECK(f32_to_bf16(-std::numeric_limits<float>::infinity()) == 0xff80);
  CHECK(f32_to_bf16(from_bits(0x00008000)) == 0x0000);  // subnormal tie to even
  CHECK(f32_to_bf16(from_bits(0x00018000)) == 0x0002);
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001)))));  // payload only in the low bits
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0xffc00000)))));
  CHECK(bf16_to_f32(0x3f80) == 1.0f);
  CHECK(bf16_to_f32(0xc040) == -3.0f);
  int failures = 0;
  for (uint32_t b = 0; b < 0x10000; ++b) {
    const float f = bf16_to_f32(uint16_t(b));
    if (!std::isnan(f)) failures += f32_to_bf16(f) != b;
  }
  CHECK(failures == 0);
}

TEST_CASE("q8_0: a hand-computed block") {
  // x[j] = j - 16: amax 16, d = 16/127, q[j] = round((j - 16) * 127 / 16).
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[size_t(j)] = float(j - 16);
  std::vector<uint8_t> q;
  quantize_row(DType::Q8_0, x.data(), 32, q);
  REQUIRE(q.size() == 34);
  CHECK(u16_at(q, 0) == 0x3008);  // 16/127 = 0.12598 -> f16 2^-3 * (1 + 8/1024)
  const int expected[32] = {-127, -119, -111, -103, -95, -87, -79, -71, -64, -56, -48, -40, -32, -24, -16, -8,
                            0,    8,    16,   24,   32,  40,  48,  56,  64,  71,  79,  87,  95,  103, 111, 119};
  for (int j = 0; j < 32; ++j) CHECK(int(int8_t(q[size_t(2 + j)])) == expected[j]);
  std::vector<float> back(32);
  dequantize_row(DType::Q8_0, q.data(), back.data(), 32);
  const float d = f16_to_f32(0x3008);
  for (int j = 0; j < 32; ++j) CHECK(back[size_t(j)] == d * float(expected[j]));
}

TEST_CASE("q8_0 and q4_0: an all-zero block has a zero scale and decodes to zeros") {
  const std::vector<float> x(64, 0.0f);
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    std::vector<uint8_t> q;
    quantize_row(t, x.data(), 64, q);
    CHECK(q.size() == row_bytes(t, 64));
    // q4_0's scale is max / -8, which is -0.0 here (as in ggml): the sign bit is set.
    CHECK(u16_at(q, 0) == (t == DType::Q4_0 ? 0x8000 : 0x0000));
    std::vector<float> back(64, 1.0f);
    dequantize_row(t, q.data(), back.data(), 64);
    for (float v : back) CHECK(v == 0.0f);
  }
}

TEST_CASE("q4_0: hand-computed blocks, negative and positive extreme") {
  // x[j] = (j - 20) / 4: the extreme is -5, so d = -5 / -8 = 0.625 and q = min(15, trunc(x/d + 8.5)).
  std::vector<float> x(32);
  for (int j = 0; j < 32; ++j) x[size_t(j)] = float(j - 20) / 4.0f;
  std::vector<uint8_t> q;
  quantize_row(DType::Q4_0, x.data(), 32, q);
  REQUIRE(q.size() == 18);
  CHECK(u16_at(q, 0) == 0x3900);  // 0.625 = 2^-1 * 1.25
  auto nibble = [&](int j) { return j < 16 ? q[size_t(2 + j)] & 15 : q[size_t(2 + j - 16)] >> 4; };
  // (j - 20) / 4 / 0.625 + 8.5 = (j - 20) * 0.4 + 8.5, truncated.
  const int expected[32] = {0, 0, 1, 1, 2, 2, 2, 3, 3,  4,  4,  4,  5,  5,  6,  6,
                            6, 7, 7, 8, 8, 8, 9, 9, 10, 10, 10, 11, 11, 12, 12, 12};
  for (int j = 0; j < 32; ++j) CHECK(nibble(j) == expected[j]);

  // x[j] = j / 4: the extreme is +7.75, so d = -0.96875 and +7.75 maps to q = 0.
  for (int j = 0; j < 32; ++j) x[size_t(j)] = float(j) / 4.0f;
  q.clear();
  quantize_row(DType::Q4_0, x.data(), 32, q);
  CHECK(f16_to_f32(u16_at(q, 0)) == -0.96875f);
  CHECK(nibble(31) == 0);
  CHECK(nibble(0) == 8);
  std::vector<float> back(32);
  dequantize_row(DType::Q4_0, q.data(), back.data(), 32);
  CHECK(back[31] == 7.75f);
  CHECK(back[0] == 0.0f);
}

namespace {

// Deterministic values in [-1, 1).
std::vector<float> pseudo_random(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  uint32_t s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = float(s >> 8) / float(1 << 23) - 1.0f;
  }
  return v;
}

// Worst |x - deq(q(x))| over each block, divided by that block's |d| (stored scale).
double worst_error_in_units_of_d(DType t, const std::vector<float>& x) {
  std::vector<uint8_t> q;
  quantize_row(t, x.data(), int64_t(x.size()), q);
  std::vector<float> back(x.size());
  dequantize_row(t, q.data(), back.data(), int64_t(x.size()));
  const size_t block_bytes = row_bytes(t, 32);
  double worst = 0;
  for (size_t b = 0; b < x.size() / 32; ++b) {
    const double d = std::fabs(f16_to_f32(u16_at(q, b * block_bytes)));
    for (size_t j = b * 32; j < b * 32 + 32; ++j) worst = std::max(worst, std::fabs(double(x[j]) - back[j]) / d);
  }
  return worst;
}

}  // namespace

TEST_CASE("q8_0 error <= d/2 and q4_0 error <= d when d is exact in f16") {
  // Scale each block so its extreme is exactly 127 * 2^-6 (q8_0) or -8 * 2^-4 (q4_0): then d is
  // a power of two, the f32 scale equals the stored one, and the bounds hold exactly.
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    std::vector<float> x = pseudo_random(256, seed);
    std::vector<float> y = x;
    for (size_t b = 0; b < 8; ++b) {
      x[b * 32 + seed % 32] = 127.0f / 64.0f;
      for (size_t j = b * 32; j < b * 32 + 32; ++j) x[j] = j == b * 32 + seed % 32 ? x[j] : x[j] * 1.5f;
      y[b * 32 + seed % 32] = -0.5f;  // -8 * 2^-4
      for (size_t j = b * 32; j < b * 32 + 32; ++j) y[j] = j == b * 32 + seed % 32 ? y[j] : y[j] * 0.49f;
    }
    CHECK(worst_error_in_units_of_d(DType::Q8_0, x) <= 0.5);
    CHECK(worst_error_in_units_of_d(DType::Q4_0, y) <= 1.0);
  }
}

TEST_CASE("q8_0/q4_0 error bounds on arbitrary data, allowing for the f16 rounding of d") {
  // The quantizer divides by the f32 scale, the decoder multiplies by its f16 rounding, which
  // differs by at most 2^-11 relative: that adds up to 127 (q8_0) or 8 (q4_0) times it.
  for (uint32_t seed = 1; seed <= 50; ++seed) {
    std::vector<float> x = pseudo_random(1024, seed);
    CHECK(worst_error_in_units_of_d(DType::Q8_0, x) <= 0.5 + 127.0 / 2048 * 1.001);
    CHECK(worst_error_in_units_of_d(DType::Q4_0, x) <= 1.0 + 8.0 / 2048 * 1.001);
  }
}

TEST_CASE("quantizing a row whose length is not a multiple of 32 is an error") {
  const std::vector<float> x(48, 1.0f);
  std::vector<uint8_t> q;
  CHECK_THROWS_AS(quantize_row(DType::Q8_0, x.data(), 48, q), Error);
  CHECK_THROWS_AS(quantize_row(DType::Q4_0, x.data(), 48, q), Error);
  CHECK_NOTHROW(quantize_row(DType::F16, x.data(), 48, q));
}

TEST_CASE("whole-tensor quantize/dequantize keep rows separate") {
  // Two rows of 64: each row's blocks are independent, f16/bf16 exact on these values.
  std::vector<float> v(128);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(int(i) - 64) / 8.0f;
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    const std::vector<uint8_t> bytes = quantize(t, v, 64);
    CHECK(bytes.size() == 2 * row_bytes(t, 64));
    TensorView view{"t", t, {2, 64}, bytes};
    CHECK(dequantize(view) == v);
  }
  const std::vector<uint8_t> q = quantize(DType::Q8_0, v, 64);
  CHECK(q.size() == 2 * 2 * 34);
  TensorView view{"q", DType::Q8_0, {2, 64}, q};
  const std::vector<float> back = dequantize(view);
  std::vector<uint8_t> row1;
  quantize_row(DType::Q8_0, v.data() + 64, 64, row1);
  CHECK(std::memcmp(row1.data(), q.data() + 68, 68) == 0);
  for (size_t i = 0; i < v.size(); ++i) CHECK(std::fabs(back[i] - v[i]) <= 8.0f / 127.0f / 2 * 1.13f);
}
