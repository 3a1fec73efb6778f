// Recording the attention kernels (see attention_ops.h): argument checks, variant choice and
// tile shapes from DeviceCaps, dispatch.
#include "runtime/ops/attention.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "loader/error.h"
#include "runtime/vk/context.h"
#include "runtime/vk/dispatch.h"
#include "shaders/abi/attention_combine.h"
#include "shaders/abi/attention_decode.h"
#include "shaders/abi/attention_prefill.h"
#include "shaders/abi/kv_store.h"
#include "shaders/abi/rope.h"

namespace megrez {

namespace {

// Decode asks for about this many workgroups so wide GPUs have work for every core; a split
// is never shorter than two tiles, so short contexts do not pay for partials they do not need.
constexpr uint32_t kDecodeTargetWorkgroups = 256;
constexpr uint32_t kDecodeMinTilesPerSplit = 2;
constexpr uint32_t kCombineWorkgroup = 64;
constexpr uint32_t kPrefillRowsWorkgroup = 32;  // per-invocation prefill: invocations per workgroup

void require(bool ok, const char* kernel, const std::string& message) {
  if (!ok) throw Error(std::string(kernel) + ": " + message);
}

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

// The largest 1-D workgroup the device allows, capped at 128 (the minimum profile's limit,
// and where these kernels stop gaining from more invocations).
uint32_t workgroup_size(const DeviceCaps& caps) {
  return std::min({128u, caps.max_workgroup_invocations, caps.max_workgroup_size[0]});
}

void check_shape(const AttentionShape& s, const char* kernel) {
  require(s.q_heads > 0 && s.kv_heads > 0 && s.q_heads % s.kv_heads == 0, kernel,
          "q_heads (" + std::to_string(s.q_heads) + ") must be a positive multiple of kv_heads (" +
              std::to_string(s.kv_heads) + ")");
  require(s.head_dim > 0 && s.head_dim % 2 == 0, kernel,
          "head_dim must be even and positive, got " + std::to_string(s.head_dim));
}

// Checks that `range` holds `bytes` (computed in 64 bits by the caller).
void check_bytes(const BufferRange& range, uint64_t bytes, const char* kernel, const char* what) {
  require(range.size >= bytes, kernel,
          std::string(what) + " buffer holds " + std::to_string(range.size) + " bytes, needs " + std::to_string(bytes));
}

// Floats a [tokens, row_stride] operand starting at `offset` needs: the last row's `width`.
uint64_t rows_floats(uint64_t offset, uint64_t tokens, uint64_t row_stride, uint64_t width) {
  return offset + (tokens - 1) * row_stride + width;
}

const char* kv_suffix(KvType type) { return type == KvType::F16 ? "_f16" : "_f32"; }

uint64_t decode_shared_bytes(uint32_t head_block, uint32_t head_dim, uint32_t workgroup) {
  return uint64_t{head_block} * head_dim * 4      // q_shared
         + uint64_t{head_block} * workgroup * 4;  // tile_values
}

uint64_t prefill_shared_bytes(uint32_t rows, uint32_t key_tile, uint32_t head_dim) {
  return uint64_t{rows} * head_dim * 4        // q_tile
         + uint64_t{key_tile} * head_dim * 4  // kv_tile
         + uint64_t{rows} * key_tile * 4      // scores
         + uint64_t{rows} * 2 * 4;            // row_alpha, row_sum
}

// Both attention kernels give each invocation one output pair of a head in their P V step.
void check_head_dim_fits(const AttentionShape& shape, uint32_t workgroup, const char* kernel) {
  require(shape.head_dim / 2 <= workgroup, kernel,
          "head_dim " + std::to_string(shape.head_dim) + " is above twice the workgroup size " +
              std::to_string(workgroup));
}

uint32_t decode_max_head_block(const DeviceCaps& caps, const AttentionShape& shape, uint32_t workgroup) {
  uint32_t head_block = shape.q_heads / shape.kv_heads;
  while (head_block > 1 && decode_shared_bytes(head_block, shape.head_dim, workgroup) > caps.max_shared_memory) {
    head_block = (head_block + 1) / 2;
  }
  require(decode_shared_bytes(head_block, shape.head_dim, workgroup) <= caps.max_shared_memory, "attention_decode",
          "head_dim " + std::to_string(shape.head_dim) + " does not fit " + std::to_string(caps.max_shared_memory) +
              " bytes of shared memory");
  return head_block;
}

// Splits cap: enough for kDecodeTargetWorkgroups, with at least one workgroup per block.
uint32_t decode_max_splits(const AttentionShape& shape, uint32_t head_block) {
  const uint64_t head_blocks = ceil_div(shape.q_heads / shape.kv_heads, head_block);
  return static_cast<uint32_t>(std::max<uint64_t>(1, kDecodeTargetWorkgroups / (shape.kv_heads * head_blocks)));
}

}  // namespace

VkDeviceSize kv_cache_row_bytes(KvType type, uint32_t kv_heads, uint32_t head_dim) {
  return VkDeviceSize{kv_heads} * head_dim * (type == KvType::F16 ? 2 : 4);
}

std::vector<uint32_t> rope_frequency_table(double theta, uint32_t head_dim) {
  require(std::isfinite(theta) && theta > 0, "rope", "theta must be positive and finite, got " + std::to_string(theta));
  require(head_dim > 0 && head_dim % 2 == 0, "rope", "head_dim must be even and positive, got " + std::to_string(head_dim));
  const long double two_pi = 6.283185307179586476925286766559L;
  std::vector<uint32_t> table;
  table.reserve(head_dim);
  for (uint32_t i = 0; i < head_dim / 2; ++i) {
    const long double turns = std::pow(static_cast<long double>(theta), -2.0L * i / head_dim) / two_pi;
    // Only the fraction matters (whole turns drop out); it is below 1/(2 pi) unless theta < 1.
    const long double fraction = turns - std::floor(turns);
    const long double scaled = std::round(std::ldexp(fraction, 64));
    // A fraction within 2^-65 of 1 rounds to 2^64, which is 0 turns.
    const uint64_t fixed = scaled >= std::ldexp(1.0L, 64) ? 0 : static_cast<uint64_t>(scaled);
    table.push_back(static_cast<uint32_t>(fixed));
    table.push_back(static_cast<uint32_t>(fixed >> 32));
  }
  return table;
}

// ---- RoPE ----------------------------------------------------------------------------------

void record_rope(CommandBuffer& cmd, const BufferRange& x, const BufferRange& table, const RopeArgs& a) {
  check_shape({a.heads, a.heads, a.head_dim}, "rope");
  require(a.tokens > 0, "rope", "tokens must be positive");
  require(a.tokens == 1 || a.row_stride >= uint64_t{a.heads} * a.head_dim, "rope",
          "row_stride " + std::to_string(a.row_stride) + " is shorter than heads * head_dim");
  const uint64_t pairs = uint64_t{a.tokens} * a.heads * (a.head_dim / 2);
  require(pairs < (uint64_t{1} << 32), "rope", "too many elements for one dispatch");
  require(uint64_t{a.pos0} + a.tokens <= (uint64_t{1} << 32), "rope", "positions overflow 32 bits");
  check_bytes(x, 4 * rows_floats(a.offset, a.tokens, a.row_stride, uint64_t{a.heads} * a.head_dim), "rope", "x");
  check_bytes(table, uint64_t{a.head_dim} * 4, "rope", "frequency table");
  Context& ctx = cmd.context();
  const uint32_t workgroup = workgroup_size(ctx.caps());
  const Pipeline& pipeline = ctx.pipeline("rope", Specialization{{workgroup, 1, 1}, {}});
  const uint32_t groups = std::min(group_count(pairs, workgroup), ctx.caps().max_workgroup_count[0]);
  dispatch(cmd, pipeline, {x, table},
           abi::RopePush{a.tokens, a.heads, a.head_dim, a.offset, a.row_stride, a.pos0}, {groups});
}

// ---- RoPE(K) + KV store --------------------------------------------------------------------

void record_kv_store(CommandBuffer& cmd, const BufferRange& k_src, const BufferRange& v_src, const BufferRange& table,
                     const BufferRange& k_cache, const BufferRange& v_cache, const KvStoreArgs& a) {
  check_shape({a.kv_heads, a.kv_heads, a.head_dim}, "kv_store");
  require(a.tokens > 0, "kv_store", "tokens must be positive");
  const uint64_t row_width = uint64_t{a.kv_heads} * a.head_dim;
  require(a.tokens == 1 || a.src_row_stride >= row_width, "kv_store",
          "src_row_stride " + std::to_string(a.src_row_stride) + " is shorter than kv_heads * head_dim");
  const uint64_t pairs = uint64_t{a.tokens} * row_width / 2;
  require(pairs < (uint64_t{1} << 32), "kv_store", "too many elements for one dispatch");
  check_bytes(k_src, 4 * rows_floats(a.k_offset, a.tokens, a.src_row_stride, row_width), "kv_store", "K source");
  check_bytes(v_src, 4 * rows_floats(a.v_offset, a.tokens, a.src_row_stride, row_width), "kv_store", "V source");
  check_bytes(table, uint64_t{a.head_dim} * 4, "kv_store", "frequency table");
  const uint64_t q_width = uint64_t{a.q_heads} * a.head_dim;
  if (a.q_heads > 0) {
    check_bytes(k_src, 4 * rows_floats(a.q_offset, a.tokens, a.src_row_stride, q_width), "kv_store", "q");
    const auto apart = [&](uint32_t offset) {
      return a.q_offset + q_width <= offset || uint64_t{offset} + row_width <= a.q_offset;
    };
    require(apart(a.k_offset) && (v_src.buffer != k_src.buffer || v_src.offset != k_src.offset || apart(a.v_offset)),
            "kv_store", "q overlaps K or V in the source rows");
    require(a.tokens == 1 || a.src_row_stride >= q_width, "kv_store", "src_row_stride is shorter than q's row");
  }
  const uint64_t pairs_with_q = pairs + uint64_t{a.tokens} * q_width / 2;
  require(pairs_with_q < (uint64_t{1} << 32), "kv_store", "too many elements for one dispatch");
  const uint64_t cache_bytes = (uint64_t{a.pos0} + a.tokens) * kv_cache_row_bytes(a.type, a.kv_heads, a.head_dim);
  check_bytes(k_cache, cache_bytes, "kv_store", "K cache (rows up to pos0 + tokens)");
  check_bytes(v_cache, cache_bytes, "kv_store", "V cache (rows up to pos0 + tokens)");
  Context& ctx = cmd.context();
  const uint32_t workgroup = workgroup_size(ctx.caps());
  const Pipeline& pipeline =
      ctx.pipeline(std::string("kv_store") + kv_suffix(a.type), Specialization{{workgroup, 1, 1}, {}});
  const uint32_t groups = std::min(group_count(pairs_with_q, workgroup), ctx.caps().max_workgroup_count[0]);
  dispatch(cmd, pipeline, {k_src, v_src, table, k_cache, v_cache, k_src},
           abi::KvStorePush{a.tokens, a.kv_heads, a.head_dim, a.pos0, a.k_offset, a.v_offset, a.src_row_stride,
                            a.q_heads, a.q_offset},
           {groups});
}

// ---- Decode --------------------------------------------------------------------------------

DecodePlan plan_attention_decode(const DeviceCaps& caps, const AttentionShape& shape, uint32_t n_ctx) {
  check_shape(shape, "attention_decode");
  require(n_ctx > 0, "attention_decode", "n_ctx must be positive");
  DecodePlan plan;
  plan.workgroup = workgroup_size(caps);
  check_head_dim_fits(shape, plan.workgroup, "attention_decode");
  plan.head_block = decode_max_head_block(caps, shape, plan.workgroup);
  const uint64_t min_chunk = uint64_t{kDecodeMinTilesPerSplit} * plan.workgroup;
  const uint64_t splits = std::clamp<uint64_t>(ceil_div(n_ctx, min_chunk), 1, decode_max_splits(shape, plan.head_block));
  // Chunks are whole tiles; recount the splits so none is empty.
  plan.chunk = static_cast<uint32_t>(ceil_div(ceil_div(n_ctx, splits), plan.workgroup) * plan.workgroup);
  plan.splits = static_cast<uint32_t>(ceil_div(n_ctx, plan.chunk));
  return plan;
}

VkDeviceSize attention_decode_partials_bytes(const AttentionShape& shape, const DecodePlan& plan) {
  return VkDeviceSize{plan.splits} * shape.q_heads * (shape.head_dim + 2) * 4;
}

VkDeviceSize attention_decode_max_partials_bytes(const DeviceCaps& caps, const AttentionShape& shape,
                                                 uint32_t max_ctx) {
  // A plan's split count is at most its first estimate, which grows with n_ctx up to the cap;
  // the recount after rounding chunks to whole tiles can make a longer context use fewer
  // splits than a shorter one, so bound the estimate rather than plan max_ctx itself.
  const DecodePlan plan = plan_attention_decode(caps, shape, max_ctx);
  DecodePlan bound = plan;
  bound.splits = static_cast<uint32_t>(std::clamp<uint64_t>(
      ceil_div(max_ctx, uint64_t{kDecodeMinTilesPerSplit} * plan.workgroup), 1, decode_max_splits(shape, plan.head_block)));
  return attention_decode_partials_bytes(shape, bound);
}

void record_attention_decode(CommandBuffer& cmd, const BufferRange& q, const BufferRange& k_cache,
                             const BufferRange& v_cache, const BufferRange& partials, const BufferRange& out,
                             const DecodeArgs& args) {
  const DecodePlan plan = plan_attention_decode(cmd.context().caps(), args.shape, args.n_ctx);
  record_attention_decode(cmd, q, k_cache, v_cache, partials, out, args, plan);
}

void record_attention_decode(CommandBuffer& cmd, const BufferRange& q, const BufferRange& k_cache,
                             const BufferRange& v_cache, const BufferRange& partials, const BufferRange& out,
                             const DecodeArgs& a, const DecodePlan& plan) {
  const char* kernel = "attention_decode";
  const AttentionShape& s = a.shape;
  check_shape(s, kernel);
  Context& ctx = cmd.context();
  const DeviceCaps& caps = ctx.caps();
  const uint32_t group_size = s.q_heads / s.kv_heads;
  require(a.n_ctx > 0, kernel, "n_ctx must be positive");
  require(plan.workgroup > 0 && plan.head_block > 0 && plan.head_block <= group_size && plan.chunk > 0, kernel,
          "plan has an empty workgroup, chunk or head block, or a head block above H / Hkv");
  require(uint64_t{plan.splits} * plan.chunk >= a.n_ctx && uint64_t{plan.splits - 1} * plan.chunk < a.n_ctx, kernel,
          "plan splits " + std::to_string(plan.splits) + " x chunk " + std::to_string(plan.chunk) +
              " do not cover n_ctx " + std::to_string(a.n_ctx) + " with every split non-empty");
  require(decode_shared_bytes(plan.head_block, s.head_dim, plan.workgroup) <= caps.max_shared_memory, kernel,
          "plan needs more shared memory than the device has");
  check_head_dim_fits(s, plan.workgroup, kernel);
  const uint64_t qkv_floats = uint64_t{s.q_heads} * s.head_dim;
  check_bytes(q, 4 * (uint64_t{a.q_offset} + qkv_floats), kernel, "q");
  check_bytes(out, 4 * (uint64_t{a.out_offset} + qkv_floats), kernel, "out");
  const uint64_t cache_bytes = uint64_t{a.n_ctx} * kv_cache_row_bytes(a.type, s.kv_heads, s.head_dim);
  check_bytes(k_cache, cache_bytes, kernel, "K cache (n_ctx rows)");
  check_bytes(v_cache, cache_bytes, kernel, "V cache (n_ctx rows)");
  if (plan.splits > 1) check_bytes(partials, attention_decode_partials_bytes(s, plan), kernel, "partials");

  bool subgroup = caps.use_subgroup_reduce();
  if (plan.reduction != Reduction::Auto) subgroup = plan.reduction == Reduction::Subgroup;
  require(!subgroup || caps.use_subgroup_reduce(), kernel, "subgroup reduction forced on a device without it");
  const std::string name = std::string(kernel) + kv_suffix(a.type) + (subgroup ? "" : "_shmem");
  const Pipeline& pipeline =
      ctx.pipeline(name, Specialization{{plan.workgroup, 1, 1}, {caps.subgroup_size, s.head_dim, plan.head_block}});
  const uint32_t head_blocks = static_cast<uint32_t>(ceil_div(group_size, plan.head_block));
  // One split writes the output itself: no combine (nor its barrier).
  dispatch(cmd, pipeline, {q, k_cache, v_cache, plan.splits == 1 ? out : partials},
           abi::AttentionDecodePush{a.n_ctx, s.q_heads, s.kv_heads, a.q_offset, plan.chunk, plan.splits, a.scale,
                                    a.out_offset},
           {plan.splits, s.kv_heads * head_blocks});
  if (plan.splits == 1) return;
  barrier_compute_to_compute(cmd);
  const uint32_t combine_workgroup = std::min(kCombineWorkgroup, workgroup_size(caps));
  const Pipeline& combine = ctx.pipeline("attention_combine", Specialization{{combine_workgroup, 1, 1}, {}});
  dispatch(cmd, combine, {partials, out},
           abi::AttentionCombinePush{plan.splits, s.q_heads, s.head_dim, a.out_offset}, {s.q_heads});
}

// ---- Prefill -------------------------------------------------------------------------------

PrefillPlan plan_attention_prefill(const DeviceCaps& caps, const AttentionShape& shape, uint32_t tokens) {
  check_shape(shape, "attention_prefill");
  const bool rows_fit = shape.head_dim % 8 == 0 && shape.q_heads / shape.kv_heads <= kPrefillRowsWorkgroup &&
                        shape.q_heads / shape.kv_heads <= caps.max_workgroup_invocations;
  return plan_attention_prefill(
      caps, shape, caps.sum_rows_per_invocation() && rows_fit ? PrefillKernel::Rows : PrefillKernel::Tiled, tokens);
}

PrefillPlan plan_attention_prefill(const DeviceCaps& caps, const AttentionShape& shape, PrefillKernel kernel,
                                   uint32_t tokens) {
  check_shape(shape, "attention_prefill");
  if (kernel == PrefillKernel::Rows) {
    // One workgroup: the kv head's whole group of query heads times as many queries as make
    // about kPrefillRowsWorkgroup invocations (32: 8 queries x 4 heads at Megrez2's GQA).
    const uint32_t group_size = shape.q_heads / shape.kv_heads;
    require(shape.head_dim % 8 == 0, "attention_prefill_rows", "head_dim must be a multiple of 8");
    PrefillPlan plan;
    plan.kernel = PrefillKernel::Rows;
    plan.head_block = group_size;
    plan.query_block = std::max(1u, std::min(kPrefillRowsWorkgroup, caps.max_workgroup_invocations) / group_size);
    if (tokens > 0) plan.query_block = std::min(plan.query_block, tokens);
    plan.workgroup = group_size * plan.query_block;
    require(plan.workgroup <= caps.max_workgroup_invocations && plan.workgroup <= caps.max_workgroup_size[0],
            "attention_prefill_rows", "H / Hkv query heads exceed one workgroup");
    return plan;
  }
  const uint32_t group_size = shape.q_heads / shape.kv_heads;
  PrefillPlan plan;
  plan.workgroup = workgroup_size(caps);  // >= 128 on every Vulkan device: rows and key tiles fit
  check_head_dim_fits(shape, plan.workgroup, "attention_prefill");
  // Most query rows first (each K/V tile is reused by every row), then the longest key tile.
  for (uint32_t rows : {32u, 16u, 8u, 4u, 2u, 1u}) {
    for (uint32_t key_tile : {32u, 16u, 8u, 4u}) {
      plan.head_block = std::min(group_size, rows);
      plan.query_block = std::max(1u, rows / plan.head_block);
      plan.key_tile = key_tile;
      if (prefill_shared_bytes(plan.head_block * plan.query_block, key_tile, shape.head_dim) <= caps.max_shared_memory) {
        return plan;
      }
    }
  }
  throw Error("attention_prefill: head_dim " + std::to_string(shape.head_dim) + " does not fit " +
              std::to_string(caps.max_shared_memory) + " bytes of shared memory");
}

void record_attention_prefill(CommandBuffer& cmd, const BufferRange& q, const BufferRange& k_cache,
                              const BufferRange& v_cache, const BufferRange& out, const PrefillArgs& args) {
  record_attention_prefill(cmd, q, k_cache, v_cache, out, args,
                           plan_attention_prefill(cmd.context().caps(), args.shape));
}

void record_attention_prefill(CommandBuffer& cmd, const BufferRange& q, const BufferRange& k_cache,
                              const BufferRange& v_cache, const BufferRange& out, const PrefillArgs& a,
                              const PrefillPlan& plan) {
  const bool rows = plan.kernel == PrefillKernel::Rows;
  const char* kernel = rows ? "attention_prefill_rows" : "attention_prefill";
  const AttentionShape& s = a.shape;
  check_shape(s, kernel);
  Context& ctx = cmd.context();
  const DeviceCaps& caps = ctx.caps();
  const uint32_t group_size = s.q_heads / s.kv_heads;
  require(a.tokens > 0, kernel, "tokens must be positive");
  const uint64_t row_width = uint64_t{s.q_heads} * s.head_dim;
  require(a.tokens == 1 || (a.q_row_stride >= row_width && a.out_row_stride >= row_width), kernel,
          "q_row_stride and out_row_stride must be at least q_heads * head_dim");
  check_bytes(q, 4 * rows_floats(a.q_offset, a.tokens, a.q_row_stride, row_width), kernel, "q");
  check_bytes(out, 4 * rows_floats(0, a.tokens, a.out_row_stride, row_width), kernel, "out");
  const uint64_t cache_bytes = (uint64_t{a.pos0} + a.tokens) * kv_cache_row_bytes(a.type, s.kv_heads, s.head_dim);
  check_bytes(k_cache, cache_bytes, kernel, "K cache (rows up to pos0 + tokens)");
  check_bytes(v_cache, cache_bytes, kernel, "V cache (rows up to pos0 + tokens)");
  const abi::AttentionPrefillPush push{a.tokens, a.pos0, s.q_heads, s.kv_heads, a.q_offset, a.q_row_stride,
                                       a.out_row_stride, a.scale};
  if (rows) {
    require(s.head_dim % 8 == 0 && plan.head_block == group_size && plan.query_block > 0 &&
                plan.workgroup == group_size * plan.query_block && plan.workgroup <= caps.max_workgroup_invocations,
            kernel, "plan must cover the whole group of H / Hkv query heads in one workgroup, head_dim % 8 == 0");
    const Pipeline& pipeline = ctx.pipeline(std::string(kernel) + kv_suffix(a.type),
                                            Specialization{{plan.workgroup, 1, 1}, {caps.subgroup_size, s.head_dim, group_size}});
    dispatch(cmd, pipeline, {q, k_cache, v_cache, out}, push,
             {group_count(a.tokens, plan.query_block), s.kv_heads});
    return;
  }
  require(plan.workgroup > 0 && plan.head_block > 0 && plan.head_block <= group_size && plan.query_block > 0 &&
              plan.key_tile > 0,
          kernel, "plan has an empty tile or a head block above H / Hkv");
  require(prefill_shared_bytes(plan.head_block * plan.query_block, plan.key_tile, s.head_dim) <= caps.max_shared_memory,
          kernel, "plan needs more shared memory than the device has");
  require(uint64_t{plan.head_block} * plan.query_block <= plan.workgroup && plan.key_tile <= plan.workgroup, kernel,
          "plan has more query rows or keys per tile than invocations");
  check_head_dim_fits(s, plan.workgroup, kernel);

  const Pipeline& pipeline = ctx.pipeline(
      std::string(kernel) + kv_suffix(a.type),
      Specialization{{plan.workgroup, 1, 1},
                     {caps.subgroup_size, s.head_dim, plan.head_block, plan.query_block, plan.key_tile}});
  const uint32_t head_blocks = static_cast<uint32_t>(ceil_div(group_size, plan.head_block));
  dispatch(cmd, pipeline, {q, k_cache, v_cache, out}, push,
           {group_count(a.tokens, plan.query_block), s.kv_heads * head_blocks});
}

}  // namespace megrez
