#include "runtime/ops/linear.h"

#include <algorithm>
#include <array>
#include <limits>
#include <string_view>
#include <tuple>
#include <vector>

#include "runtime/vk/context.h"
#include "shaders/abi/add.h"
#include "shaders/abi/argmax.h"
#include "shaders/abi/rmsnorm.h"

namespace megrez {

namespace {

// ---- Argument checks (every size in 64 bits; overflow is an error, not a wrap) -------------

uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& kernel) {
  if (b != 0 && a > std::numeric_limits<uint64_t>::max() / b) throw Error(kernel + ": size overflows 64 bits");
  return a * b;
}

void require(bool ok, const std::string& kernel, const std::string& what) {
  if (!ok) throw Error(kernel + ": " + what);
}

void require_bytes(const BufferRange& range, uint64_t needed, const std::string& kernel, const char* binding) {
  if (range.size < needed) {
    throw Error(kernel + ": " + binding + " binding holds " + std::to_string(range.size) + " bytes, needs " +
                std::to_string(needed));
  }
}

// Rows of `weights` format with `cols` columns: quantized formats need whole blocks; the
// range the shader reads as words must be padded to 4 bytes.
uint64_t weight_row_bytes(DType weights, uint32_t cols, const BufferRange& w, const std::string& kernel) {
  require(cols > 0, kernel, "zero columns");
  if (dtype_is_quantized(weights)) {
    require(cols % kQuantBlock == 0, kernel,
            std::string(dtype_name(weights)) + " rows must be a multiple of 32 columns, got " + std::to_string(cols));
  }
  require(w.size % 4 == 0, kernel,
          "weight binding of " + std::to_string(w.size) + " bytes is not a multiple of 4 (pad the last row)");
  return row_bytes(weights, cols);
}

// ---- Device-derived launch parameters -----------------------------------------------------

uint32_t fit_workgroup(const DeviceCaps& caps, uint32_t wanted) {
  return std::max(1u, std::min({wanted, caps.max_workgroup_invocations, caps.max_workgroup_size[0]}));
}

Specialization spec_1d(const DeviceCaps& caps, uint32_t workgroup, std::initializer_list<uint32_t> tile = {}) {
  Specialization spec{{workgroup, 1, 1}, {caps.subgroup_size}};
  spec.constants.insert(spec.constants.end(), tile.begin(), tile.end());
  return spec;
}

// `n` workgroups in x, spilling into y past the device's x limit (the shaders index groups
// as x + y * num_x and skip the excess).
Groups spread_groups(const DeviceCaps& caps, uint32_t n) {
  const uint32_t max_x = caps.max_workgroup_count[0];
  if (n <= max_x) return {n, 1, 1};
  return {max_x, group_count(n, max_x), 1};
}

}  // namespace

Reduce auto_reduce(const DeviceCaps& caps, bool rows_fit) {
  return rows_fit && caps.sum_rows_per_invocation() ? Reduce::PerInvocation
         : caps.use_subgroup_reduce()               ? Reduce::Subgroup
                                                    : Reduce::SharedMemory;
}

namespace {

void require_rows_fit(bool rows_fit, const std::string& kernel) {
  require(rows_fit, kernel,
          "the per-invocation variant needs rows of whole 16-byte units (8-byte units and cols % 128 == 0 when "
          "quantized) and its inputs on 16-byte boundaries");
}

}  // namespace

bool matmul_uses_rows(const DeviceCaps& caps, MatmulKernel choice, bool rows_fit, const std::string& kernel) {
  if (choice == MatmulKernel::Auto) return auto_reduce(caps, rows_fit) == Reduce::PerInvocation;
  if (choice == MatmulKernel::Rows) require_rows_fit(rows_fit, kernel);
  return choice == MatmulKernel::Rows;
}

