// megrez-kernel-bench: GPU time of each kernel at Megrez2 sizes, per weight format, next to
// the plain buffer copy (copy_vec4) measured in the same run on a similar byte count.
//   megrez-kernel-bench [--device N|NAME] [--profile NAME|PATH] [--reps N] [--warmup N]
//                       [--filter TEXT[,TEXT...]] [--json FILE]
// Times come from GPU timestamps: the median of --reps dispatches after --warmup untimed ones.
// "GB/s" counts the bytes a kernel must move (weights + activations read and written);
// "copy GB/s" is copy_vec4's read + write rate over the same number of bytes, and "vs copy"
// their ratio: 1.0 means the kernel streams memory as fast as a plain copy does.
// To add kernels: write a builder like add_matvec_cases() and list it in kBenchTable.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "apps/tools/bandwidth.h"
#include "apps/tools/engine_flags.h"
#include "loader/quant/quant.h"
#include "runtime/ops/attention.h"
#include "runtime/ops/linear.h"
#include "runtime/ops/moe.h"
#include "runtime/vk/blocking_transfers.h"
#include "runtime/vk/context.h"
#include "runtime/vk/dispatch.h"
#include "runtime/vk/profiler.h"

namespace {

using namespace megrez;

struct Options {
  ContextOptions context;
  int reps = 20;
  int warmup = 3;
  std::vector<std::string> filters;  // a case runs when any is part of its kernel or format
  std::string json_path;
};

// One benchmarked launch. `record` records exactly one timed invocation of the kernel.
struct BenchCase {
  std::string kernel, format, shape, variant;
  uint64_t bytes = 0;     // bytes the kernel must read + write (per product, see below)
  double flops = 0;       // multiply-adds x 2, 0 when not meaningful (per product)
  uint32_t products = 1;  // products one launch computes; ms is reported per product
  std::function<void(CommandBuffer&)> record;
};

BenchCase make_case(std::string kernel, std::string format, std::string shape, std::string variant) {
  BenchCase c;
  c.kernel = std::move(kernel);
  c.format = std::move(format);
  c.shape = std::move(shape);
  c.variant = std::move(variant);
  return c;
}

struct BenchResult {
  BenchCase c;
  double ms = 0, gb_per_s = 0, gflops = 0, copy_gb_per_s = 0;
};

// A builder allocates its operands in `arena` (kept alive while its cases run) and returns
// the cases. Operands are filled with realistic values: timing must not hit denormals/NaNs.
using CaseBuilder = std::function<std::vector<BenchCase>(Context&, Arena&)>;

const DType kFormats[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0};

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

BufferRange upload_floats(Context& ctx, Arena& arena, size_t n, uint32_t seed) {
  const std::vector<float> v = random_floats(n, seed);
  BufferRange r = arena.allocate(n * 4);
  upload(ctx, r, std::span<const float>(v));
  return r;
}

// A [rows, cols] matrix in `dtype`, padded to 4 bytes. One random row is quantized and
// repeated: quantizing 22M weights would dominate the run, and the contents do not change
// the kernels' speed.
BufferRange upload_matrix(Context& ctx, Arena& arena, DType dtype, uint32_t rows, uint32_t cols) {
  std::vector<uint8_t> row;
  const std::vector<float> values = random_floats(cols, rows + cols);
  quantize_row(dtype, values.data(), cols, row);
  std::vector<uint8_t> bytes;
  bytes.reserve(row.size() * rows + 4);
  for (uint32_t r = 0; r < rows; ++r) bytes.insert(bytes.end(), row.begin(), row.end());
  while (bytes.size() % 4) bytes.push_back(0);
  BufferRange w = arena.allocate(bytes.size());
  upload(ctx, w, std::span<const uint8_t>(bytes));
  return w;
}

std::string shape_text(uint32_t a, uint32_t b) { return std::to_string(a) + "x" + std::to_string(b); }

// The reduction flavours this device runs (both where subgroups allow, for comparison), and
// the per-invocation one where the operands fit it (`rows_fit`): every flavour is timed, the
// one Auto picks on this device is marked with a '*'.
std::vector<Reduce> flavours(const Context& ctx, bool rows_fit = false) {
  std::vector<Reduce> out{Reduce::SharedMemory};
  if (ctx.caps().use_subgroup_reduce()) out.insert(out.begin(), Reduce::Subgroup);
  if (rows_fit) out.push_back(Reduce::PerInvocation);
  return out;
}
std::string flavour_name(const Context& ctx, Reduce r, bool rows_fit = false) {
  const char* name = r == Reduce::Subgroup ? "subgroup" : r == Reduce::SharedMemory ? "shmem" : "rows";
  return std::string(name) + (r == auto_reduce(ctx.caps(), rows_fit) ? "*" : "");
}

// ---- Kernel builders ----------------------------------------------------------------------

// Decode mat-vecs at the Megrez2 shapes [out, in], one format per builder (the f32 set alone
// is 200 MB).
std::vector<BenchCase> add_matvec_cases(Context& ctx, Arena& arena, DType dtype) {
  struct Shape {
    uint32_t rows, cols;
    const char* what;
  };
  const Shape shapes[] = {{1408, 2048, "expert gate/up"}, {2048, 1408, "expert down"}, {5632, 2048, "shared gate/up"},
                          {2048, 5632, "shared down"},    {10944, 2048, "dense gate/up"}};
  std::vector<BenchCase> cases;
  const BufferRange x = upload_floats(ctx, arena, 10944, 1), y = upload_floats(ctx, arena, 10944, 2);
  for (const Shape& s : shapes) {
    const BufferRange w = upload_matrix(ctx, arena, dtype, s.rows, s.cols);
    const bool rows_fit = rows_per_invocation_fit(dtype, s.cols, w.offset, x.offset);
    for (Reduce reduce : flavours(ctx, rows_fit)) {
      BenchCase c = make_case("matvec", dtype_name(dtype), shape_text(s.rows, s.cols) + " " + s.what,
                              flavour_name(ctx, reduce, rows_fit));
      c.bytes = row_bytes(dtype, s.cols) * s.rows + uint64_t{s.cols + s.rows} * 4;
      c.flops = 2.0 * s.rows * s.cols;
      const uint32_t rows = s.rows, cols = s.cols;
      c.record = [=](CommandBuffer& cmd) {
        record_matvec(cmd, dtype, w, x, y, abi::MatvecPush{rows, cols, 0, 0, 0, 0}, reduce);
      };
      cases.push_back(c);
    }
  }
  return cases;
}

// The MoE decode step as ggml's MUL_MAT_ID measures it: one token, 6 of 64 experts, each a
// 1408x2048 product. Ours computes gate and up (two such products) and silu(gate) * up in one
// kernel, so a case is two products: its ms, bytes and flops are reported per product. Only
// the 6 chosen experts need weights (the slot table sends the other ids nowhere they are read).
std::vector<BenchCase> add_moe_cases(Context& ctx, Arena& arena, DType dtype) {
  constexpr uint32_t dim = 2048, inter = 1408, experts = 64, top_k = 6;
  const ExpertSlotLayout layout = expert_slot_layout(dtype, dtype, dim, inter);
  ExpertSlots slots{layout, std::min(top_k, expert_slots_per_part(ctx.caps(), layout)), {}};
  std::vector<uint8_t> row;
  quantize_row(dtype, random_floats(dim, 7).data(), dim, row);
  std::vector<uint8_t> part_bytes;
  for (uint32_t first = 0; first < top_k; first += slots.slots_per_part) {
    const uint32_t n = std::min(slots.slots_per_part, top_k - first);
    part_bytes.assign(size_t(n) * layout.slot_bytes, 0);
    for (uint32_t slot = 0; slot < n; ++slot) {
      for (uint32_t offset : {layout.gate_offset, layout.up_offset}) {
        for (uint32_t r = 0; r < inter; ++r) {
          std::copy(row.begin(), row.end(), part_bytes.begin() + std::ptrdiff_t(size_t(slot) * layout.slot_bytes + offset + size_t(r) * row.size()));
        }
      }
    }
    BufferRange part = arena.allocate(part_bytes.size());
    upload(ctx, part, std::span<const uint8_t>(part_bytes));
    slots.parts.push_back(part);
  }
  // Ids 5, 15, ..., 55 (spread over the 64) in slots 0..5.
  std::vector<uint32_t> ids(top_k), table(experts, 0);
  for (uint32_t k = 0; k < top_k; ++k) {
    ids[k] = 5 + 10 * k;
    table[ids[k]] = k;
  }
  BufferRange id_buf = arena.allocate(top_k * 4), table_buf = arena.allocate(experts * 4);
  upload(ctx, id_buf, std::span<const uint32_t>(ids));
  upload(ctx, table_buf, std::span<const uint32_t>(table));
  const BufferRange x = upload_floats(ctx, arena, dim, 3), hidden = upload_floats(ctx, arena, top_k * inter, 4);
  std::vector<BenchCase> cases;
  const bool rows_fit = expert_rows_fit(slots, false, x);
  for (Reduce reduce : flavours(ctx, rows_fit)) {
    BenchCase c = make_case("moe_matvec", dtype_name(dtype),
                            shape_text(inter, dim) + " 6 of 64 experts, gate+up fused (per product)",
                            flavour_name(ctx, reduce, rows_fit));
    c.products = 2;
    // One matrix of each of the 6 experts, x, and half of the [6, 1408] f32 output.
    c.bytes = top_k * row_bytes(dtype, dim) * inter + uint64_t{dim} * 4 + uint64_t{top_k} * inter * 2;
    c.flops = 2.0 * top_k * inter * dim;
    c.record = [=](CommandBuffer& cmd) {
      record_moe_gate_up(cmd, slots, MoeArgs{1, top_k, experts, {}}, x, id_buf, table_buf, hidden, reduce);
    };
    cases.push_back(c);
  }
  return cases;
}

// Prefill: 64 tokens through the Megrez2 shapes, one format per builder. The expert shapes
// time every flavour; the larger ones (seconds per run on a CPU driver) only the chosen one.
std::vector<BenchCase> add_matmul_cases(Context& ctx, Arena& arena, DType dtype) {
  const uint32_t tokens = 64;
  const uint32_t shapes[][2] = {{1408, 2048}, {2048, 1408}, {5632, 2048}, {2048, 5632}, {10944, 2048}};
  const BufferRange x = upload_floats(ctx, arena, size_t{tokens} * 5632, 3);
  const BufferRange y = upload_floats(ctx, arena, size_t{tokens} * 10944, 4);
  std::vector<BenchCase> cases;
  for (const auto& s : shapes) {
    const uint32_t rows = s[0], cols = s[1];
    const bool every_flavour = uint64_t{rows} * cols <= 2048u * 1408u;
    const BufferRange w = upload_matrix(ctx, arena, dtype, rows, cols);
    const bool rows_fit = cols % 4 == 0 && rows_per_invocation_fit(dtype, cols, w.offset, x.offset);
    for (MatmulKernel kernel : {MatmulKernel::Tiled, MatmulKernel::Rows}) {
      if (kernel == MatmulKernel::Rows && !rows_fit) continue;
      const bool chosen =
          (kernel == MatmulKernel::Rows) == matmul_uses_rows(ctx.caps(), MatmulKernel::Auto, rows_fit, "matmul");
      if (!chosen && !every_flavour) continue;
      BenchCase c = make_case("matmul", dtype_name(dtype), shape_text(rows, cols) + " T=64",
                              std::string(kernel == MatmulKernel::Rows ? "rows" : "tiled") + (chosen ? "*" : ""));
      c.bytes = row_bytes(dtype, cols) * rows + uint64_t{tokens} * (rows + cols) * 4;
      c.flops = 2.0 * rows * cols * tokens;
      c.record = [=](CommandBuffer& cmd) {
        record_matmul(cmd, dtype, w, x, y, abi::MatmulPush{rows, cols, tokens, 0, 0, cols, 0, rows, 0}, kernel);
      };
      cases.push_back(c);
    }
  }
  return cases;
}

std::vector<BenchCase> add_norm_cases(Context& ctx, Arena& arena) {
  const uint32_t dim = 2048;
  const BufferRange x = upload_floats(ctx, arena, dim * 64, 5), a = upload_floats(ctx, arena, dim * 64, 6);
  const BufferRange w = upload_floats(ctx, arena, dim, 7), y = upload_floats(ctx, arena, dim * 64, 8);
  std::vector<BenchCase> cases;
  for (uint32_t rows : {1u, 64u}) {
    for (Reduce reduce : flavours(ctx)) {
      BenchCase norm = make_case("rmsnorm", "f32", shape_text(rows, dim), flavour_name(ctx, reduce));
      norm.bytes = uint64_t{rows} * dim * 8 + dim * 4;
      norm.record = [=](CommandBuffer& cmd) { record_rmsnorm(cmd, x, w, y, rows, dim, 1e-6f, reduce); };
      cases.push_back(norm);
      BenchCase fused = make_case("add_rmsnorm", "f32", shape_text(rows, dim), flavour_name(ctx, reduce));
      fused.bytes = uint64_t{rows} * dim * 16 + dim * 4;
      fused.record = [=](CommandBuffer& cmd) { record_add_rmsnorm(cmd, x, a, w, y, rows, dim, 1e-6f, reduce); };
      cases.push_back(fused);
    }
    BenchCase add = make_case("add", "f32", shape_text(rows, dim), "-");
    add.bytes = uint64_t{rows} * dim * 12;
    add.record = [=](CommandBuffer& cmd) { record_add(cmd, x, a, rows * dim); };
    cases.push_back(add);
  }
  return cases;
}

std::vector<BenchCase> add_embed_argmax_cases(Context& ctx, Arena& arena) {
  const uint32_t vocab = 128880, dim = 2048, tokens = 64;
  std::vector<BenchCase> cases;
  std::vector<uint32_t> ids(tokens);
  const uint32_t rows = 1000;  // a table part; only the rows the ids touch cost time
  for (uint32_t t = 0; t < tokens; ++t) ids[t] = t * 13 % rows;
  BufferRange id_range = arena.allocate(tokens * 4);
  upload(ctx, id_range, std::span<const uint32_t>(ids));
  const BufferRange out = arena.allocate(size_t{tokens} * dim * 4);
  for (DType dtype : kFormats) {
    const BufferRange table = upload_matrix(ctx, arena, dtype, rows, dim);
    BenchCase c = make_case("embed", dtype_name(dtype), shape_text(tokens, dim), "-");
    c.bytes = row_bytes(dtype, dim) * tokens + uint64_t{tokens} * dim * 4;
    c.record = [=](CommandBuffer& cmd) { record_embed(cmd, dtype, table, id_range, out, {tokens, dim, 0, rows}); };
    cases.push_back(c);
  }
  const BufferRange logits = upload_floats(ctx, arena, vocab, 9);
  const BufferRange partials = arena.allocate(argmax_partials_bytes(ctx.caps(), vocab));
  const BufferRange result = arena.allocate(8);
  for (Reduce reduce : flavours(ctx)) {
    BenchCase c = make_case("argmax", "f32", std::to_string(vocab), flavour_name(ctx, reduce));
    c.bytes = uint64_t{vocab} * 4;
    c.record = [=](CommandBuffer& cmd) { record_argmax(cmd, logits, partials, result, vocab, reduce); };
    cases.push_back(c);
  }
  return cases;
}

// Attention at Megrez2 decode sizes (H 16, Dh 128, Hkv 4 and 2; helper "attention"): RoPE of
// q, the fused RoPE(K) + KV store, split-K decode (+ combine) at n_ctx 512 / 4096, and a
// 64-token prefill chunk, for both cache types.
std::vector<BenchCase> add_attention_cases(Context& ctx, Arena& arena) {
  const uint32_t H = 16, Dh = 128, max_ctx = 4096, chunk = 64;
  std::vector<BenchCase> cases;
  const BufferRange table = arena.allocate(Dh * 4);
  upload(ctx, table, std::span<const uint32_t>(rope_frequency_table(1e6, Dh)));
  const BufferRange q = upload_floats(ctx, arena, size_t{chunk} * H * Dh, 11);
  const BufferRange out = upload_floats(ctx, arena, size_t{chunk} * H * Dh, 12);
  BenchCase rope = make_case("rope", "f32", "q 16x128 T=1", "-");
  rope.bytes = uint64_t{H} * Dh * 8 + Dh * 4;
  rope.record = [=](CommandBuffer& cmd) { record_rope(cmd, q, table, {1, H, Dh, 0, H * Dh, 100}); };
  cases.push_back(rope);
  for (uint32_t Hkv : {4u, 2u}) {
    const AttentionShape shape{H, Hkv, Dh};
    const BufferRange partials = arena.allocate(attention_decode_max_partials_bytes(ctx.caps(), shape, max_ctx));
    for (KvType type : {KvType::F16, KvType::F32}) {
      const char* format = type == KvType::F16 ? "f16" : "f32";
      const uint64_t row_bytes = kv_cache_row_bytes(type, Hkv, Dh);
      // Caches of random values in [-1, 1].
      auto make_cache = [&](uint32_t seed) {
        const size_t elements = max_ctx * row_bytes / (type == KvType::F16 ? 2 : 4);
        if (type == KvType::F32) return upload_floats(ctx, arena, elements, seed);
        const std::vector<float> v = random_floats(elements, seed);
        std::vector<uint16_t> halves(elements);
        for (size_t i = 0; i < elements; ++i) halves[i] = f32_to_f16(v[i]);
        const BufferRange cache = arena.allocate(elements * 2);
        upload(ctx, cache, std::span<const uint16_t>(halves));
        return cache;
      };
      const BufferRange k_cache = make_cache(20 + Hkv), v_cache = make_cache(30 + Hkv);
      const std::string kv = "Hkv=" + std::to_string(Hkv);
      BenchCase store = make_case("kv_store", format, kv + " T=1", "-");
      store.bytes = 2 * (uint64_t{Hkv} * Dh * 4 + row_bytes);
      store.record = [=](CommandBuffer& cmd) {
        record_kv_store(cmd, q, q, table, k_cache, v_cache, {type, 1, Hkv, Dh, 100, 0, Hkv * Dh, H * Dh});
      };
      cases.push_back(store);
      // Decode: the split-K kernels (subgroup or shared-memory reduction), and the per-invocation
      // prefill kernel with one query, which the engine uses where the device takes it (CPUs).
      const bool decode_rows = plan_attention_prefill(ctx.caps(), shape, 1).kernel == PrefillKernel::Rows;
      for (uint32_t n_ctx : {512u, 4096u}) {
        BenchCase rows = make_case("attention_decode", format, kv + " n_ctx=" + std::to_string(n_ctx),
                                   std::string("rows") + (decode_rows ? "*" : ""));
        rows.bytes = 2 * n_ctx * row_bytes + uint64_t{H} * Dh * 8;
        rows.flops = 4.0 * H * Dh * n_ctx;
        const PrefillArgs one{shape, type, 1, n_ctx - 1, 0, H * Dh, H * Dh, 0.088388f};
        const PrefillPlan one_plan = plan_attention_prefill(ctx.caps(), shape, PrefillKernel::Rows, 1);
        rows.record = [=](CommandBuffer& cmd) { record_attention_prefill(cmd, q, k_cache, v_cache, out, one, one_plan); };
        cases.push_back(rows);
        for (Reduction reduction : {Reduction::Subgroup, Reduction::Shmem}) {
          if (reduction == Reduction::Subgroup && !ctx.caps().use_subgroup_reduce()) continue;
          DecodePlan plan = plan_attention_decode(ctx.caps(), shape, n_ctx);
          plan.reduction = reduction;
          const bool chosen = !decode_rows && (reduction == Reduction::Subgroup) == ctx.caps().use_subgroup_reduce();
          BenchCase c = make_case("attention_decode", format, kv + " n_ctx=" + std::to_string(n_ctx),
                                  std::string(reduction == Reduction::Subgroup ? "subgroup" : "shmem") + " splits=" +
                                      std::to_string(plan.splits) + (chosen ? "*" : ""));
          c.bytes = 2 * n_ctx * row_bytes + uint64_t{H} * Dh * 8;
          c.flops = 4.0 * H * Dh * n_ctx;
          const DecodeArgs args{shape, type, n_ctx, 0, 0, 0.088388f};
          c.record = [=](CommandBuffer& cmd) { record_attention_decode(cmd, q, k_cache, v_cache, partials, out, args, plan); };
          cases.push_back(c);
        }
      }
      // The chunk at the start, ending at 512 rows (ggml's FLASH_ATTN_EXT kv=512 nb=64 case, which
      // computes every key for every query) and ending at 4096.
      const PrefillKernel chosen = plan_attention_prefill(ctx.caps(), shape).kernel;
      for (uint32_t pos0 : {0u, 512u - chunk, max_ctx - chunk}) {
        for (PrefillKernel kernel : {PrefillKernel::Tiled, PrefillKernel::Rows}) {
          BenchCase c = make_case("attention_prefill", format, kv + " T=64 pos0=" + std::to_string(pos0),
                                  std::string(kernel == PrefillKernel::Rows ? "rows" : "tiled") +
                                      (kernel == chosen ? "*" : ""));
          c.bytes = 2 * uint64_t{pos0 + chunk} * row_bytes + uint64_t{chunk} * H * Dh * 8;
          c.flops = 4.0 * H * Dh * chunk * (pos0 + (chunk + 1) / 2.0);
          const PrefillArgs args{shape, type, chunk, pos0, 0, H * Dh, H * Dh, 0.088388f};
          const PrefillPlan plan = plan_attention_prefill(ctx.caps(), shape, kernel);
          c.record = [=](CommandBuffer& cmd) { record_attention_prefill(cmd, q, k_cache, v_cache, out, args, plan); };
          cases.push_back(c);
        }
      }
    }
  }
  return cases;
}

// THE table: builders run in order, each with a fresh arena. Kernel helpers append theirs.
std::vector<std::pair<std::string, CaseBuilder>> bench_table() {
  std::vector<std::pair<std::string, CaseBuilder>> table;
  for (DType dtype : kFormats) {
    table.emplace_back(std::string("matvec-") + dtype_name(dtype),
                       [dtype](Context& ctx, Arena& arena) { return add_matvec_cases(ctx, arena, dtype); });
  }
  for (DType dtype : kFormats) {
    table.emplace_back(std::string("moe-") + dtype_name(dtype),
                       [dtype](Context& ctx, Arena& arena) { return add_moe_cases(ctx, arena, dtype); });
  }
  for (DType dtype : kFormats) {
    table.emplace_back(std::string("matmul-") + dtype_name(dtype),
                       [dtype](Context& ctx, Arena& arena) { return add_matmul_cases(ctx, arena, dtype); });
  }
  table.emplace_back("norm-add", add_norm_cases);
  table.emplace_back("embed-argmax", add_embed_argmax_cases);
  table.emplace_back("attention", add_attention_cases);
  return table;
}

// ---- Timing -------------------------------------------------------------------------------

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Median GPU milliseconds of `reps` runs of `record`, after `warmup` untimed ones.
double time_ms(Context& ctx, const std::function<void(CommandBuffer&)>& record, const Options& o) {
  GpuProfiler profiler(ctx, static_cast<uint32_t>(o.reps));
  CommandBuffer cmd(ctx);
  cmd.begin();
  for (int i = 0; i < o.warmup; ++i) {
    record(cmd);
    barrier_compute_to_compute(cmd);
  }
  cmd.submit_and_wait();
  cmd.begin();
  profiler.reset(cmd);
  for (int i = 0; i < o.reps; ++i) {
    const uint32_t scope = profiler.begin(cmd, "run");
    record(cmd);
    barrier_compute_to_compute(cmd);  // runs do not overlap
    profiler.end(cmd, scope);
  }
  cmd.submit_and_wait();
  std::vector<double> ms;
  for (const auto& s : profiler.results()) ms.push_back(s.ms);
  return median(ms);
}

// copy_vec4 read+write GB/s over `bytes` (rounded to 16, at least 64 KiB), the best of
// o.reps runs of the runtime's bandwidth probe, cached per size.
double copy_gb_per_s(Context& ctx, uint64_t bytes, const Options& o) {
  static std::map<uint64_t, double> cache;
  bytes = std::clamp<uint64_t>(bytes / 16 * 16, 64 << 10, ctx.caps().max_storage_range / 16 * 16);
  if (auto it = cache.find(bytes); it != cache.end()) return it->second;
  return cache[bytes] = measure_copy_bandwidth(ctx, bytes, std::max(1, o.reps)).gb_per_s;
}

// ---- Output -------------------------------------------------------------------------------

std::string gflops_text(const BenchResult& r) {
  if (r.c.flops <= 0) return "-";
  char text[32];
  std::snprintf(text, sizeof text, "%.2f", r.gflops);
  return text;
}

// The table is printed row by row as cases finish, so a long run that fails late keeps
// what it measured.
void print_header(const Context& ctx, const Options& o) {
  std::printf("Device: %s%s%s; median of %d runs after %d warm-up\n\n", ctx.info().props.deviceName,
              ctx.caps().profile.empty() ? "" : ", profile ", ctx.caps().profile.c_str(), o.reps, o.warmup);
  std::printf("| kernel | format | shape | variant | ms | GB/s | GFLOP/s | copy GB/s | vs copy |\n");
  std::printf("|---|---|---|---|---:|---:|---:|---:|---:|\n");
  std::fflush(stdout);
}

void print_row(const BenchResult& r) {
  std::printf("| %s | %s | %s | %s | %.4f | %.2f | %s | %.2f | %.2f |\n", r.c.kernel.c_str(), r.c.format.c_str(),
              r.c.shape.c_str(), r.c.variant.c_str(), r.ms, r.gb_per_s, gflops_text(r).c_str(), r.copy_gb_per_s,
              r.gb_per_s / r.copy_gb_per_s);
  std::fflush(stdout);
}

void write_json(const std::string& path, const std::vector<BenchResult>& results) {
  std::ofstream out(path);
  if (!out) throw Error("cannot write " + path);
  out << "[\n";
  for (size_t i = 0; i < results.size(); ++i) {
    const BenchResult& r = results[i];
    out << "  {\"kernel\": \"" << r.c.kernel << "\", \"format\": \"" << r.c.format << "\", \"shape\": \"" << r.c.shape
        << "\", \"variant\": \"" << r.c.variant << "\", \"ms\": " << r.ms << ", \"bytes\": " << r.c.bytes
        << ", \"gb_per_s\": " << r.gb_per_s << ", \"gflops\": " << r.gflops
        << ", \"copy_gb_per_s\": " << r.copy_gb_per_s << "}" << (i + 1 < results.size() ? "," : "") << "\n";
  }
  out << "]\n";
}

void usage(FILE* out) {
  std::fprintf(out,
               "usage: megrez-kernel-bench [--device N|NAME] [--profile NAME|PATH] [--reps N] [--warmup N]\n"
               "                           [--filter TEXT[,TEXT...]] [--json FILE]\n"
               "  --device N|NAME   device index or name substring (default: MEGREZ_DEVICE, else best)\n"
               "  --profile P       cap device limits by a profile (default: MEGREZ_PROFILE)\n"
               "  --reps N          timed runs per case, median reported (default 20)\n"
               "  --warmup N        untimed runs first (default 3)\n"
               "  --filter T1,T2    only cases whose kernel or format contains one of the texts\n"
               "  --json FILE       also write the results as JSON\n");
}

bool selected(const BenchCase& c, const std::vector<std::string>& filters) {
  if (filters.empty()) return true;
  for (const std::string& f : filters) {
    if (c.kernel.find(f) != std::string::npos || c.format.find(f) != std::string::npos) return true;
  }
  return false;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw Error(arg + " needs a value");
      return argv[++i];
    };
    auto count = [&](int lo) {
      const std::string v = value();
      const int n = std::atoi(v.c_str());
      if (n < lo || std::to_string(n) != v) throw Error(arg + ": expected an integer >= " + std::to_string(lo) + ", got '" + v + "'");
      return n;
    };
    if (arg == "--device") o.context.device = value();
    else if (arg == "--profile") o.context.profile = value();
    else if (arg == "--reps") o.reps = count(1);
    else if (arg == "--warmup") o.warmup = count(0);
    else if (arg == "--filter") {
      o.filters = split_flag_list(value());
      std::erase(o.filters, std::string());  // "matvec,,moe" means the two names
    }
    else if (arg == "--json") o.json_path = value();
    else if (arg == "--help" || arg == "-h") {
      usage(stdout);
      std::exit(0);
    } else {
      usage(stderr);
      throw Error("unknown argument '" + arg + "'");
    }
  }
  return o;
}

int run(int argc, char** argv) {
  Options o = parse(argc, argv);
  // Whole-matrix kernels on a CPU driver (lavapipe) under load can take minutes per batch.
  o.context.gpu_timeout = std::chrono::minutes(10);
  Context ctx(o.context);
  if (!ctx.caps().timestamps) throw Error("the device's compute queue cannot write timestamps");
  print_header(ctx, o);
  std::vector<BenchResult> results;
  for (const auto& [family, build] : bench_table()) {
    Arena arena(ctx, "bench-" + family, MemoryUse::Device, 256 << 20);
    for (BenchCase& c : build(ctx, arena)) {
      if (!selected(c, o.filters)) continue;
      BenchResult r{c};
      r.ms = time_ms(ctx, c.record, o) / c.products;
      r.gb_per_s = double(c.bytes) / (r.ms * 1e6);
      r.gflops = c.flops / (r.ms * 1e6);
      r.copy_gb_per_s = copy_gb_per_s(ctx, c.bytes / 2, o);  // copy moves read + write = bytes
      print_row(r);
      results.push_back(std::move(r));
    }
  }
  if (!o.json_path.empty()) write_json(o.json_path, results);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "megrez-kernel-bench: %s\n", e.what());
    return 1;
  }
}
