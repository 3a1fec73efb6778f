#pragma once
// How a SentencePiece model turns text into piece ids. tokenizer_spm.cpp does the rest
// (special tokens, decoding); the encoding comes from libsentencepiece where the build has it
// (spm_encoder_lib.cpp), else from the native BPE encoder (spm_bpe.cpp: model_type BPE with
// identity normalisation, the bundled tiny model's kind), e.g. on Android.
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "loader/tokenizer/spm_proto.h"

namespace megrez::detail {

class SpmEncoder {
 public:
  virtual ~SpmEncoder() = default;
  // Appends the ids of `text`. starts_input: the text begins the input (the dummy-prefix space
  // applies); plain: user-defined pieces ("<|turn_end|>") are ordinary text, not matched.
  virtual void encode(std::string_view text, bool starts_input, bool plain, std::vector<int32_t>& ids) const = 0;
};

// The build's encoder for `serialized` (parsed as `proto`). Throws megrez::Error.
std::unique_ptr<SpmEncoder> make_spm_encoder(std::string_view serialized, const spm_proto::Model& proto);

// The native BPE encoder; throws megrez::Error naming what it does not support (a unigram
// model, a normalisation rule other than identity).
std::unique_ptr<SpmEncoder> make_native_spm_encoder(const spm_proto::Model& proto);

}  // namespace megrez::detail