std::string reduce_variant(const DeviceCaps& caps, const std::string& base, Reduce reduce, bool rows_fit) {
  if (reduce == Reduce::Auto) reduce = auto_reduce(caps, rows_fit);
  if (reduce == Reduce::PerInvocation) {
    require_rows_fit(rows_fit, base);
    return base + "_rows";
  }
  if (reduce == Reduce::SharedMemory) return base + "_shmem";
  require(caps.use_subgroup_reduce(), base, "the subgroup variant needs subgroup arithmetic, which this device lacks");
  return base;
}

bool rows_per_invocation_fit(DType weights, uint32_t cols, uint64_t weight_offset, uint64_t x_binding_offset,
                             uint64_t x_element) {
  const bool quantized = dtype_is_quantized(weights);
  const uint64_t unit = quantized ? 8 : 16;
  const uint64_t row = row_bytes(weights, cols);
  return cols > 0 && (quantized ? cols % 128 == 0 : row % unit == 0) && weight_offset % unit == 0 &&
         x_binding_offset % 16 == 0 && x_element % 4 == 0;
}

bool row_input_uniform_fit(const DeviceCaps& caps, uint64_t first, uint64_t bytes) {
  const uint64_t alignment = std::max<uint64_t>(caps.uniform_offset_alignment, 16);
  return bytes > 0 && first % alignment == 0 &&
         bytes <= std::min<uint64_t>(caps.max_uniform_range, MEGREZ_ROW_INPUT_UNIFORM_BYTES);
}

namespace {

// A variant name without its "_shuffle" twin suffix.
std::string_view without_shuffle(std::string_view kernel) {
  if (kernel.ends_with("_shuffle")) kernel.remove_suffix(std::string_view("_shuffle").size());
  return kernel;
}
// ... and without its "_ubo" one.
std::string_view rows_base(std::string_view kernel) {
  kernel = without_shuffle(kernel);
  if (kernel.ends_with("_ubo")) kernel.remove_suffix(std::string_view("_ubo").size());
  return kernel;
}

}  // namespace

bool is_uniform_input_kernel(const std::string& kernel) { return without_shuffle(kernel).ends_with("_ubo"); }
bool is_wide_kernel(const std::string& kernel) { return rows_base(kernel).ends_with("_rows_wide"); }
bool is_rows_kernel(const std::string& kernel) {
  const std::string_view base = rows_base(kernel);
  return base.ends_with("_rows") || base.ends_with("_rows_wide");
}

std::string rows_twin(const std::string& kernel, bool wide, bool uniform, bool shuffle) {
  if (!kernel.ends_with("_rows")) return kernel;
  return kernel + (wide ? "_wide" : "") + (uniform ? "_ubo" : "") + (shuffle ? "_shuffle" : "");
}

bool rows_input_shuffle_fit(const DeviceCaps& caps, DType weights) {
  return dtype_is_quantized(weights) && caps.subgroup_shuffle && caps.subgroup_size >= 4 &&
         matvec_shape(caps, true, kMatmulRowsPerInvocation).workgroup == caps.subgroup_size;
}

bool matvec_wide_units_fit(DType weights, uint32_t cols, uint64_t first_row_offset) {
  return dtype_is_quantized(weights) && cols > 0 && cols % 256 == 0 && first_row_offset % 16 == 0;
}

uint32_t matvec_rows_per_invocation(DType weights, bool wide) {
  const bool few = weights == DType::F32 || (wide && weights == DType::Q8_0);
  return few ? abi::kMatvecRowsPerInvocationFew : abi::kMatvecRowsPerInvocation;
}

