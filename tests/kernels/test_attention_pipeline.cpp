// The attention kernels chained the way a layer's forward pass uses them: RoPE on q and the
// fused RoPE(K) + KV store from one fused QKV buffer, prefill over a prompt, then decode
// steps that each append one token, against a CPU model of the same steps in fp64.
#include <cmath>

#include "attention_test_util.h"
#include "common/gpu_fixture.h"
#include "reference_attention.h"

using namespace megrez;

namespace {

struct Layer {
  AttentionShape shape;
  double theta;
  uint32_t row() const { return (shape.q_heads + 2 * shape.kv_heads) * shape.head_dim; }  // fused q|k|v
};

// CPU model: the rotated q rows and the cache contents (f16-rounded for an f16 cache).
struct CpuState {
  std::vector<float> keys, values;  // [rows][kv_heads*head_dim]
};

std::vector<float> rotate(const std::vector<float>& qkv, const Layer& l, uint32_t token, uint32_t pos, uint32_t first_head,
                          uint32_t heads) {
  const uint32_t dh = l.shape.head_dim;
  std::vector<float> out;
  for (uint32_t h = 0; h < heads; ++h) {
    const size_t first = size_t{token} * l.row() + size_t{first_head + h} * dh;
    std::vector<double> head(qkv.begin() + first, qkv.begin() + first + dh);
    test::rope_head_reference(head.data(), dh, pos, l.theta);
    out.insert(out.end(), head.begin(), head.end());
  }
  return out;
}

// Appends `tokens` rows of qkv at positions pos0.. to the CPU cache; returns the rotated q rows.
std::vector<float> cpu_step(CpuState& s, const std::vector<float>& qkv, const Layer& l, KvType type, uint32_t tokens,
                            uint32_t pos0) {
  const uint32_t H = l.shape.q_heads, Hkv = l.shape.kv_heads, dh = l.shape.head_dim;
  std::vector<float> q;
  for (uint32_t t = 0; t < tokens; ++t) {
    const std::vector<float> qt = rotate(qkv, l, t, pos0 + t, 0, H);
    q.insert(q.end(), qt.begin(), qt.end());
    std::vector<float> k = rotate(qkv, l, t, pos0 + t, H, Hkv);
    const auto v_first = qkv.begin() + size_t{t} * l.row() + size_t{H + Hkv} * dh;
    std::vector<float> v(v_first, v_first + size_t{Hkv} * dh);
    if (type == KvType::F16) {
      k = test::pack_cache(type, k).values;
      v = test::pack_cache(type, v).values;
    }
    s.keys.insert(s.keys.end(), k.begin(), k.end());
    s.values.insert(s.values.end(), v.begin(), v.end());
  }
  return q;
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "rope + kv_store + prefill, then decode steps, match the fp64 model") {
  const Layer layer{{8, 2, 64}, 1e4};
  const uint32_t prompt = 37, steps = 3, capacity = 64;
  const uint32_t H = layer.shape.q_heads, Hkv = layer.shape.kv_heads, dh = layer.shape.head_dim;
  const float scale = 1.0f / std::sqrt(float(dh));
  for (KvType type : {KvType::F32, KvType::F16}) {
    CAPTURE(test::kv_name(type));
    // f16: the GPU rounds its fp32 rotated K to f16, the model its fp64 one; a rare 1-ulp
    // difference in one key moves an output by ~1e-4 at most.
    const double tolerance = type == KvType::F32 ? 1e-5 : 2e-4;
    std::mt19937 rng(77);
    Arena arena(ctx, "pipeline-test", MemoryUse::Device, 8 << 20);
    const VkDeviceSize cache_bytes = capacity * kv_cache_row_bytes(type, Hkv, dh);
    BufferRange k_cache = arena.allocate(cache_bytes), v_cache = arena.allocate(cache_bytes);
    BufferRange table = test::upload_vector(ctx, arena, rope_frequency_table(layer.theta, dh));
    BufferRange partials =
        arena.allocate(attention_decode_max_partials_bytes(ctx.caps(), layer.shape, capacity));
    BufferRange out = arena.allocate(size_t{prompt} * H * dh * 4);
    CpuState cpu;

    // Prompt: one fused QKV buffer, q rotated in place, K/V stored, then prefill.
    const std::vector<float> qkv = test::random_floats(size_t{prompt} * layer.row(), rng);
    BufferRange qkv_buffer = test::upload_vector(ctx, arena, qkv);
    CommandBuffer cmd(ctx);
    cmd.begin();
    record_rope(cmd, qkv_buffer, table, {prompt, H, dh, 0, layer.row(), 0});
    barrier_compute_to_compute(cmd);  // same buffer bound to both: ordered for the validator
    record_kv_store(cmd, qkv_buffer, qkv_buffer, table, k_cache, v_cache,
                    {type, prompt, Hkv, dh, 0, H * dh, (H + Hkv) * dh, layer.row()});
    barrier_compute_to_compute(cmd);
    record_attention_prefill(cmd, qkv_buffer, k_cache, v_cache, out,
                             {layer.shape, type, prompt, 0, 0, layer.row(), H * dh, scale});
    cmd.submit_and_wait();
    std::vector<float> q = cpu_step(cpu, qkv, layer, type, prompt, 0);
    std::vector<double> expected = test::attention_reference(q, cpu.keys, cpu.values, prompt, 0,
                                                             {H, Hkv, dh}, 1.0 / std::sqrt(double(dh)));
    std::vector<float> got = test::download_vector<float>(ctx, out);
    CHECK(test::max_abs_error(got, expected) <= tolerance);

    // Decode: each step stores one token at the next row and attends over all rows so far.
    for (uint32_t step = 0; step < steps; ++step) {
      const uint32_t pos = prompt + step;
      CAPTURE(pos);
      const std::vector<float> token = test::random_floats(layer.row(), rng);
      BufferRange token_buffer = test::upload_vector(ctx, arena, token);
      BufferRange step_out = arena.allocate(size_t{H} * dh * 4);
      cmd.begin();
      record_rope(cmd, token_buffer, table, {1, H, dh, 0, layer.row(), pos});
      barrier_compute_to_compute(cmd);
      record_kv_store(cmd, token_buffer, token_buffer, table, k_cache, v_cache,
                      {type, 1, Hkv, dh, pos, H * dh, (H + Hkv) * dh, layer.row()});
      barrier_compute_to_compute(cmd);
      record_attention_decode(cmd, token_buffer, k_cache, v_cache, partials, step_out,
                              {layer.shape, type, pos + 1, 0, 0, scale});
      cmd.submit_and_wait();
      q = cpu_step(cpu, token, layer, type, 1, pos);
      expected = test::attention_reference(q, cpu.keys, cpu.values, 1, pos, {H, Hkv, dh}, 1.0 / std::sqrt(double(dh)));
      got = test::download_vector<float>(ctx, step_out);
      CHECK(test::max_abs_error(got, expected) <= tolerance);
    }
  }
}
