// Embedding gather vs dequantize_row: exact (bit-equal) in every format, whole tables and
// tables split by rows into parts (one dispatch per part, ids outside a part skipped).
#include <doctest/doctest.h>

#include <cstring>

#include "common/gpu_fixture.h"
#include "kernels/linear_test_util.h"
#include "loader/quant/quant.h"

using namespace megrez;

namespace {

// out[t] = decode(table row ids[t]) for every t, compared as bits.
void check_rows_exact(const std::vector<float>& got, const test::EncodedMatrix& table, const std::vector<uint32_t>& ids) {
  std::vector<float> row(table.cols);
  size_t bad = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    dequantize_row(table.dtype, table.bytes.data() + ids[t] * table.row_size(), row.data(), table.cols);
    bad += std::memcmp(row.data(), got.data() + t * table.cols, table.cols * 4) != 0;
  }
  CHECK_MESSAGE(bad == 0, bad << " of " << ids.size() << " rows differ from dequantize_row");
}

std::vector<uint32_t> token_ids(uint32_t tokens, uint32_t vocab, uint32_t seed) {
  std::vector<uint32_t> ids(tokens);
  for (uint32_t t = 0; t < tokens; ++t) ids[t] = (t * 2654435761u + seed) % vocab;
  ids.front() = 0;  // the first and last rows of the table
  ids.back() = vocab - 1;
  if (tokens > 2) ids[1] = ids.back();  // a repeated id
  return ids;
}

}  // namespace

TEST_CASE_FIXTURE(test::GpuTest, "embed gathers rows bit-exactly in every format") {
  for (DType dtype : test::kAllFormats) {
    const std::vector<uint32_t> dims = dtype_is_quantized(dtype) ? std::vector<uint32_t>{32, 2048}
                                                                 : std::vector<uint32_t>{1, 35, 2048};
    for (uint32_t dim : dims) {
      CAPTURE(dtype_name(dtype));
      CAPTURE(dim);
      const uint32_t vocab = 1001, tokens = 37;
      const test::EncodedMatrix table = test::random_matrix(dtype, vocab, dim, dim + 3);
      const std::vector<uint32_t> ids = token_ids(tokens, vocab, dim);
      Arena arena(ctx, "embed-test", MemoryUse::Device, 16 << 20);
      const BufferRange tb = test::upload_vector(ctx, arena, table.words());
      const BufferRange idb = test::upload_vector(ctx, arena, ids);
      const BufferRange out = arena.allocate(size_t{tokens} * dim * 4);
      CommandBuffer cmd(ctx);
      cmd.begin();
      record_embed(cmd, dtype, tb, idb, out, abi::EmbedPush{tokens, dim, 0, vocab});
      cmd.submit_and_wait();
      check_rows_exact(test::download_vector<float>(ctx, out), table, ids);
    }
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "embed over a table split by rows: each part writes only its own ids") {
  for (DType dtype : {DType::Q4_0, DType::F16, DType::Q8_0}) {
    CAPTURE(dtype_name(dtype));
    const uint32_t vocab = 300, dim = 64, tokens = 50, part_rows = 128;  // parts of 128, 128, 44 rows
    const test::EncodedMatrix table = test::random_matrix(dtype, vocab, dim, 9);
    const std::vector<uint32_t> ids = token_ids(tokens, vocab, 4);
    Arena arena(ctx, "embed-test", MemoryUse::Device, 4 << 20);
    SplitBuffer split;
    split.size = table.row_size() * vocab;
    split.part_bytes = table.row_size() * part_rows;
    for (size_t done = 0; done < split.size; done += split.part_bytes) {
      const size_t n = std::min<size_t>(split.part_bytes, split.size - done);
      split.parts.push_back(arena.allocate(n));
      upload(ctx, split.parts.back(), std::span<const uint8_t>(table.bytes.data() + done, n));
    }
    const BufferRange idb = test::upload_vector(ctx, arena, ids);
    const BufferRange out = test::upload_vector(ctx, arena, std::vector<float>(size_t{tokens} * dim, -7.0f));

    // One part alone: only the tokens whose ids fall in [128, 256) change.
    CommandBuffer cmd(ctx);
    cmd.begin();
    record_embed(cmd, dtype, split.parts[1], idb, out, abi::EmbedPush{tokens, dim, part_rows, part_rows});
    cmd.submit_and_wait();
    std::vector<float> got = test::download_vector<float>(ctx, out);
    std::vector<float> row(dim);
    for (uint32_t t = 0; t < tokens; ++t) {
      CAPTURE(t);
      const bool inside = ids[t] >= part_rows && ids[t] < 2 * part_rows;
      if (inside) {
        dequantize_row(dtype, table.bytes.data() + ids[t] * table.row_size(), row.data(), dim);
        CHECK(std::memcmp(row.data(), got.data() + size_t{t} * dim, dim * 4) == 0);
      } else {
        CHECK(std::vector<float>(got.begin() + t * dim, got.begin() + (t + 1) * dim) == std::vector<float>(dim, -7.0f));
      }
    }
    // All parts: every row.
    cmd.begin();
    record_embed(cmd, dtype, split, dim, idb, out, tokens);
    cmd.submit_and_wait();
    check_rows_exact(test::download_vector<float>(ctx, out), table, ids);
  }
}

TEST_CASE_FIXTURE(test::GpuTest, "embed launcher checks its ranges") {
  Arena arena(ctx, "embed-test", MemoryUse::Device, 1 << 20);
  const BufferRange table = arena.allocate(18 * 2 * 10), ids = arena.allocate(4 * 4), out = arena.allocate(4 * 64 * 4);
  CommandBuffer cmd(ctx);
  cmd.begin();
  CHECK_THROWS_WITH_AS(record_embed(cmd, DType::Q4_0, table, ids, out, abi::EmbedPush{4, 64, 0, 11}),
                       doctest::Contains("table binding"), Error);
  CHECK_THROWS_WITH_AS(record_embed(cmd, DType::Q4_0, table, ids, out, abi::EmbedPush{5, 64, 0, 10}),
                       doctest::Contains("ids binding"), Error);
  CHECK_THROWS_WITH_AS(record_embed(cmd, DType::Q4_0, table, ids, out, abi::EmbedPush{4, 48, 0, 10}),
                       doctest::Contains("multiple of 32"), Error);
  cmd.submit_and_wait();  // nothing was recorded
}