MatvecShape matvec_shape(const DeviceCaps& caps, bool per_invocation, uint32_t rows_per_invocation) {
  // Whole rows per invocation: one subgroup per workgroup (64 rows on lavapipe's 8 lanes at 8
  // rows each) keeps a 1408-row matrix at 22 groups, plenty for a CPU's cores.
  if (per_invocation) {
    if (rows_per_invocation == 0) throw Error("matvec_shape: the per-invocation flavour needs its rows per invocation");
    const uint32_t workgroup = fit_workgroup(caps, std::clamp(caps.subgroup_size, 4u, 64u));
    return {workgroup, workgroup * rows_per_invocation};
  }
  // A few subgroups per workgroup (128 on 32-wide GPUs, 32 on lavapipe, where fewer
  // invocations per group measured faster), striding over a row's 8-weight quarters (256 of
  // them at 2048 columns). 4 rows per group reuse each x quarter four times and keep a
  // 1408-row matrix at 352 groups.
  const uint32_t workgroup = std::clamp(4 * caps.subgroup_size, 32u, 128u);
  return {fit_workgroup(caps, workgroup), 4};
}

MatmulShape matmul_shape(const DeviceCaps& caps, uint32_t tokens) {
  // Tiles (rows, tokens, per-invocation rows, per-invocation tokens) from large to small.
  // Wider token tiles re-read W less; narrower ones waste less work on short prompts.
  static const MatmulShape candidates[] = {
      {128, 64, 8, 4},  // 256 invocations, 24.8 KiB
      {64, 64, 4, 4},   // 256 invocations, 16.6 KiB
      {128, 32, 8, 2},  // 256 invocations, 20.7 KiB
      {64, 32, 4, 4},   // 128 invocations, 12.5 KiB: the "minimum" profile's T >= 32 tile
      {128, 16, 4, 2},  // 256 invocations, 18.7 KiB
      {64, 16, 4, 2},   // 128 invocations, 10.5 KiB
      {128, 8, 4, 1},   // 256 invocations, 17.7 KiB
      {64, 8, 4, 1},    // 128 invocations, 9.5 KiB
      {32, 32, 4, 4},   // 64 invocations, 8.4 KiB
      {16, 16, 4, 4},   // 16 invocations, 4.3 KiB
  };
  uint32_t wanted = 8;  // the token tile that wastes least: tokens rounded up to 8..64
  while (wanted < tokens && wanted < 64) wanted *= 2;
  const MatmulShape* best = nullptr;
  for (const MatmulShape& s : candidates) {
    if (s.workgroup() > caps.max_workgroup_invocations || s.workgroup() > caps.max_workgroup_size[0] ||
        s.shared_bytes() > caps.max_shared_memory) {
      continue;
    }
    // Prefer covering `wanted` with the narrowest token tile, then the most rows.
    auto score = [&](const MatmulShape& m) {
      const bool covers = m.tile_tokens >= wanted;
      return std::tuple(covers, covers ? -int(m.tile_tokens) : int(m.tile_tokens), m.tile_rows, m.workgroup());
    };
    if (!best || score(s) > score(*best)) best = &s;
  }
  if (!best) {
    throw Error("matmul: the device allows " + std::to_string(caps.max_workgroup_invocations) +
                " invocations and " + std::to_string(caps.max_shared_memory) +
                " bytes of shared memory; the smallest tile needs 16 and 4352");
  }
  return *best;
}

std::string matvec_variant(DType weights, const DeviceCaps& caps, Reduce reduce, bool rows_fit) {
  return reduce_variant(caps, std::string("matvec_") + dtype_name(weights), reduce, rows_fit);
}
std::string matmul_variant(DType weights, bool rows) {
  return std::string("matmul_") + dtype_name(weights) + (rows ? "_rows" : "");
}
std::string embed_variant(DType table) { return std::string("embed_") + dtype_name(table); }

bool matmul_uniform_input_fit(const DeviceCaps& caps, uint64_t x_first, uint32_t x_stride, uint32_t cols,
                              uint32_t tokens) {
  const uint64_t alignment = std::max<uint64_t>(caps.uniform_offset_alignment, 16);
  return tokens > 0 && (tokens == 1 || (uint64_t{x_stride} * 4) % alignment == 0) &&
         row_input_uniform_fit(caps, x_first, uint64_t{cols} * 4);
}

