#pragma once
// Host side of the dense kernels (shaders/matvec, matmul, rmsnorm, add, embed, argmax.comp):
// each record_* function picks the variant and its specialization from DeviceCaps, checks
// its arguments against the bound ranges (megrez::Error naming the kernel, expected vs got),
// and records the dispatch into `cmd`. The forward pass, the kernel tests and the benchmark
// all launch these kernels through here, so the device-dependent choices live in one place.
// Nothing here inserts barriers except record_argmax (between its own two stages).
#include <cstdint>
#include <string>

#include "loader/tensor.h"
#include "runtime/vk/dispatch.h"
#include "shaders/abi/embed.h"
#include "shaders/abi/matmul.h"
#include "shaders/abi/matvec.h"

namespace megrez {

struct DeviceCaps;

// ---- Shapes chosen from the device (exposed for the benchmark and the tests) --------------

struct MatvecShape {
  uint32_t workgroup = 0;       // invocations
  uint32_t rows_per_group = 0;  // rows each workgroup computes (spec constant 4; _rows: rows_per_invocation each)
};
// per_invocation: a _rows variant whose invocations sum rows_per_invocation rows each.
MatvecShape matvec_shape(const DeviceCaps& caps, bool per_invocation = false, uint32_t rows_per_invocation = 0);
// Whether a quantized matvec's per-invocation flavour may read its rows as 16-byte units in
// steps of 8 blocks (matvec_<q>_rows_wide): cols % 256 == 0 and the first row, at byte
// `first_row_offset` of its buffer, on a 16-byte boundary (the rows after it then are too).
bool matvec_wide_units_fit(DType weights, uint32_t cols, uint64_t first_row_offset);
// Whether a per-invocation decode product (matvec, the MoE decode products, swiglu_fused)
// may read its input as a uniform buffer (variants ..._rows[_wide]_ubo, ROW_INPUT_UNIFORM in
// common/row_dot.glsl): the `bytes` it reads start at byte `first` of their buffer on a
// minUniformBufferOffsetAlignment (and 16-byte) boundary and fit maxUniformBufferRange and
// MEGREZ_ROW_INPUT_UNIFORM_BYTES. The launcher then binds exactly those bytes.
bool row_input_uniform_fit(const DeviceCaps& caps, uint64_t first, uint64_t bytes);
// The twin of a per-invocation variant `kernel` (a name ending "_rows") that the operands
// allow: + "_wide" where its rows fit 16-byte units (`wide`), then + "_ubo" where its input fits
// a uniform buffer (`uniform`), then + "_shuffle" where its lanes share x's loads through
// subgroup shuffles (`shuffle`: the batched products, rows_input_shuffle_fit). Any other name
// comes back as it is.
std::string rows_twin(const std::string& kernel, bool wide, bool uniform, bool shuffle = false);
// Whether the batched per-invocation products (matmul_<q>_rows*, moe_*_mm_<q>_rows) may share
// x's loads across a subgroup (their *_shuffle twins): quantized weights, subgroup shuffles, and
// a per-invocation workgroup that is one whole subgroup of at least 4 lanes.
bool rows_input_shuffle_fit(const DeviceCaps& caps, DType weights);
// Whether a variant name is a per-invocation one (..._rows, ..._rows_wide, then "_ubo" and
// "_shuffle" twins), one reading 16-byte quantized units (..._rows_wide...), one reading x as a
// uniform buffer (..._ubo...).
bool is_rows_kernel(const std::string& kernel);
bool is_wide_kernel(const std::string& kernel);
bool is_uniform_input_kernel(const std::string& kernel);
// Rows one invocation of matvec_<fmt>_rows (or _rows_wide) sums (abi/matvec.h).
uint32_t matvec_rows_per_invocation(DType weights, bool wide = false);
// Rows one invocation of matmul_<fmt>_rows and of the batched MoE products' _rows variants
// sums (abi/matmul.h; ROWS_PER_INVOCATION in moe_matmul.comp).
inline constexpr uint32_t kMatmulRowsPerInvocation = MEGREZ_MATMUL_ROWS_PER_INVOCATION;
// Tokens one invocation of matmul_<fmt>_rows sums (abi/matmul.h).
inline constexpr uint32_t kTokensPerInvocation = MEGREZ_MATMUL_TOKENS_PER_INVOCATION;

struct MatmulShape {
  uint32_t tile_rows = 0, tile_tokens = 0;      // output tile of one workgroup
  uint32_t thread_rows = 0, thread_tokens = 0;  // register tile of one invocation
  uint32_t workgroup() const { return (tile_rows / thread_rows) * (tile_tokens / thread_tokens); }
  uint32_t shared_bytes() const { return 32u * (tile_rows + 1u + tile_tokens + 1u) * 4u; }
};
// The tile for `tokens` rows of X that fits the device's shared memory and workgroup limits:
// the narrowest token tile covering min(tokens, 64), with the most weight rows.
MatmulShape matmul_shape(const DeviceCaps& caps, uint32_t tokens);

// Reduction flavour of the kernels that reduce across a workgroup (matvec, rmsnorm,
// add_rmsnorm, argmax, the MoE products). Auto: the per-invocation flavour where
// caps.sum_rows_per_invocation() and the operands fit it (matvec and the MoE decode products
// only), else subgroup ops where caps.use_subgroup_reduce(), else the shared-memory variant.
// The others force one (tests and the benchmark compare them); forcing one the device or the
// operands cannot run is a megrez::Error.
//   PerInvocation: no reduction at all, each invocation sums whole rows (variant <kernel>_rows,
//   shaders/common/row_dot.glsl); see rows_per_invocation_fit for what it needs.
enum class Reduce { Auto, Subgroup, SharedMemory, PerInvocation };

// The flavour Auto stands for on this device, given whether the operands fit the
// per-invocation one.
Reduce auto_reduce(const DeviceCaps& caps, bool rows_fit);

// The variant of `base` for a flavour: base (subgroup), base + "_shmem" or base + "_rows".
// `rows_fit`: the kernel has a _rows variant and these operands fit it.
std::string reduce_variant(const DeviceCaps& caps, const std::string& base, Reduce reduce, bool rows_fit = false);

// Whether the per-invocation flavour can read rows of `cols` columns whose first row starts
// at byte `weight_offset` of its buffer (binding offset + rows before it), with x bound at
// byte `x_binding_offset` and starting `x_element` floats into its binding: it reads 16-byte
// units of float rows (rows of whole units) or 8-byte units of quantized rows
// (cols % 128 == 0), and x as vec4 counted from the binding's start.
bool rows_per_invocation_fit(DType weights, uint32_t cols, uint64_t weight_offset, uint64_t x_binding_offset,
                             uint64_t x_element = 0);

// The prefill product's kernels: the shared-memory tiles (matmul.comp), or whole rows and
// tokens per invocation (matmul_rows.comp, 4 rows x 8 tokens, for CPU drivers:
// common/row_dot.glsl). Auto picks Rows where caps.sum_rows_per_invocation() and the operands
// fit it (as for matvec, and x_stride % 4 == 0); forcing Rows where they do not is a
// megrez::Error.
enum class MatmulKernel { Auto, Tiled, Rows };
// Whether `choice` means the per-invocation kernel here (Auto resolved as auto_reduce does);
// Rows where the operands do not fit is a megrez::Error naming `kernel`.
bool matmul_uses_rows(const DeviceCaps& caps, MatmulKernel choice, bool rows_fit, const std::string& kernel);

// Variant names: "matvec_q4_0", "matvec_q4_0_shmem" or "matvec_q4_0_rows"; `rows_fit` as above.
std::string matvec_variant(DType weights, const DeviceCaps& caps, Reduce reduce = Reduce::Auto, bool rows_fit = false);
// The variant record_matvec launches for `p` over weights bound at byte w_offset and x at
// x_offset: matvec_variant's choice, "_rows_wide" where a quantized _rows one fits
// matvec_wide_units_fit, either + "_ubo" where x fits row_input_uniform_fit.
std::string matvec_kernel(const DeviceCaps& caps, DType weights, const abi::MatvecPush& p, uint64_t w_offset,
                          uint64_t x_offset, Reduce reduce = Reduce::Auto);
std::string matmul_variant(DType weights, bool rows = false);
// Whether the per-invocation prefill product may read x as uniform buffers
// (matmul_<fmt>_rows_ubo): one per token, so it runs one dispatch per kTokensPerInvocation
// tokens, each binding those tokens' rows of x (bindings 1 and 3-9). Every token's row (cols
// floats, x_stride floats apart, the first at byte `x_first` of its buffer) must fit
// row_input_uniform_fit: up to 16384 columns on a device with 64 KiB uniform buffers.
bool matmul_uniform_input_fit(const DeviceCaps& caps, uint64_t x_first, uint32_t x_stride, uint32_t cols,
                              uint32_t tokens);
// The variant record_matmul launches for `p` over weights bound at byte w_offset and x at
// x_offset: "matmul_q4_0" (tiles) or "matmul_q4_0_rows", the latter + "_ubo" where x fits
// matmul_uniform_input_fit, then + "_shuffle" where rows_input_shuffle_fit.
std::string matmul_kernel(const DeviceCaps& caps, DType weights, const abi::MatmulPush& p, uint64_t w_offset,
                          uint64_t x_offset, MatmulKernel choice = MatmulKernel::Auto);
std::string embed_variant(DType table);

// ---- Launchers ---------------------------------------------------------------------------

// y[y_offset + r] (+)= sum_c W[weight_row + r, c] * x[x_offset + c], r < p.rows.
// w: rows of `weights` format; its size must be a multiple of 4 bytes (the shader reads words).
void record_matvec(CommandBuffer& cmd, DType weights, const BufferRange& w, const BufferRange& x,
                   const BufferRange& y, const abi::MatvecPush& p, Reduce reduce = Reduce::Auto);
// A matrix [rows, cols] split by rows (SplitBuffer): one dispatch per part, y = W x (+ y).
void record_matvec(CommandBuffer& cmd, DType weights, const SplitBuffer& w, uint32_t rows, uint32_t cols,
                   const BufferRange& x, const BufferRange& y, bool accumulate);

// Y[t * y_stride + y_offset + r] (+)= sum_c W[weight_row + r, c] * X[x_offset + t * x_stride + c].
void record_matmul(CommandBuffer& cmd, DType weights, const BufferRange& w, const BufferRange& x,
                   const BufferRange& y, const abi::MatmulPush& p, MatmulKernel kernel = MatmulKernel::Auto);

// y = x / sqrt(mean(x^2) + eps) * weight over `rows` rows of `dim` (fp32).
void record_rmsnorm(CommandBuffer& cmd, const BufferRange& x, const BufferRange& weight, const BufferRange& y,
                    uint32_t rows, uint32_t dim, float eps, Reduce reduce = Reduce::Auto);
// residual += addend; y = rmsnorm(residual) * weight (one pass).
void record_add_rmsnorm(CommandBuffer& cmd, const BufferRange& residual, const BufferRange& addend,
                        const BufferRange& weight, const BufferRange& y, uint32_t rows, uint32_t dim, float eps,
                        Reduce reduce = Reduce::Auto);
// residual += sum_k route_w[t, k] * expert_y[t, k, :] + shared[t, :] (record_moe_combine's
// bits), then y = rmsnorm(residual) * weight: a MoE layer's combine and the next norm in one
// pass. expert_y [rows, top_k, dim], route_w [rows, top_k]; y must not alias the residual.
void record_moe_combine_rmsnorm(CommandBuffer& cmd, const BufferRange& residual, const BufferRange& expert_y,
                                const BufferRange& route_w, const BufferRange& shared, const BufferRange& weight,
                                const BufferRange& y, uint32_t rows, uint32_t top_k, uint32_t dim, float eps,
                                Reduce reduce = Reduce::Auto);
// x[i] += y[i], i < count.
void record_add(CommandBuffer& cmd, const BufferRange& x, const BufferRange& y, uint32_t count);

// out[t, :] = table part row ids[t] - row_offset, for ids inside the bound part.
void record_embed(CommandBuffer& cmd, DType table, const BufferRange& part, const BufferRange& ids,
                  const BufferRange& out, const abi::EmbedPush& p);
// A whole table [vocab, dim] split by rows: one dispatch per part. The caller validates ids
// (< vocab); ids outside every part leave their output row untouched.
void record_embed(CommandBuffer& cmd, DType table, const SplitBuffer& parts, uint32_t dim, const BufferRange& ids,
                  const BufferRange& out, uint32_t tokens);

// result (uvec2: index, fp32 bits) = argmax of `count` logits, ties to the lower index, NaN as
// -inf. Two dispatches with a compute barrier between them; `partials` needs
// argmax_partials_bytes(caps, count) bytes.
uint64_t argmax_partials_bytes(const DeviceCaps& caps, uint32_t count);
void record_argmax(CommandBuffer& cmd, const BufferRange& logits, const BufferRange& partials,
                   const BufferRange& result, uint32_t count, Reduce reduce = Reduce::Auto);

}  // namespace megrez
