// Fused RoPE(K) + KV cache store (shaders/kv_store.comp): rotated K and V land in the right
// cache rows, bit-exact where the math is exact, f16 packing to the expected bits, and rows
// outside pos0 .. pos0+T-1 untouched.
#include <algorithm>
#include <bit>
#include <cmath>

#include "attention_test_util.h"
#include "common/gpu_fixture.h"
#include "loader/error.h"
#include "reference_attention.h"

using namespace megrez;

namespace {

constexpr uint32_t kSentinel = 0xA5A5A5A5u;

// What the f16 cache stores of a finite value: saturated to the largest finite half.
float saturate_half(float x) { return std::clamp(x, -65504.0f, 65504.0f); }

struct StoreCase {
  uint32_t tokens, kv_heads, head_dim, pos0, q_heads;
  double theta;
};

struct StoreResult {
  std::vector<float> source;        // fused [tokens][q | k | v] rows
  std::vector<float> source_after;  // the same buffer after the dispatch
  std::vector<uint32_t> k_words, v_words;
  uint32_t row_stride, k_offset, v_offset, cache_rows;
};

// Runs kv_store on a fused QKV source (K and V bound as two views of one buffer), caches
// pre-filled with a sentinel, and returns the caches' words.
// rotate_q: the same dispatch also applies RoPE to the q heads in place.
StoreResult run_store(Context& ctx, KvType type, const StoreCase& c, std::vector<float> source = {},
                      bool rotate_q = false) {
  StoreResult r;
  const uint32_t kv_width = c.kv_heads * c.head_dim;
  r.row_stride = c.q_heads * c.head_dim + 2 * kv_width;
  r.k_offset = c.q_heads * c.head_dim;
  r.v_offset = r.k_offset + kv_width;
  r.cache_rows = c.pos0 + c.tokens + 3;
  if (source.empty()) {
    std::mt19937 rng(c.head_dim * 31 + c.tokens);
    source = test::random_floats(size_t{c.tokens} * r.row_stride, rng, 2.0f);
  }
  r.source = source;
  const size_t cache_words = r.cache_rows * kv_cache_row_bytes(type, c.kv_heads, c.head_dim) / 4;
  Arena arena(ctx, "kv-store-test", MemoryUse::Device, 8 << 20);
  BufferRange src = test::upload_vector(ctx, arena, r.source);
  BufferRange table = test::upload_vector(ctx, arena, rope_frequency_table(c.theta, c.head_dim));
  BufferRange k_cache = test::upload_vector(ctx, arena, std::vector<uint32_t>(cache_words, kSentinel));
  BufferRange v_cache = test::upload_vector(ctx, arena, std::vector<uint32_t>(cache_words, kSentinel));
  CommandBuffer cmd(ctx);
  cmd.begin();
  record_kv_store(cmd, src, src, table, k_cache, v_cache,
                  {type, c.tokens, c.kv_heads, c.head_dim, c.pos0, r.k_offset, r.v_offset, r.row_stride,
                   rotate_q ? c.q_heads : 0, 0});
  cmd.submit_and_wait();
  r.source_after = test::download_vector<float>(ctx, src);
  r.k_words = test::download_vector<uint32_t>(ctx, k_cache);
  r.v_words = test::download_vector<uint32_t>(ctx, v_cache);
  return r;
}

// Expected f32 K: the fp64 RoPE of each K head.
std::vector<double> expected_k(const StoreCase& c, const StoreResult& r) {
  std::vector<double> k;
  for (uint32_t t = 0; t < c.tokens; ++t) {
    for (uint32_t h = 0; h < c.kv_heads; ++h) {
      const size_t first = size_t{t} * r.row_stride + r.k_offset + size_t{h} * c.head_dim;
      std::vector<double> head(r.source.begin() + first, r.source.begin() + first + c.head_dim);
      test::rope_head_reference(head.data(), c.head_dim, uint64_t{c.pos0} + t, c.theta);
      k.insert(k.end(), head.begin(), head.end());
    }
  }
  return k;
}

uint16_t half_of(const std::vector<uint32_t>& words, size_t element) {
  return static_cast<uint16_t>(words[element / 2] >> (16 * (element % 2)));
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "kv_store f32: rotated K within 1e-6 of fp64, V bit-exact, other rows untouched") {
  for (uint32_t head_dim : {32u, 64u, 128u, 18u}) {
    for (uint32_t pos0 : {0u, 17u, 32000u}) {
      const StoreCase c{5, 3, head_dim, pos0, 4, 1e6};
      CAPTURE(head_dim);
      CAPTURE(pos0);
      const StoreResult r = run_store(ctx, KvType::F32, c);
      const size_t row = size_t{c.kv_heads} * head_dim;
      const std::vector<double> k = expected_k(c, r);
      double worst = 0;
      size_t v_mismatches = 0, sentinel_mismatches = 0;
      for (size_t row_index = 0; row_index < r.cache_rows; ++row_index) {
        const bool written = row_index >= pos0 && row_index < pos0 + c.tokens;
        for (size_t e = 0; e < row; ++e) {
          const size_t word = row_index * row + e;
          if (!written) {
            sentinel_mismatches += (r.k_words[word] != kSentinel) + (r.v_words[word] != kSentinel);
            continue;
          }
          const size_t t = row_index - pos0;
          worst = std::max(worst, std::fabs(std::bit_cast<float>(r.k_words[word]) - k[t * row + e]));
          const float v = r.source[t * r.row_stride + r.v_offset + e];
          v_mismatches += r.v_words[word] != std::bit_cast<uint32_t>(v);
        }
      }
      CHECK(worst <= 2e-6);  // |k| <= 2: twice rope's 1e-6 for |x| <= 1
      CHECK(v_mismatches == 0);
      CHECK(sentinel_mismatches == 0);
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "kv_store f16 writes exactly the expected half bits") {
  for (uint32_t head_dim : {32u, 128u, 18u}) {
    for (uint32_t pos0 : {0u, 17u}) {
      const StoreCase c{4, 2, head_dim, pos0, 1, 1e6};
      CAPTURE(head_dim);
      CAPTURE(pos0);
      std::mt19937 rng(head_dim + pos0);
      const uint32_t row_stride = (c.q_heads + 2 * c.kv_heads) * head_dim;
      std::vector<float> source = test::random_floats(size_t{c.tokens} * row_stride, rng, 2.0f);
      // Rounding corner cases in V (token 0, kv head 0): ties to even, values past f16's
      // range (saturated to +-65504, never inf), subnormal halves, underflow to zero, signed zero.
      const float corners[] = {1.0f + 0x1p-11f, 1.0f + 0x3p-11f, -(1.0f + 0x1p-11f), 65520.0f, 65519.0f,
                               -70000.0f,       0x1p-20f,        0x3p-25f,           0x1p-26f, -0.0f,
                               6.1e-5f,         2049.0f,         2051.0f,            -1e-8f,   0x1.ffep-15f};
      const uint32_t v_first = (c.q_heads + c.kv_heads) * head_dim;
      for (size_t i = 0; i < std::size(corners) && i < head_dim; ++i) source[v_first + i] = corners[i];
      const StoreResult half = run_store(ctx, KvType::F16, c, source);
      const StoreResult full = run_store(ctx, KvType::F32, c, source);
      const size_t row = size_t{c.kv_heads} * head_dim;
      size_t k_mismatches = 0, v_mismatches = 0, sentinel_mismatches = 0;
      for (size_t row_index = 0; row_index < half.cache_rows; ++row_index) {
        const bool written = row_index >= pos0 && row_index < pos0 + c.tokens;
        for (size_t e = 0; e < row; ++e) {
          const size_t element = row_index * row + e;
          if (!written) {
            sentinel_mismatches += half.k_words[element / 2] != kSentinel || half.v_words[element / 2] != kSentinel;
            continue;
          }
          const size_t t = row_index - pos0;
          // K: the f32 kernel's rotated value, rounded to nearest even; at position 0 RoPE
          // is the identity, so there it must be the source bits themselves.
          const float k32 = std::bit_cast<float>(full.k_words[element]);
          if (row_index == 0) CHECK(k32 == source[t * row_stride + half.k_offset + e]);
          k_mismatches += half_of(half.k_words, element) != f32_to_f16(saturate_half(k32));
          v_mismatches += half_of(half.v_words, element) != f32_to_f16(saturate_half(source[t * row_stride + v_first + e]));
        }
      }
      CHECK(k_mismatches == 0);
      CHECK(v_mismatches == 0);
      CHECK(sentinel_mismatches == 0);
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "kv_store with q_heads also rotates q in place, within 1e-6 of fp64, and nothing else") {
  for (KvType type : {KvType::F32, KvType::F16}) {
    for (uint32_t head_dim : {32u, 128u, 18u}) {
      for (uint32_t pos0 : {0u, 17u, 32000u}) {
        const StoreCase c{5, 2, head_dim, pos0, 4, 1e6};
        CAPTURE(head_dim);
        CAPTURE(pos0);
        const StoreResult plain = run_store(ctx, type, c);
        const StoreResult with_q = run_store(ctx, type, c, plain.source, true);
        // The cache is what the store alone writes; the source is untouched without q.
        CHECK(with_q.k_words == plain.k_words);
        CHECK(with_q.v_words == plain.v_words);
        CHECK(plain.source_after == plain.source);
        const std::vector<double> q = test::rope_reference(plain.source, c.tokens, c.q_heads, head_dim, 0,
                                                           plain.row_stride, pos0, c.theta);
        double worst = 0;
        size_t kv_changed = 0;
        for (size_t t = 0; t < c.tokens; ++t) {
          for (size_t e = 0; e < plain.row_stride; ++e) {
            const size_t i = t * plain.row_stride + e;
            if (e < size_t{c.q_heads} * head_dim) {
              worst = std::max(worst, std::fabs(with_q.source_after[i] - q[i]));
            } else {
              kv_changed += std::bit_cast<uint32_t>(with_q.source_after[i]) != std::bit_cast<uint32_t>(plain.source[i]);
            }
          }
        }
        CHECK(worst <= 2e-6);  // |q| <= 2: twice rope's 1e-6 for |x| <= 1
        CHECK(kv_changed == 0);
      }
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "record_kv_store rejects undersized buffers and bad shapes") {
  Arena arena(ctx, "kv-store-test", MemoryUse::Device, 1 << 20);
  BufferRange src = test::upload_vector(ctx, arena, std::vector<float>(2 * 256, 1.0f));
  BufferRange table = test::upload_vector(ctx, arena, rope_frequency_table(1e6, 64));
  // 4 f32 rows of 2 heads x 64.
  BufferRange k_cache = test::upload_vector(ctx, arena, std::vector<uint32_t>(4 * 128, 0));
  BufferRange v_cache = test::upload_vector(ctx, arena, std::vector<uint32_t>(4 * 128, 0));
  CommandBuffer cmd(ctx);
  cmd.begin();
  const KvStoreArgs ok{KvType::F32, 2, 2, 64, 2, 0, 128, 256};
  record_kv_store(cmd, src, src, table, k_cache, v_cache, ok);
  KvStoreArgs past_end = ok;
  past_end.pos0 = 3;  // rows 3 and 4 of a 4-row cache
  CHECK_THROWS_AS(record_kv_store(cmd, src, src, table, k_cache, v_cache, past_end), Error);
  KvStoreArgs odd = ok;
  odd.head_dim = 63;
  CHECK_THROWS_AS(record_kv_store(cmd, src, src, table, k_cache, v_cache, odd), Error);
  KvStoreArgs long_source = ok;
  long_source.tokens = 3;
  CHECK_THROWS_AS(record_kv_store(cmd, src, src, table, k_cache, v_cache, long_source), Error);
  KvStoreArgs q_over_k = ok;  // q heads 0..1 would be rotated where K is read
  q_over_k.q_heads = 2;
  q_over_k.q_offset = 64;
  CHECK_THROWS_AS(record_kv_store(cmd, src, src, table, k_cache, v_cache, q_over_k), Error);
  KvStoreArgs q_past_end = ok;  // 512 floats: token 1's q would end at 320 + 256 + 64
  q_past_end.q_heads = 1;
  q_past_end.q_offset = 320;
  CHECK_THROWS_AS(record_kv_store(cmd, src, src, table, k_cache, v_cache, q_past_end), Error);
  cmd.submit_and_wait();
}