std::string matmul_kernel(const DeviceCaps& caps, DType weights, const abi::MatmulPush& p, uint64_t w_offset,
                          uint64_t x_offset, MatmulKernel choice) {
  const bool rows_fit =
      p.cols > 0 && p.x_stride % 4 == 0 &&
      rows_per_invocation_fit(weights, p.cols, w_offset + uint64_t{p.weight_row} * row_bytes(weights, p.cols), x_offset,
                              p.x_offset);
  if (!matmul_uses_rows(caps, choice, rows_fit, matmul_variant(weights, true))) return matmul_variant(weights, false);
  return rows_twin(matmul_variant(weights, true), false,
                   matmul_uniform_input_fit(caps, x_offset + uint64_t{p.x_offset} * 4, p.x_stride, p.cols, p.tokens),
                   rows_input_shuffle_fit(caps, weights));
}

// ---- matvec / matmul ----------------------------------------------------------------------

std::string matvec_kernel(const DeviceCaps& caps, DType weights, const abi::MatvecPush& p, uint64_t w_offset,
                          uint64_t x_offset, Reduce reduce) {
  const uint64_t first_row_offset = w_offset + uint64_t{p.weight_row} * row_bytes(weights, p.cols);
  const bool rows_fit = p.cols > 0 && rows_per_invocation_fit(weights, p.cols, first_row_offset, x_offset, p.x_offset);
  const std::string kernel = matvec_variant(weights, caps, reduce, rows_fit);
  return rows_twin(kernel, matvec_wide_units_fit(weights, p.cols, first_row_offset),
                   row_input_uniform_fit(caps, x_offset + uint64_t{p.x_offset} * 4, uint64_t{p.cols} * 4));
}

void record_matvec(CommandBuffer& cmd, DType weights, const BufferRange& w, const BufferRange& x,
                   const BufferRange& y, const abi::MatvecPush& p, Reduce reduce) {
  const DeviceCaps& caps = cmd.context().caps();
  const std::string kernel = matvec_kernel(caps, weights, p, w.offset, x.offset, reduce);
  const bool wide = is_wide_kernel(kernel);
  require(p.rows > 0, kernel, "zero rows");
  const uint64_t row_size = weight_row_bytes(weights, p.cols, w, kernel);
  require_bytes(w, checked_mul(uint64_t{p.weight_row} + p.rows, row_size, kernel), kernel, "weight");
  require_bytes(x, (uint64_t{p.x_offset} + p.cols) * 4, kernel, "x");
  require_bytes(y, (uint64_t{p.y_offset} + p.rows) * 4, kernel, "y");
  const bool per_invocation = is_rows_kernel(kernel);
  const MatvecShape shape = matvec_shape(caps, per_invocation, matvec_rows_per_invocation(weights, wide));
  const Pipeline& pipeline = cmd.context().pipeline(
      kernel, per_invocation ? spec_1d(caps, shape.workgroup) : spec_1d(caps, shape.workgroup, {shape.rows_per_group}));
  const Groups groups = spread_groups(caps, group_count(p.rows, shape.rows_per_group));
  if (is_uniform_input_kernel(kernel)) {  // bind exactly the columns read (row_input_uniform_fit)
    abi::MatvecPush q = p;
    q.x_offset = 0;
    dispatch(cmd, pipeline, {w, x.slice(uint64_t{p.x_offset} * 4, uint64_t{p.cols} * 4), y}, q, groups);
    return;
  }
  dispatch(cmd, pipeline, {w, x, y}, p, groups);
}

void record_matvec(CommandBuffer& cmd, DType weights, const SplitBuffer& w, uint32_t rows, uint32_t cols,
                   const BufferRange& x, const BufferRange& y, bool accumulate) {
  const std::string kernel = "matvec (split " + std::string(dtype_name(weights)) + ")";
  const uint64_t row_size = row_bytes(weights, cols);
  require(row_size > 0 && w.size == checked_mul(rows, row_size, kernel), kernel,
          "split buffer of " + std::to_string(w.size) + " bytes does not hold " + std::to_string(rows) + " rows of " +
              std::to_string(row_size) + " bytes");
  uint32_t first_row = 0;
  for (const BufferRange& part : w.parts) {
    const auto part_rows = static_cast<uint32_t>(part.size / row_size);
    record_matvec(cmd, weights, part, x, y, abi::MatvecPush{part_rows, cols, 0, 0, first_row, accumulate ? 1u : 0u});
    first_row += part_rows;
  }
}

