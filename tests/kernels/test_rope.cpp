// RoPE (shaders/rope.comp) and its frequency table against the fp64 reference, including
// positions near 32K where a plain fp32 angle would be off by ~2e-3 rad.
#include <bit>
#include <cmath>
#include <cstring>

#include "attention_test_util.h"
#include "common/gpu_fixture.h"
#include "loader/error.h"
#include "reference_attention.h"

using namespace megrez;

namespace {

uint64_t table_entry(const std::vector<uint32_t>& table, uint32_t i) {
  return uint64_t{table[2 * i]} | (uint64_t{table[2 * i + 1]} << 32);
}

struct RopeCase {
  uint32_t tokens, heads, head_dim, offset, row_stride, pos0;
  double theta;
};

// Runs rope on random x (|x| <= 1) and returns the worst error of the rotated elements;
// CHECKs that every element outside the heads kept its bits.
double run_rope(Context& ctx, const RopeCase& c) {
  CAPTURE(c.tokens);
  CAPTURE(c.heads);
  CAPTURE(c.head_dim);
  CAPTURE(c.pos0);
  CAPTURE(c.theta);
  std::mt19937 rng(c.head_dim * 7919 + c.pos0);
  const size_t elements = size_t{c.offset} + size_t{c.tokens} * c.row_stride;
  std::vector<float> x = test::random_floats(elements, rng);
  Arena arena(ctx, "rope-test", MemoryUse::Device, 8 << 20);
  BufferRange x_buffer = test::upload_vector(ctx, arena, x);
  BufferRange table = test::upload_vector(ctx, arena, rope_frequency_table(c.theta, c.head_dim));
  CommandBuffer cmd(ctx);
  cmd.begin();
  record_rope(cmd, x_buffer, table, {c.tokens, c.heads, c.head_dim, c.offset, c.row_stride, c.pos0});
  cmd.submit_and_wait();
  const std::vector<float> got = test::download_vector<float>(ctx, x_buffer);
  const std::vector<double> expected =
      test::rope_reference(x, c.tokens, c.heads, c.head_dim, c.offset, c.row_stride, c.pos0, c.theta);
  double worst = 0;
  size_t changed_outside = 0;
  for (size_t e = 0; e < elements; ++e) {
    const bool in_head = e >= c.offset && (e - c.offset) % c.row_stride < size_t{c.heads} * c.head_dim;
    if (in_head) {
      worst = std::max(worst, std::fabs(got[e] - expected[e]));
    } else if (std::bit_cast<uint32_t>(got[e]) != std::bit_cast<uint32_t>(x[e])) {
      ++changed_outside;
    }
  }
  CHECK(changed_outside == 0);
  return worst;
}

}  // namespace

TEST_CASE("rope_frequency_table stores theta^(-2i/Dh) / (2 pi) turns as a 64-bit fraction") {
  const std::vector<uint32_t> table = rope_frequency_table(1e6, 128);
  REQUIRE(table.size() == 128);
  // i = 0: 2^64 / (2 pi) = 2935890503282001226.496... (computed to 60 digits); long double
  // rounding may land on either neighbour: one unit is 2^-64 turns.
  const uint64_t first = table_entry(table, 0);
  CHECK((first == 2935890503282001226ull || first == 2935890503282001227ull));
  for (uint32_t i = 1; i < 64; ++i) {
    CAPTURE(i);
    const double expected = std::ldexp(std::pow(1e6, -2.0 * i / 128) / (2 * M_PI), 64);
    // A double carries 53 of the 61 significant bits: agree to ~2^9 units.
    CHECK(std::fabs(static_cast<double>(table_entry(table, i)) - expected) <= 1024.0);
  }
  CHECK(rope_frequency_table(10000, 18).size() == 18);
  CHECK_THROWS_AS(rope_frequency_table(0.0, 128), Error);
  CHECK_THROWS_AS(rope_frequency_table(NAN, 128), Error);
  CHECK_THROWS_AS(rope_frequency_table(1e6, 17), Error);
  CHECK_THROWS_AS(rope_frequency_table(1e6, 0), Error);
}

// Tolerance: |x| <= 1, so an output is off by at most (|a| + |b|) * (angle error ~6e-8 +
// sin/cos polynomial ~1e-7) plus fp32 rounding. Lavapipe measures <= 1.9e-7 (also at
// positions near 32K); 1e-6 absolute leaves room for other devices' rounding.
constexpr double kRopeTolerance = 1e-6;

TEST_CASE_FIXTURE(test::GpuTest, "rope matches fp64 for every head dim, in a fused row, at pos0 0 and 17") {
  for (uint32_t head_dim : {32u, 64u, 128u, 18u}) {
    for (uint32_t pos0 : {0u, 17u}) {
      for (double theta : {1e4, 1e6}) {
        // q heads of a fused [tokens][q | k | v] row: offset and stride leave other elements.
        const uint32_t heads = 3, tokens = 5;
        const double err = run_rope(ctx, {tokens, heads, head_dim, 7, heads * head_dim + 2 * 2 * head_dim + 5, pos0, theta});
        CHECK(err <= kRopeTolerance);
      }
    }
  }
  // Megrez2 q: 16 heads of 128, packed rows.
  CHECK(run_rope(ctx, {9, 16, 128, 0, 16 * 128, 3, 1e6}) <= kRopeTolerance);
}

TEST_CASE_FIXTURE(test::GpuTest, "rope stays accurate at positions 32000..32767 and beyond 2^31") {
  for (double theta : {1e4, 1e6, 5e6}) {
    const double err = run_rope(ctx, {768, 2, 128, 0, 256, 32000, theta});
    MESSAGE("theta " << theta << ", positions 32000..32767: max abs error " << err);
    CHECK(err <= kRopeTolerance);
  }
  CHECK(run_rope(ctx, {3, 2, 64, 0, 128, 4000000000u, 1e6}) <= kRopeTolerance);
  CHECK(run_rope(ctx, {4, 1, 18, 0, 18, 1u << 20, 10000}) <= kRopeTolerance);
}

TEST_CASE_FIXTURE(test::GpuTest, "record_rope rejects bad arguments before recording") {
  Arena arena(ctx, "rope-test", MemoryUse::Device, 1 << 20);
  BufferRange x = test::upload_vector(ctx, arena, std::vector<float>(2 * 128, 0.5f));
  BufferRange table = test::upload_vector(ctx, arena, rope_frequency_table(1e6, 128));
  CommandBuffer cmd(ctx);
  cmd.begin();
  CHECK_THROWS_AS(record_rope(cmd, x, table, {3, 1, 128, 0, 128, 0}), Error);    // x too small
  CHECK_THROWS_AS(record_rope(cmd, x, table, {2, 1, 127, 0, 128, 0}), Error);    // odd head dim
  CHECK_THROWS_AS(record_rope(cmd, x, table, {2, 1, 256, 0, 256, 0}), Error);    // table too small
  CHECK_THROWS_AS(record_rope(cmd, x, table, {2, 2, 64, 0, 64, 0}), Error);      // overlapping rows
  CHECK_THROWS_AS(record_rope(cmd, x, table, {0, 1, 128, 0, 128, 0}), Error);    // no tokens
  record_rope(cmd, x, table, {2, 1, 128, 0, 128, 0});
  cmd.submit_and_wait();
}
