#include "runtime/ops/moe.h"

#include <algorithm>
#include <limits>
#include <string>

#include "runtime/vk/context.h"
#include "shaders/abi/moe.h"
#include "shaders/abi/moe_combine.h"
#include "shaders/abi/moe_part_args.h"
#include "shaders/abi/moe_sort.h"
#include "shaders/abi/router.h"
#include "shaders/abi/swiglu.h"

namespace megrez {

namespace {

// ---- Argument checks (sizes in 64 bits) -----------------------------------------------------

void require(bool ok, const std::string& kernel, const std::string& what) {
  if (!ok) throw Error(kernel + ": " + what);
}

void require_bytes(const BufferRange& range, uint64_t needed, const std::string& kernel, const char* binding) {
  if (range.size < needed) {
    throw Error(kernel + ": " + binding + " binding holds " + std::to_string(range.size) + " bytes, needs " +
                std::to_string(needed));
  }
}

uint64_t floats(uint64_t a, uint64_t b = 1, uint64_t c = 1) { return a * b * c * 4; }  // operands < 2^32 each

// Quantized rows must be whole 32-weight blocks.
void require_cols(DType type, uint32_t cols, const std::string& kernel) {
  require(cols > 0, kernel, "zero columns");
  require(!dtype_is_quantized(type) || cols % kQuantBlock == 0, kernel,
          std::string(dtype_name(type)) + " rows must be a multiple of 32 columns, got " + std::to_string(cols));
}

void require_word_padded(const BufferRange& w, const std::string& kernel) {
  require(w.size % 4 == 0, kernel,
          "weight binding of " + std::to_string(w.size) + " bytes is not a multiple of 4 (the shader reads words)");
}

// ---- Launch shapes --------------------------------------------------------------------------

uint32_t fit_workgroup(const DeviceCaps& caps, uint32_t wanted) {
  return std::max(1u, std::min({wanted, caps.max_workgroup_invocations, caps.max_workgroup_size[0]}));
}

Specialization spec_1d(const DeviceCaps& caps, uint32_t workgroup, std::initializer_list<uint32_t> tile = {}) {
  Specialization spec{{workgroup, 1, 1}, {caps.subgroup_size}};
  spec.constants.insert(spec.constants.end(), tile.begin(), tile.end());
  return spec;
}

// Elementwise kernels: grid-stride loops, so the group count is capped.
Groups elementwise_groups(const DeviceCaps& caps, uint64_t count, uint32_t workgroup) {
  return {uint32_t(std::min<uint64_t>({(count + workgroup - 1) / workgroup, caps.max_workgroup_count[0], 4096}))};
}

// Decode products: a workgroup computes 4 rows (8 sums for gate/up), its 64 invocations
// striding over the rows' 8-weight quarters (256 per 2048-column row, 176 per 1408); each
// input quarter is loaded once for all rows. 1408 rows x 6 experts = 2112 workgroups.
constexpr uint32_t kMatvecWorkgroup = 64, kMatvecRows = 4;

std::vector<uint32_t> parts_to_dispatch(const ExpertSlots& slots, const MoeArgs& args, const std::string& kernel) {
  require(!slots.parts.empty() && slots.slots_per_part > 0, kernel, "the slot store has no parts");
  if (args.parts.empty()) {
    std::vector<uint32_t> all(slots.parts.size());
    for (uint32_t p = 0; p < all.size(); ++p) all[p] = p;
    return all;
  }
  for (uint32_t p : args.parts)
    require(p < slots.parts.size(), kernel,
            "part " + std::to_string(p) + " requested, the store has " + std::to_string(slots.parts.size()));
  return args.parts;
}

// Shared checks of the routed products; `down` selects which matrix is read.
abi::MoePush routed_push(const ExpertSlots& slots, const MoeArgs& args, bool down, const std::string& kernel) {
  const ExpertSlotLayout& l = slots.layout;
  require(args.tokens > 0 && args.top_k > 0 && args.n_experts > 0, kernel, "zero tokens, top_k or experts");
  require(l.dim > 0 && l.inter > 0, kernel, "empty expert layout");
  require_cols(down ? l.down : l.gate_up, down ? l.inter : l.dim, kernel);
  const uint32_t align = (down ? l.down : l.gate_up) == DType::F32 ? 4 : 2;  // f32 rows are read as words
  const uint32_t offset = down ? l.down_offset : l.gate_offset;
  require(l.slot_bytes % 4 == 0 && offset % align == 0 && (down || l.up_offset % align == 0), kernel,
          "matrix offsets in a slot must be multiples of " + std::to_string(align) +
              " bytes and the slot stride a multiple of 4");
  const uint64_t gate_bytes = uint64_t(row_bytes(l.gate_up, l.dim)) * l.inter;
  const uint64_t down_bytes = uint64_t(row_bytes(l.down, l.inter)) * l.dim;
  require(uint64_t{l.gate_offset} + gate_bytes <= l.slot_bytes && uint64_t{l.up_offset} + gate_bytes <= l.slot_bytes &&
              uint64_t{l.down_offset} + down_bytes <= l.slot_bytes,
          kernel, "a matrix extends past the slot (" + std::to_string(l.slot_bytes) + " bytes)");
  for (const BufferRange& part : slots.parts) {
    require_word_padded(part, kernel);
    require(part.size >= l.slot_bytes && part.size <= uint64_t{slots.slots_per_part} * l.slot_bytes, kernel,
            "a part of " + std::to_string(part.size) + " bytes does not hold 1.." + std::to_string(slots.slots_per_part) +
                " slots of " + std::to_string(l.slot_bytes));
  }
  abi::MoePush p{};
  p.tokens = args.tokens;
  p.top_k = args.top_k;
  p.n_experts = args.n_experts;
  p.rows = down ? l.dim : l.inter;
  p.cols = down ? l.inter : l.dim;
  p.matrix_offset = down ? l.down_offset : l.gate_offset;
  p.up_offset = l.up_offset;
  p.slot_bytes = l.slot_bytes;
  p.slots_per_part = slots.slots_per_part;
  return p;
}

// Launch of a decode product over `rows` output rows: workgroups (x) and the specialization.
struct ProductLaunch {
  uint32_t groups;
  Specialization spec;
};
ProductLaunch product_launch(const DeviceCaps& caps, const std::string& kernel, DType weights, uint32_t rows) {
  if (is_rows_kernel(kernel)) {
    const MatvecShape shape = matvec_shape(caps, true, moe_rows_per_invocation(weights, is_wide_kernel(kernel)));
    return {group_count(rows, shape.rows_per_group), spec_1d(caps, shape.workgroup)};
  }
  return {group_count(rows, kMatvecRows), spec_1d(caps, fit_workgroup(caps, kMatvecWorkgroup), {kMatvecRows})};
}

// The per-invocation variant `kernel` (name ending "_rows"), or its 16-byte-unit twin where
// every matrix of every slot starts on a 16-byte boundary of whole 8-block steps; either read
// x as a uniform buffer where the `x_bytes` read from the start of `x` fit one.
std::string rows_kernel_for(const DeviceCaps& caps, const std::string& kernel, DType weights, uint32_t cols,
                            std::initializer_list<uint64_t> first_row_offsets, const BufferRange& x, uint64_t x_bytes) {
  const bool wide = std::all_of(first_row_offsets.begin(), first_row_offsets.end(),
                                [&](uint64_t offset) { return matvec_wide_units_fit(weights, cols, offset); });
  return rows_twin(kernel, wide, row_input_uniform_fit(caps, x.offset, x_bytes));
}

// The input binding a variant reads: exactly the bytes read where it is a uniform buffer.
BufferRange input_binding(const std::string& kernel, const BufferRange& x, uint64_t x_bytes) {
  return is_uniform_input_kernel(kernel) ? x.slice(0, x_bytes) : x;
}

void record_routed_matvec(CommandBuffer& cmd, const ExpertSlots& slots, const MoeArgs& args, bool down,
                          const BufferRange& input, const BufferRange& ids, const BufferRange& slot_table,
                          const BufferRange& output, Reduce reduce) {
  const DeviceCaps& caps = cmd.context().caps();
  const DType type = down ? slots.layout.down : slots.layout.gate_up;
  const std::string kernel = moe_product_kernel(caps, slots, args, down, input, reduce);
  abi::MoePush p = routed_push(slots, args, down, kernel);
  const uint64_t entries = uint64_t{args.tokens} * args.top_k;
  const uint64_t input_bytes = floats(down ? entries : args.tokens, p.cols);
  require_bytes(input, input_bytes, kernel, down ? "hidden" : "x");
  require_bytes(ids, floats(entries), kernel, "ids");
  require_bytes(slot_table, floats(args.n_experts), kernel, "slot table");
  require_bytes(output, floats(entries, p.rows), kernel, down ? "y" : "hidden");
  const ProductLaunch launch = product_launch(caps, kernel, type, p.rows);
  const Pipeline& pipeline = cmd.context().pipeline(kernel, launch.spec);
  const bool indirect = args.indirect.buffer != VK_NULL_HANDLE;
  require(!indirect || (args.parts.empty() && args.indirect.size >= moe_part_args_bytes(slots.parts.size())), kernel,
          "indirect dispatch needs every part's arguments (record_moe_part_args) and no part list");
  for (uint32_t part : parts_to_dispatch(slots, args, kernel)) {
    p.part = part;
    const std::initializer_list<BufferRange> bindings{slots.parts[part], input_binding(kernel, input, input_bytes), ids,
                                                      slot_table, output};
    if (indirect) {
      const uint64_t first = uint64_t{part} * MOE_PART_ARGS_WORDS * 4 + (down ? 12 : 0);
      dispatch_indirect(cmd, pipeline, bindings, p, args.indirect.slice(first, 12));
    } else {
      dispatch(cmd, pipeline, bindings, p, {args.top_k, launch.groups, args.tokens});
    }
  }
}

}  // namespace

// ---- Decode products ----------------------------------------------------------------------

uint32_t moe_rows_per_invocation(DType weights, bool wide) {
  const bool few = weights == DType::F32 || (wide && weights == DType::Q8_0);
  return few ? abi::kMoeRowsPerInvocationFew : abi::kMoeRowsPerInvocation;
}

std::string moe_product_kernel(const DeviceCaps& caps, const ExpertSlots& slots, const MoeArgs& args, bool down,
                               const BufferRange& input, Reduce reduce) {
  const ExpertSlotLayout& l = slots.layout;
  const DType type = down ? l.down : l.gate_up;
  const uint32_t cols = down ? l.inter : l.dim;
  const std::string kernel = reduce_variant(caps, std::string(down ? "moe_down_" : "moe_gate_up_") + dtype_name(type),
                                            reduce, expert_rows_fit(slots, down, input));
  uint64_t parts_aligned = 0;  // any part off a 16-byte boundary makes this non-zero
  for (const BufferRange& part : slots.parts) parts_aligned |= part.offset % 16;
  const uint64_t input_rows = down ? uint64_t{args.tokens} * args.top_k : args.tokens;
  return rows_kernel_for(caps, kernel, type, cols,
                         {l.slot_bytes, parts_aligned, down ? l.down_offset : l.gate_offset, down ? 0 : l.up_offset},
                         input, floats(input_rows, cols));
}

bool expert_rows_fit(const ExpertSlots& slots, bool down, const BufferRange& input) {
  const ExpertSlotLayout& l = slots.layout;
  const DType type = down ? l.down : l.gate_up;
  const uint32_t cols = down ? l.inter : l.dim;
  std::vector<uint64_t> offsets{l.slot_bytes, down ? l.down_offset : l.gate_offset};
  if (!down) offsets.push_back(l.up_offset);
  for (const BufferRange& part : slots.parts) offsets.push_back(part.offset);
  return std::all_of(offsets.begin(), offsets.end(),
                     [&](uint64_t offset) { return rows_per_invocation_fit(type, cols, offset, input.offset); });
}

uint64_t moe_part_args_bytes(size_t parts) { return uint64_t{parts} * MOE_PART_ARGS_WORDS * 4; }

void record_moe_part_args(CommandBuffer& cmd, const ExpertSlots& slots, const MoeArgs& args, const BufferRange& ids,
                          const BufferRange& slot_table, const BufferRange& x, const BufferRange& hidden,
                          const BufferRange& args_out) {
  const DeviceCaps& caps = cmd.context().caps();
  const std::string kernel = "moe_part_args";
  require(args.tokens > 0 && args.top_k > 0 && args.n_experts > 0 && args.indirect.buffer == VK_NULL_HANDLE, kernel,
          "zero tokens, top_k or experts, or indirect arguments given");
  require(!slots.parts.empty() && slots.slots_per_part > 0, kernel, "the slot store has no parts");
  require_bytes(ids, floats(args.tokens, args.top_k), kernel, "ids");
  require_bytes(slot_table, floats(args.n_experts), kernel, "slot table");
  require_bytes(args_out, moe_part_args_bytes(slots.parts.size()), kernel, "args");
  // The grids the products will launch: the same choice as theirs.
  const auto groups = [&](bool down) {
    const DType type = down ? slots.layout.down : slots.layout.gate_up;
    const std::string product = moe_product_kernel(caps, slots, args, down, down ? hidden : x);
    return product_launch(caps, product, type, down ? slots.layout.dim : slots.layout.inter).groups;
  };
  const auto parts = uint32_t(slots.parts.size());
  const uint32_t workgroup = fit_workgroup(caps, 64);
  dispatch(cmd, cmd.context().pipeline(kernel, spec_1d(caps, workgroup)), {ids, slot_table, args_out},
           abi::MoePartArgsPush{args.tokens, args.top_k, args.n_experts, slots.slots_per_part, parts, groups(false),
                                groups(true)},
           {group_count(parts, workgroup)});
}

// ---- Router -------------------------------------------------------------------------------

void record_router(CommandBuffer& cmd, const RouterArgs& a, const BufferRange& pre_gate, const BufferRange& weight,
                   const BufferRange& bias, const BufferRange& ids, const BufferRange& weights,
                   const BufferRange& scores, Reduce reduce) {
  const DeviceCaps& caps = cmd.context().caps();
  const std::string kernel = reduce_variant(caps, std::string("router_") + dtype_name(a.weight_type), reduce);
  require(a.tokens > 0, kernel, "zero tokens");
  require_cols(a.weight_type, a.dim, kernel);
  require(a.n_experts >= 1 && a.n_experts <= ROUTER_MAX_EXPERTS, kernel,
          "n_experts " + std::to_string(a.n_experts) + " outside 1.." + std::to_string(ROUTER_MAX_EXPERTS));
  require(a.top_k >= 1 && a.top_k <= ROUTER_MAX_TOP_K && a.top_k <= a.n_experts, kernel,
          "top_k " + std::to_string(a.top_k) + " outside 1..min(" + std::to_string(ROUTER_MAX_TOP_K) + ", n_experts)");
  require(a.n_group >= 1 && a.n_experts % a.n_group == 0, kernel,
          "n_group " + std::to_string(a.n_group) + " does not divide n_experts " + std::to_string(a.n_experts));
  require(a.topk_group >= 1 && a.topk_group <= a.n_group, kernel,
          "topk_group " + std::to_string(a.topk_group) + " outside 1..n_group");
  require(uint64_t{a.top_k} <= uint64_t{a.topk_group} * (a.n_experts / a.n_group), kernel,
          "top_k " + std::to_string(a.top_k) + " exceeds the experts of the kept groups");
  require_word_padded(weight, kernel);
  require_bytes(weight, uint64_t(row_bytes(a.weight_type, a.dim)) * a.n_experts, kernel, "weight");
  require_bytes(pre_gate, floats(a.tokens, a.dim), kernel, "pre_gate");
  require_bytes(bias, floats(a.n_experts), kernel, "bias");
  require_bytes(ids, floats(a.tokens, a.top_k), kernel, "ids");
  require_bytes(weights, floats(a.tokens, a.top_k), kernel, "weights");
  require_bytes(scores, floats(a.tokens, a.n_experts), kernel, "scores");
  // One workgroup per token: 64 invocations split the row's blocks (2048 columns = 64 blocks).
  const Pipeline& pipeline = cmd.context().pipeline(kernel, spec_1d(caps, fit_workgroup(caps, 64)));
  dispatch(cmd, pipeline, {pre_gate, weight, bias, ids, weights, scores},
           abi::RouterPush{a.tokens, a.dim, a.n_experts, a.top_k, a.n_group, a.topk_group, a.norm_topk_prob ? 1u : 0u,
                           a.routed_scaling_factor},
           {a.tokens});
}

// ---- SwiGLU -------------------------------------------------------------------------------

void record_swiglu(CommandBuffer& cmd, const BufferRange& gate, const BufferRange& up, const BufferRange& hidden,
                   uint32_t count) {
  const DeviceCaps& caps = cmd.context().caps();
  require(count > 0, "swiglu", "zero elements");
  require_bytes(gate, floats(count), "swiglu", "gate");
  require_bytes(up, floats(count), "swiglu", "up");
  require_bytes(hidden, floats(count), "swiglu", "hidden");
  const uint32_t workgroup = fit_workgroup(caps, 256);
  dispatch(cmd, cmd.context().pipeline("swiglu", spec_1d(caps, workgroup)), {gate, up, hidden},
           abi::SwigluPush{count}, elementwise_groups(caps, count, workgroup));
}

void record_swiglu_fused(CommandBuffer& cmd, const SwigluFusedArgs& a, const BufferRange& weights,
                         const BufferRange& x, const BufferRange& hidden, Reduce reduce) {
  const DeviceCaps& caps = cmd.context().caps();
  const bool rows_fit = a.dim > 0 &&
                        rows_per_invocation_fit(a.weight_type, a.dim, weights.offset + a.gate_offset, x.offset) &&
                        rows_per_invocation_fit(a.weight_type, a.dim, weights.offset + a.up_offset, x.offset);
  const std::string base = std::string("swiglu_fused_") + dtype_name(a.weight_type);
  const std::string kernel =
      rows_kernel_for(caps, reduce_variant(caps, base, reduce, rows_fit), a.weight_type, a.dim,
                      {weights.offset + a.gate_offset, weights.offset + a.up_offset}, x, floats(a.tokens, a.dim));
  require(a.tokens > 0 && a.inter > 0, kernel, "zero tokens or rows");
  require_cols(a.weight_type, a.dim, kernel);
  const uint32_t align = a.weight_type == DType::F32 ? 4 : 2;  // f32 rows are read as words
  require(a.gate_offset % align == 0 && a.up_offset % align == 0, kernel,
          "gate/up offsets must be multiples of " + std::to_string(align) + " bytes");
  require_word_padded(weights, kernel);
  const uint64_t matrix = uint64_t(row_bytes(a.weight_type, a.dim)) * a.inter;
  require_bytes(weights, std::max(a.gate_offset, a.up_offset) + matrix, kernel, "weights");
  require_bytes(x, floats(a.tokens, a.dim), kernel, "x");
  require_bytes(hidden, floats(a.tokens, a.inter), kernel, "hidden");
  abi::MoePush p{};
  p.tokens = a.tokens;
  p.rows = a.inter;
  p.cols = a.dim;
  p.matrix_offset = a.gate_offset;
  p.up_offset = a.up_offset;
  const ProductLaunch launch = product_launch(caps, kernel, a.weight_type, a.inter);
  dispatch(cmd, cmd.context().pipeline(kernel, launch.spec),
           {weights, input_binding(kernel, x, floats(a.tokens, a.dim)), hidden}, p, {1, launch.groups, a.tokens});
}

// ---- Expert slots -------------------------------------------------------------------------

ExpertSlotLayout expert_slot_layout(DType gate_up, DType down, uint32_t dim, uint32_t inter) {
  auto round_up = [](uint64_t v, uint64_t m) { return (v + m - 1) / m * m; };
  const uint64_t gate_bytes = uint64_t(row_bytes(gate_up, dim)) * inter;
  const uint64_t down_bytes = uint64_t(row_bytes(down, inter)) * dim;
  const uint64_t up_offset = round_up(gate_bytes, 16);
  const uint64_t down_offset = round_up(up_offset + gate_bytes, 16);
  const uint64_t slot_bytes = round_up(down_offset + down_bytes, 256);
  if (slot_bytes > std::numeric_limits<uint32_t>::max())
    throw Error("expert slot of " + std::to_string(slot_bytes) + " bytes does not fit 32-bit offsets");
  return {gate_up, down, dim, inter, 0, uint32_t(up_offset), uint32_t(down_offset), uint32_t(slot_bytes)};
}

uint32_t expert_slots_per_part(const DeviceCaps& caps, const ExpertSlotLayout& layout) {
  if (layout.slot_bytes == 0) throw Error("expert slots: empty slot layout");
  const uint64_t n = caps.max_storage_range / layout.slot_bytes;
  if (n == 0)
    throw Error("expert slots: one slot of " + std::to_string(layout.slot_bytes) +
                " bytes exceeds the largest storage binding (" + std::to_string(caps.max_storage_range) + " bytes)");
  return uint32_t(std::min<uint64_t>(n, std::numeric_limits<uint32_t>::max() / layout.slot_bytes));
}

void record_moe_gate_up(CommandBuffer& cmd, const ExpertSlots& slots, const MoeArgs& args, const BufferRange& x,
                        const BufferRange& ids, const BufferRange& slot_table, const BufferRange& hidden,
                        Reduce reduce) {
  record_routed_matvec(cmd, slots, args, false, x, ids, slot_table, hidden, reduce);
}

void record_moe_down(CommandBuffer& cmd, const ExpertSlots& slots, const MoeArgs& args, const BufferRange& hidden,
                     const BufferRange& ids, const BufferRange& slot_table, const BufferRange& y, Reduce reduce) {
  record_routed_matvec(cmd, slots, args, true, hidden, ids, slot_table, y, reduce);
}

void record_moe_combine(CommandBuffer& cmd, const BufferRange& y, const BufferRange& weights,
                        const std::optional<BufferRange>& shared, const BufferRange& out, uint32_t tokens,
                        uint32_t top_k, uint32_t dim, bool accumulate) {
  const DeviceCaps& caps = cmd.context().caps();
  require(tokens > 0 && dim > 0, "moe_combine", "zero tokens or dim");
  require_bytes(y, floats(tokens, top_k, dim), "moe_combine", "y");
  require_bytes(weights, floats(tokens, top_k), "moe_combine", "weights");
  require_bytes(out, floats(tokens, dim), "moe_combine", "out");
  if (shared) require_bytes(*shared, floats(tokens, dim), "moe_combine", "shared");
  const uint32_t workgroup = fit_workgroup(caps, 256);
  dispatch(cmd, cmd.context().pipeline("moe_combine", spec_1d(caps, workgroup)), {y, weights, shared.value_or(y), out},
           abi::MoeCombinePush{tokens, top_k, dim, shared ? 1u : 0u, accumulate ? 1u : 0u},
           elementwise_groups(caps, uint64_t{tokens} * dim, workgroup));
}

// ---- Batched experts ------------------------------------------------------------------------

MoeMatmulShape moe_matmul_shape(const DeviceCaps& caps) {
  // Largest first: more rows per tile re-read fewer inputs, more entries per tile decode each
  // weight block for more tokens (a 512-token chunk gives an expert ~48 entries on average).
  static const MoeMatmulShape candidates[] = {
      {64, 32, 4, 8},  // 64 invocations, 20.5 KiB
      {32, 32, 4, 8},  // 32 invocations, 12.5 KiB: the "minimum" profile
      {16, 16, 4, 4},  // 16 invocations, 6.4 KiB
  };
  for (const MoeMatmulShape& s : candidates) {
    if (s.workgroup() <= caps.max_workgroup_invocations && s.workgroup() <= caps.max_workgroup_size[0] &&
        s.shared_bytes() <= caps.max_shared_memory)
      return s;
  }
  throw Error("moe matmul: no tile fits " + std::to_string(caps.max_shared_memory) + " bytes of shared memory");
}

uint32_t moe_max_tiles(uint32_t entries, uint32_t n_experts, uint32_t tile_tokens) {
  // Each expert with n entries needs ceil(n / tile) <= n / tile + 1 tiles, and only experts
  // that have entries need any.
  return (entries + tile_tokens - 1) / tile_tokens + std::min(entries, n_experts);
}

MoeBatchScratch allocate_moe_batch_scratch(Arena& arena, const DeviceCaps& caps, uint32_t entries, uint32_t n_experts) {
  require(entries > 0 && n_experts > 0 && n_experts <= MOE_SORT_MAX_EXPERTS, "moe_sort",
          "need 1.." + std::to_string(MOE_SORT_MAX_EXPERTS) + " experts and entries > 0");
  MoeBatchScratch s;
  s.entries = entries;
  s.n_experts = n_experts;
  s.tile_tokens = moe_matmul_shape(caps).tile_tokens;
  s.max_tiles = moe_max_tiles(entries, n_experts, s.tile_tokens);
  s.expert_offsets = arena.allocate(floats(n_experts + 1u));
  s.sorted = arena.allocate(floats(entries));
  s.tiles = arena.allocate(floats(1u + uint64_t{MOE_TILE_WORDS} * s.max_tiles));
  return s;
}

void record_moe_sort(CommandBuffer& cmd, const BufferRange& ids, const MoeBatchScratch& s) {
  const DeviceCaps& caps = cmd.context().caps();
  require(s.entries > 0 && s.n_experts > 0 && s.n_experts <= MOE_SORT_MAX_EXPERTS && s.tile_tokens > 0, "moe_sort",
          "invalid scratch (use allocate_moe_batch_scratch)");
  require(s.max_tiles >= moe_max_tiles(s.entries, s.n_experts, s.tile_tokens), "moe_sort", "tile list too short");
  require_bytes(ids, floats(s.entries), "moe_sort", "ids");
  require_bytes(s.expert_offsets, floats(s.n_experts + 1u), "moe_sort", "expert_offsets");
  require_bytes(s.sorted, floats(s.entries), "moe_sort", "sorted");
  require_bytes(s.tiles, floats(1u + uint64_t{MOE_TILE_WORDS} * s.max_tiles), "moe_sort", "tiles");
  const uint32_t workgroup = fit_workgroup(caps, 256);  // one invocation per expert when E <= 256
  dispatch(cmd, cmd.context().pipeline("moe_sort", spec_1d(caps, workgroup)), {ids, s.expert_offsets, s.sorted, s.tiles},
           abi::MoeSortPush{s.entries, s.n_experts, s.tile_tokens, s.max_tiles}, {1});
}

namespace {

void record_routed_matmul(CommandBuffer& cmd, const ExpertSlots& slots, const MoeArgs& args, bool down,
                          const BufferRange& input, const BufferRange& slot_table, const MoeBatchScratch& s,
                          const BufferRange& output, MatmulKernel choice) {
  const DeviceCaps& caps = cmd.context().caps();
  const DType type = down ? slots.layout.down : slots.layout.gate_up;
  const bool rows_fit = expert_rows_fit(slots, down, input);
  const std::string base = std::string(down ? "moe_down_mm_" : "moe_gate_up_mm_") + dtype_name(type);
  const bool rows = matmul_uses_rows(caps, choice, rows_fit, base + "_rows");
  const std::string kernel = rows ? rows_twin(base + "_rows", false, false, rows_input_shuffle_fit(caps, type)) : base;
  abi::MoePush p = routed_push(slots, args, down, kernel);
  const uint64_t entries = uint64_t{args.tokens} * args.top_k;
  require(s.entries == entries && s.n_experts == args.n_experts, kernel,
          "the grouping was made for " + std::to_string(s.entries) + " entries of " + std::to_string(s.n_experts) +
              " experts, not " + std::to_string(entries) + " of " + std::to_string(args.n_experts));
  require_bytes(input, floats(down ? entries : args.tokens, p.cols), kernel, down ? "hidden" : "x");
  require_bytes(slot_table, floats(args.n_experts), kernel, "slot table");
  require_bytes(output, floats(entries, p.rows), kernel, down ? "y" : "hidden");
  p.max_tiles = s.max_tiles;
  if (rows) {
    const MatvecShape shape = matvec_shape(caps, true, kMatmulRowsPerInvocation);
    const Pipeline& pipeline = cmd.context().pipeline(kernel, spec_1d(caps, shape.workgroup));
    for (uint32_t part : parts_to_dispatch(slots, args, kernel)) {
      p.part = part;
      dispatch(cmd, pipeline, {slots.parts[part], input, slot_table, s.sorted, s.tiles, output}, p,
               {s.max_tiles, group_count(p.rows, shape.rows_per_group), 1});
    }
    return;
  }
  const MoeMatmulShape shape = moe_matmul_shape(caps);
  const Pipeline& pipeline = cmd.context().pipeline(
      kernel, spec_1d(caps, shape.workgroup(), {shape.tile_rows, shape.tile_tokens, shape.thread_rows, shape.thread_tokens}));
  for (uint32_t part : parts_to_dispatch(slots, args, kernel)) {
    p.part = part;
    dispatch(cmd, pipeline, {slots.parts[part], input, slot_table, s.sorted, s.tiles, output}, p,
             {s.max_tiles, group_count(p.rows, shape.tile_rows), 1});
  }
}

}  // namespace

void record_moe_gate_up_batched(CommandBuffer& cmd, const ExpertSlots& slots, const MoeArgs& args,
                                const BufferRange& x, const BufferRange& slot_table, const MoeBatchScratch& scratch,
                                const BufferRange& hidden, MatmulKernel kernel) {
  record_routed_matmul(cmd, slots, args, false, x, slot_table, scratch, hidden, kernel);
}

void record_moe_down_batched(CommandBuffer& cmd, const ExpertSlots& slots, const MoeArgs& args,
                             const BufferRange& hidden, const BufferRange& slot_table,
                             const MoeBatchScratch& scratch, const BufferRange& y, MatmulKernel kernel) {
  record_routed_matmul(cmd, slots, args, true, hidden, slot_table, scratch, y, kernel);
}

}  // namespace megrez