void record_matmul(CommandBuffer& cmd, DType weights, const BufferRange& w, const BufferRange& x,
                   const BufferRange& y, const abi::MatmulPush& p, MatmulKernel choice) {
  const DeviceCaps& caps = cmd.context().caps();
  const std::string kernel = matmul_kernel(caps, weights, p, w.offset, x.offset, choice);
  require(p.rows > 0 && p.tokens > 0, kernel, "zero rows or tokens");
  require(p.x_stride >= p.cols, kernel, "x_stride " + std::to_string(p.x_stride) + " < cols " + std::to_string(p.cols));
  require(uint64_t{p.y_stride} >= uint64_t{p.y_offset} + p.rows, kernel,
          "y_stride " + std::to_string(p.y_stride) + " < y_offset + rows");
  const uint64_t row_size = weight_row_bytes(weights, p.cols, w, kernel);
  require_bytes(w, checked_mul(uint64_t{p.weight_row} + p.rows, row_size, kernel), kernel, "weight");
  require_bytes(x, (p.x_offset + checked_mul(p.tokens - 1u, p.x_stride, kernel) + p.cols) * 4, kernel, "x");
  require_bytes(y, (checked_mul(p.tokens - 1u, p.y_stride, kernel) + p.y_offset + p.rows) * 4, kernel, "y");
  if (!is_rows_kernel(kernel)) {
    const MatmulShape s = matmul_shape(caps, p.tokens);
    const Pipeline& pipeline = cmd.context().pipeline(
        kernel, spec_1d(caps, s.workgroup(), {s.tile_rows, s.tile_tokens, s.thread_rows, s.thread_tokens}));
    dispatch(cmd, pipeline, {w, x, y}, p, {group_count(p.rows, s.tile_rows), group_count(p.tokens, s.tile_tokens), 1});
    return;
  }
  const MatvecShape shape = matvec_shape(caps, true, kMatmulRowsPerInvocation);
  const Pipeline& pipeline = cmd.context().pipeline(kernel, spec_1d(caps, shape.workgroup));
  const uint32_t row_groups = group_count(p.rows, shape.rows_per_group);
  if (!is_uniform_input_kernel(kernel)) {
    dispatch(cmd, pipeline, {w, x, y}, p, {row_groups, group_count(p.tokens, kTokensPerInvocation), 1});
    return;
  }
  // x as one uniform buffer per token (matmul_uniform_input_fit): one dispatch per group of
  // kTokensPerInvocation tokens, binding each token's row alone (a group's missing tokens
  // repeat its last, as the kernel's clamped reads expect), so the push constants put x at 0
  // and y_offset at the group's first token. The dispatches write disjoint outputs: no barriers.
  std::array<BufferRange, 2 + kTokensPerInvocation> bindings{};
  bindings[0] = w;
  bindings[2] = y;
  for (uint32_t first = 0; first < p.tokens; first += kTokensPerInvocation) {
    abi::MatmulPush group = p;
    group.tokens = std::min(kTokensPerInvocation, p.tokens - first);
    group.x_offset = 0;
    group.x_stride = 0;
    // Fits 32 bits: below y's element count, checked above against a bound range.
    group.y_offset = static_cast<uint32_t>(uint64_t{first} * p.y_stride + p.y_offset);
    for (uint32_t t = 0; t < kTokensPerInvocation; ++t) {
      const uint64_t token = first + std::min(t, group.tokens - 1);
      bindings[t == 0 ? 1 : 2 + t] = x.slice((p.x_offset + token * p.x_stride) * 4, uint64_t{p.cols} * 4);
    }
    dispatch(cmd, pipeline, bindings, &group, sizeof(group), {row_groups, 1, 1});
  }
}

