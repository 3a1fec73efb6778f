#include "attention_test_run.h"

#include <bit>
#include <cmath>

#include "reference_attention.h"

namespace megrez::test {

namespace {

constexpr uint32_t kOutSentinel = 0xA5A5A5A5u;

struct Inputs {
  std::vector<float> q;   // [tokens][q_row_stride] from q_offset
  CacheData keys, values; // pos0 + tokens rows, then two NaN rows
  uint32_t q_offset, q_row_stride;
};

// q (amplitude 2, so some softmax rows are peaky) and K/V caches (amplitude 1).
Inputs make_inputs(const AttentionCase& c) {
  std::mt19937 rng(c.seed * 1000003u + c.shape.head_dim * 131u + c.pos0);
  Inputs in;
  const uint32_t q_width = c.shape.q_heads * c.shape.head_dim;
  in.q_offset = 3;
  in.q_row_stride = q_width + 2 * c.shape.kv_heads * c.shape.head_dim;  // a fused QKV row
  in.q = random_floats(in.q_offset + size_t{c.tokens} * in.q_row_stride, rng, 2.0f);
  const size_t rows = size_t{c.pos0} + c.tokens;
  const size_t row = size_t{c.shape.kv_heads} * c.shape.head_dim;
  in.keys = random_cache(c.type, rows * row, rng);
  in.values = random_cache(c.type, rows * row, rng);
  const uint32_t nan_word = c.type == KvType::F16 ? 0x7e007e00u : 0x7fc00000u;
  const size_t nan_words = 2 * kv_cache_row_bytes(c.type, c.shape.kv_heads, c.shape.head_dim) / 4;
  in.keys.words.insert(in.keys.words.end(), nan_words, nan_word);
  in.values.words.insert(in.values.words.end(), nan_words, nan_word);
  return in;
}

std::vector<double> reference(const AttentionCase& c, const Inputs& in) {
  const uint32_t q_width = c.shape.q_heads * c.shape.head_dim;
  std::vector<float> q;
  for (uint32_t t = 0; t < c.tokens; ++t) {
    const auto row = in.q.begin() + in.q_offset + size_t{t} * in.q_row_stride;
    q.insert(q.end(), row, row + q_width);
  }
  return attention_reference(q, in.keys.values, in.values.values, c.tokens, c.pos0,
                             {c.shape.q_heads, c.shape.kv_heads, c.shape.head_dim}, 1.0 / std::sqrt(c.shape.head_dim));
}

// Compares the [tokens][out_row_stride] output from out_offset with the reference.
double compare(const std::vector<float>& out, const std::vector<double>& expected, const AttentionCase& c,
               uint32_t out_offset, uint32_t out_row_stride) {
  const uint32_t q_width = c.shape.q_heads * c.shape.head_dim;
  double worst = 0;
  size_t sentinel_mismatches = 0;
  for (size_t e = 0; e < out.size(); ++e) {
    const bool written = e >= out_offset && (e - out_offset) / out_row_stride < c.tokens &&
                         (e - out_offset) % out_row_stride < q_width;
    if (!written) {
      sentinel_mismatches += std::bit_cast<uint32_t>(out[e]) != kOutSentinel;
      continue;
    }
    const size_t t = (e - out_offset) / out_row_stride, i = (e - out_offset) % out_row_stride;
    const double err = std::fabs(out[e] - expected[t * q_width + i]);
    worst = std::isnan(err) ? INFINITY : std::max(worst, err);
  }
  CHECK(sentinel_mismatches == 0);
  return worst;
}

}  // namespace

double run_decode_case(Context& ctx, const AttentionCase& c, std::optional<DecodePlan> plan) {
  const Inputs in = make_inputs(c);
  const uint32_t n_ctx = c.pos0 + 1;
  const DecodePlan p = plan ? *plan : plan_attention_decode(ctx.caps(), c.shape, n_ctx);
  const uint32_t out_offset = 5, q_width = c.shape.q_heads * c.shape.head_dim;
  Arena arena(ctx, "attention-test", MemoryUse::Device, 64 << 20);
  BufferRange q = upload_vector(ctx, arena, in.q);
  BufferRange k_cache = upload_vector(ctx, arena, in.keys.words);
  BufferRange v_cache = upload_vector(ctx, arena, in.values.words);
  BufferRange partials = arena.allocate(attention_decode_partials_bytes(c.shape, p));
  BufferRange out = upload_vector(ctx, arena, std::vector<uint32_t>(out_offset + q_width + 3, kOutSentinel));
  CommandBuffer cmd(ctx);
  cmd.begin();
  record_attention_decode(cmd, q, k_cache, v_cache, partials, out,
                          {c.shape, c.type, n_ctx, in.q_offset, out_offset, 1.0f / std::sqrt(float(c.shape.head_dim))},
                          p);
  cmd.submit_and_wait();
  return compare(download_vector<float>(ctx, out), reference(c, in), c, out_offset, q_width);
}

double run_prefill_case(Context& ctx, const AttentionCase& c, std::optional<PrefillPlan> plan) {
  const Inputs in = make_inputs(c);
  const PrefillPlan p = plan ? *plan : plan_attention_prefill(ctx.caps(), c.shape);
  const uint32_t q_width = c.shape.q_heads * c.shape.head_dim, out_row_stride = q_width + 1;
  Arena arena(ctx, "attention-test", MemoryUse::Device, 64 << 20);
  BufferRange q = upload_vector(ctx, arena, in.q);
  BufferRange k_cache = upload_vector(ctx, arena, in.keys.words);
  BufferRange v_cache = upload_vector(ctx, arena, in.values.words);
  BufferRange out =
      upload_vector(ctx, arena, std::vector<uint32_t>(size_t{c.tokens} * out_row_stride + 2, kOutSentinel));
  CommandBuffer cmd(ctx);
  cmd.begin();
  record_attention_prefill(cmd, q, k_cache, v_cache, out,
                           {c.shape, c.type, c.tokens, c.pos0, in.q_offset, in.q_row_stride, out_row_stride,
                            1.0f / std::sqrt(float(c.shape.head_dim))},
                           p);
  cmd.submit_and_wait();
  return compare(download_vector<float>(ctx, out), reference(c, in), c, 0, out_row_stride);
}

}  // namespace megrez::test
