#pragma once
// Random-weight Megrez2 checkpoints for tests: any ModelConfig, any seed, written as a Hugging
// Face directory (config.json + safetensors, optionally sharded, optionally with a tiny
// byte-level BPE tokenizer) or straight into a GGUF file of a chosen type. The same config
// and seed give the same values in every form, so an HF directory and a GGUF written
// directly agree tensor for tensor (after the GGUF type's rounding).
//
// Values are deterministic on every platform (own PRNG, no <random> distributions):
// matrices uniform with standard deviation 1/sqrt(in) so activations keep unit scale,
// the embedding with standard deviation 1, norms 1 + 0.1*u, router biases 0.05*u.
#include <cstdint>
#include <string>
#include <vector>

#include "loader/formats/config.h"
#include "loader/tensor.h"
#include "loader/tokenizer/tokenizer.h"

namespace megrez {

struct SyntheticOptions {
  uint64_t seed = 1;
  DType dtype = DType::F32;  // safetensors storage: F32, BF16 or F16
  int shards = 1;            // > 1: model-0000k-of-0000n.safetensors + model.safetensors.index.json
  bool tokenizer = false;    // also write tokenizer.json + tokenizer_config.json (synthetic_bpe_*)
};

// A small valid config (2 dense-then-MoE pools, GQA, group routing) that tests vary.
ModelConfig synthetic_config();

// config.json text carrying every key of `cfg`.
std::string hf_config_json(const ModelConfig& cfg);

// One tensor's values: HF name, HF shape, f32 values.
struct SyntheticTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};
// Every tensor of the checkpoint, in weight_slots() order, with the values described above.
std::vector<SyntheticTensor> synthetic_tensors(const ModelConfig& cfg, uint64_t seed);

// Writes config.json, the safetensors and (optionally) the tokenizer into `dir`, creating it.
void write_synthetic_hf(const std::string& dir, const ModelConfig& cfg, const SyntheticOptions& options = {});

// Writes the same model directly as GGUF with matrices in `matrix_type` (see gguf_export.h),
// embedding the synthetic tokenizer when options.tokenizer is set. Values are first rounded
// to options.dtype, so the file is byte-identical to converting the HF directory that
// write_synthetic_hf() writes with the same options (options.shards does not matter).
void write_synthetic_gguf(const std::string& path, const ModelConfig& cfg, DType matrix_type,
                          const SyntheticOptions& options = {});

// The tiny byte-level BPE tokenizer: 256 byte tokens, a few merges, then the Megrez special
// tokens <|eos|> <|unk|> <|pad|> <|role_start|> <|role_end|> <|turn_end|>.
std::string synthetic_bpe_tokenizer_json();
std::string synthetic_bpe_tokenizer_config_json();  // eos/pad/unk and the Megrez chat template
int32_t synthetic_bpe_vocab_size();                 // the config's vocab_size must be >= this

}  // namespace megrez