// ---- rmsnorm / add ------------------------------------------------------------------------

namespace {

// Checks a norm's operands; returns the kernel name with its reduction flavour.
std::string norm_kernel(const DeviceCaps& caps, const char* base, Reduce reduce,
                        std::initializer_list<BufferRange> activations, const BufferRange& weight, uint32_t rows,
                        uint32_t dim, float eps) {
  const std::string kernel = reduce_variant(caps, base, reduce);
  require(rows > 0 && dim > 0, kernel, "zero rows or dim");
  require(eps >= 0.0f, kernel, "negative eps");
  const uint64_t matrix_bytes = checked_mul(rows, dim, kernel) * 4;
  for (const BufferRange& a : activations) require_bytes(a, matrix_bytes, kernel, "activation");
  require_bytes(weight, uint64_t{dim} * 4, kernel, "weight");
  return kernel;
}

uint32_t norm_workgroup(const DeviceCaps& caps) { return fit_workgroup(caps, 256); }

}  // namespace

void record_rmsnorm(CommandBuffer& cmd, const BufferRange& x, const BufferRange& weight, const BufferRange& y,
                    uint32_t rows, uint32_t dim, float eps, Reduce reduce) {
  const DeviceCaps& caps = cmd.context().caps();
  const std::string kernel = norm_kernel(caps, "rmsnorm", reduce, {x, y}, weight, rows, dim, eps);
  dispatch(cmd, cmd.context().pipeline(kernel, spec_1d(caps, norm_workgroup(caps))), {x, weight, y},
           abi::RmsnormPush{rows, dim, eps, 0}, spread_groups(caps, rows));
}

void record_add_rmsnorm(CommandBuffer& cmd, const BufferRange& residual, const BufferRange& addend,
                        const BufferRange& weight, const BufferRange& y, uint32_t rows, uint32_t dim, float eps,
                        Reduce reduce) {
  const DeviceCaps& caps = cmd.context().caps();
  const std::string kernel = norm_kernel(caps, "add_rmsnorm", reduce, {residual, addend, y}, weight, rows, dim, eps);
  dispatch(cmd, cmd.context().pipeline(kernel, spec_1d(caps, norm_workgroup(caps))), {residual, addend, weight, y},
           abi::RmsnormPush{rows, dim, eps, 0}, spread_groups(caps, rows));
}

void record_moe_combine_rmsnorm(CommandBuffer& cmd, const BufferRange& residual, const BufferRange& expert_y,
                                const BufferRange& route_w, const BufferRange& shared, const BufferRange& weight,
                                const BufferRange& y, uint32_t rows, uint32_t top_k, uint32_t dim, float eps,
                                Reduce reduce) {
  const DeviceCaps& caps = cmd.context().caps();
  const std::string kernel =
      norm_kernel(caps, "moe_combine_rmsnorm", reduce, {residual, shared, y}, weight, rows, dim, eps);
  require(top_k > 0, kernel, "zero experts per token");
  require_bytes(expert_y, checked_mul(checked_mul(rows, top_k, kernel), dim, kernel) * 4, kernel, "expert outputs");
  require_bytes(route_w, checked_mul(rows, top_k, kernel) * 4, kernel, "router weights");
  dispatch(cmd, cmd.context().pipeline(kernel, spec_1d(caps, norm_workgroup(caps))),
           {residual, expert_y, route_w, shared, weight, y}, abi::RmsnormPush{rows, dim, eps, top_k},
           spread_groups(caps, rows));
}

