#pragma once
// Random-weight models for the benchmark, at sizes loader/synthetic/synthetic.h cannot build: the
// real Megrez2-3x7B-A3B shape has 7.5B weights (30 GB as f32 values), so its tensors are
// not generated one by one. Instead one block of random rows is encoded once per stored
// type ("the pool", a little larger than the largest matrix) and every matrix is a window
// into it at its own pseudo-random offset, so the file is written as fast as the disk takes
// it. Matrices therefore share values (a different window each); routers, norms and router
// biases get their own values so routing still spreads tokens over the experts. Speed does
// not depend on the values, only on the shapes and the stored type; the same name, type and
// seed always give the same file.
//
// Shapes (benchmark names):
//   megrez2       the released model's config: hidden 2048, 31 layers, 16 heads / 4 kv,
//                 intermediate 10944, moe_intermediate 1408, 64 experts top-6, 4 shared,
//                 pools of 3 layers, vocab 128880, context 32K (7.5B weights; q4_0 ~4.2 GB)
//   megrez2-half  hidden 1536, 16 layers (1 dense + 5 pools of 3), 12 heads / 4 kv (head
//                 dim 128), intermediate 8192, moe_intermediate 1024, 64 experts top-6,
//                 4 shared, vocab 128880 (2.3B weights; q4_0 ~1.3 GB: fits a 2 GiB heap)
//   tiny          the bundled models/megrez2-tiny shape: hidden 256, 7 layers, 8 heads /
//                 2 kv, intermediate 640, moe_intermediate 128, 16 experts top-4, 2 shared,
//                 groups 4/2, vocab 4096 (12M weights)
#include <cstdint>
#include <string>
#include <vector>

#include "loader/formats/config.h"
#include "loader/tensor.h"

namespace megrez {

// Config of a benchmark shape; megrez::Error naming the known ones for anything else.
ModelConfig bench_model_config(const std::string& name);
std::vector<std::string> bench_model_names();

struct BenchModelSummary {
  uint64_t weights = 0;     // stored values
  uint64_t file_bytes = 0;  // the GGUF file
};

// Writes the model as a GGUF file (matrices in `matrix_type`, routers/norms/biases f32,
// the synthetic byte-level tokenizer embedded).
BenchModelSummary write_bench_gguf(const std::string& path, const ModelConfig& config, DType matrix_type,
                                   uint64_t seed);

}  // namespace megrez
