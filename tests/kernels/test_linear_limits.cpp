// The dense kernels under device limits the default lavapipe never imposes: a tiny
// maxComputeWorkGroupCount (groups spill from x into y, argmax and add shrink their grids)
// and a tiny maxStorageBufferRange (matrices and embedding tables split by
// Arena::allocate_split, one dispatch per part).
#include <doctest/doctest.h>

#include <cstring>

#include "common/gpu_fixture.h"
#include "kernels/linear_test_util.h"
#include "loader/quant/quant.h"
#include "runtime/runtime_test_util.h"

using namespace megrez;

namespace {

// matvec, rmsnorm, embed, add and argmax through their launchers on `ctx`, against the CPU.
void check_dense_kernels(Context& ctx) {
  Arena arena(ctx, "limits-test", MemoryUse::Device, 1 << 20);
  const uint32_t rows = 33, cols = 64;
  const test::EncodedMatrix m = test::random_matrix(DType::Q4_0, rows, cols, 1);
  const std::vector<float> x = test::random_vector(size_t{rows} * cols, 2);  // also 33 rows for the norm
  const std::vector<float> ones(cols, 1.0f);
  const std::vector<uint32_t> ids = {5, 0, 32, 7, 7, 1, 31, 2, 9};
  std::vector<float> logits = test::random_vector(5000, 3);
  logits[4321] = 9.0f;

  const BufferRange w = test::upload_vector(ctx, arena, m.words()), xb = test::upload_vector(ctx, arena, x);
  const BufferRange mv_out = arena.allocate(rows * 4), norm_out = arena.allocate(x.size() * 4);
  const BufferRange ones_b = test::upload_vector(ctx, arena, ones), idb = test::upload_vector(ctx, arena, ids);
  const BufferRange embed_out = arena.allocate(ids.size() * cols * 4);
  const BufferRange sum = test::upload_vector(ctx, arena, x);
  const BufferRange lb = test::upload_vector(ctx, arena, logits);
  const BufferRange partials = arena.allocate(argmax_partials_bytes(ctx.caps(), 5000)), result = arena.allocate(8);
  CommandBuffer cmd(ctx);
  cmd.begin();
  record_matvec(cmd, DType::Q4_0, w, xb, mv_out, abi::MatvecPush{rows, cols, 0, 0, 0, 0});  // 9 groups
  record_rmsnorm(cmd, xb, ones_b, norm_out, rows, cols, 1e-6f);                              // 33 groups
  record_embed(cmd, DType::Q4_0, w, idb, embed_out, abi::EmbedPush{9, cols, 0, rows});      // 9 groups
  record_add(cmd, sum, xb, rows * cols);                                                    // grid-stride
  record_argmax(cmd, lb, partials, result, 5000);
  cmd.submit_and_wait();

  const std::vector<float> decoded = m.decode();
  const std::vector<float> x0(x.begin(), x.begin() + cols);
  const std::string mismatch =
      test::compare_dots(test::download_vector<float>(ctx, mv_out), test::ref_matvec(decoded, rows, cols, x0), 0, cols, 1e-6);
  CHECK_MESSAGE(mismatch.empty(), mismatch);
  const std::vector<double> ref_norm = test::ref_rmsnorm(x, ones, rows, cols, 1e-6);
  const std::vector<float> got_norm = test::download_vector<float>(ctx, norm_out);
  for (size_t i = 0; i < ref_norm.size(); ++i) REQUIRE(std::fabs(got_norm[i] - ref_norm[i]) <= 4e-6 * std::fabs(ref_norm[i]));
  const std::vector<float> got_embed = test::download_vector<float>(ctx, embed_out);
  for (size_t t = 0; t < ids.size(); ++t) {
    CHECK(std::memcmp(got_embed.data() + t * cols, decoded.data() + size_t{ids[t]} * cols, cols * 4) == 0);
  }
  std::vector<float> doubled(x.size());
  for (size_t i = 0; i < x.size(); ++i) doubled[i] = x[i] + x[i];
  CHECK(test::download_vector<float>(ctx, sum) == doubled);
  CHECK(test::download_vector<uint32_t>(ctx, result)[0] == 4321);
  test::check_no_validation_messages(ctx, 0);
}

}  // namespace

TEST_CASE("matvec, rmsnorm, embed, add and argmax spill past 3 groups per dimension") {
  auto owned = test::context_with_profile(R"({"name": "few-groups", "max_workgroup_count": [3, 65535, 65535]})");
  REQUIRE(owned->caps().max_workgroup_count[0] == 3);
  check_dense_kernels(*owned);
}

// 13 invocations are not a whole number of subgroups at any subgroup size, so every
// workgroup ends in a partial subgroup (lavapipe 22.3 miscounts those in gl_NumSubgroups).
TEST_CASE("matvec, rmsnorm, embed, add and argmax with workgroups that end in a partial subgroup") {
  auto owned = test::context_with_profile(R"({"name": "odd-workgroups", "max_workgroup_invocations": 13})");
  REQUIRE(owned->caps().max_workgroup_invocations == 13);
  check_dense_kernels(*owned);
}

TEST_CASE("matvec and embed over tensors split by a 4 KiB maxStorageBufferRange") {
  auto owned = test::context_with_profile(R"({"name": "tiny-range", "max_storage_range": 4096})");
  Context& ctx = *owned;
  Arena arena(ctx, "limits-test", MemoryUse::Device, 1 << 20);
  for (DType dtype : {DType::Q8_0, DType::F16}) {
    CAPTURE(dtype_name(dtype));
    const uint32_t rows = 200, cols = 64;  // 13600 / 25600 bytes: 4 / 7 parts
    const test::EncodedMatrix m = test::random_matrix(dtype, rows, cols, 4);
    const std::vector<float> decoded = m.decode();
    SplitBuffer split = arena.allocate_split(m.row_size() * rows, m.row_size());
    REQUIRE(split.parts.size() > 2);
    ctx.blocking_transfers().upload(split, std::as_bytes(std::span(m.bytes.data(), m.row_size() * rows)));
    const std::vector<float> x = test::random_vector(cols, 5);
    const BufferRange xb = test::upload_vector(ctx, arena, x), y = arena.allocate(rows * 4);
    const std::vector<uint32_t> ids = {199, 0, 57, 58, 120, 3, 199, 100};
    const BufferRange idb = test::upload_vector(ctx, arena, ids), out = arena.allocate(ids.size() * cols * 4);
    CommandBuffer cmd(ctx);
    cmd.begin();
    record_matvec(cmd, dtype, split, rows, cols, xb, y, false);
    record_embed(cmd, dtype, split, cols, idb, out, uint32_t(ids.size()));
    cmd.submit_and_wait();
    const std::string mismatch =
        test::compare_dots(test::download_vector<float>(ctx, y), test::ref_matvec(decoded, rows, cols, x), 0, cols, 1e-6);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
    const std::vector<float> got = test::download_vector<float>(ctx, out);
    for (size_t t = 0; t < ids.size(); ++t) {
      CHECK(std::memcmp(got.data() + t * cols, decoded.data() + size_t{ids[t]} * cols, cols * 4) == 0);
    }
  }
  test::check_no_validation_messages(ctx, 0);
}