void record_add(CommandBuffer& cmd, const BufferRange& x, const BufferRange& y, uint32_t count) {
  const DeviceCaps& caps = cmd.context().caps();
  require(count > 0, "add", "zero elements");
  require_bytes(x, uint64_t{count} * 4, "add", "x");
  require_bytes(y, uint64_t{count} * 4, "add", "y");
  const uint32_t workgroup = fit_workgroup(caps, 256);
  const uint32_t groups = std::min(group_count(count, workgroup), caps.max_workgroup_count[0]);
  dispatch(cmd, cmd.context().pipeline("add", spec_1d(caps, workgroup)), {x, y}, abi::AddPush{count}, {groups});
}

// ---- embed --------------------------------------------------------------------------------

void record_embed(CommandBuffer& cmd, DType table, const BufferRange& part, const BufferRange& ids,
                  const BufferRange& out, const abi::EmbedPush& p) {
  const DeviceCaps& caps = cmd.context().caps();
  const std::string kernel = embed_variant(table);
  require(p.tokens > 0 && p.row_count > 0, kernel, "zero tokens or rows");
  const uint64_t row_size = weight_row_bytes(table, p.dim, part, kernel);
  require_bytes(part, checked_mul(p.row_count, row_size, kernel), kernel, "table");
  require_bytes(ids, uint64_t{p.tokens} * 4, kernel, "ids");
  require_bytes(out, checked_mul(p.tokens, p.dim, kernel) * 4, kernel, "out");
  const Pipeline& pipeline = cmd.context().pipeline(kernel, spec_1d(caps, fit_workgroup(caps, 128)));
  dispatch(cmd, pipeline, {part, ids, out}, p, spread_groups(caps, p.tokens));
}

void record_embed(CommandBuffer& cmd, DType table, const SplitBuffer& parts, uint32_t dim, const BufferRange& ids,
                  const BufferRange& out, uint32_t tokens) {
  const uint64_t row_size = row_bytes(table, dim);
  uint64_t first_row = 0;
  for (const BufferRange& part : parts.parts) {
    const auto part_rows = static_cast<uint32_t>(part.size / row_size);
    require(first_row <= UINT32_MAX, embed_variant(table), "vocabulary over 2^32 rows");
    record_embed(cmd, table, part, ids, out, abi::EmbedPush{tokens, dim, static_cast<uint32_t>(first_row), part_rows});
    first_row += part_rows;
  }
}

// ---- argmax -------------------------------------------------------------------------------

namespace {

uint32_t argmax_workgroup(const DeviceCaps& caps) { return fit_workgroup(caps, 256); }

// Stage 0 workgroups: ~8 logits per invocation (128880 -> 63 groups of 256), capped so the
// single stage-1 workgroup has little to do.
uint32_t argmax_partials(const DeviceCaps& caps, uint32_t count) {
  return std::clamp(group_count(count, argmax_workgroup(caps) * 8u), 1u, std::min(1024u, caps.max_workgroup_count[0]));
}

}  // namespace

uint64_t argmax_partials_bytes(const DeviceCaps& caps, uint32_t count) {
  return uint64_t{argmax_partials(caps, std::max(count, 1u))} * 8;
}

void record_argmax(CommandBuffer& cmd, const BufferRange& logits, const BufferRange& partials,
                   const BufferRange& result, uint32_t count, Reduce reduce) {
  const DeviceCaps& caps = cmd.context().caps();
  const std::string kernel = reduce_variant(caps, "argmax", reduce);
  require(count > 0, kernel, "zero logits");
  require_bytes(logits, uint64_t{count} * 4, kernel, "logits");
  require_bytes(partials, argmax_partials_bytes(caps, count), kernel, "partials");
  require_bytes(result, 8, kernel, "result");
  const uint32_t groups = argmax_partials(caps, count);
  const Pipeline& pipeline = cmd.context().pipeline(kernel, spec_1d(caps, argmax_workgroup(caps)));
  dispatch(cmd, pipeline, {logits, partials, result}, abi::ArgmaxPush{count, groups, 0}, {groups});
  barrier_compute_to_compute(cmd);
  dispatch(cmd, pipeline, {logits, partials, result}, abi::ArgmaxPush{count, groups, 1}, {1});
}

}  // namespace megrez
