#pragma once
// The few parts of SentencePiece's ModelProto that libsentencepiece's public API does not
// expose, read straight from the protobuf wire format:
//   ModelProto      1: repeated SentencePiece pieces, 3: NormalizerSpec normalizer_spec
//   SentencePiece   1: string piece, 2: float score, 3: Type type (default NORMAL = 1)
//   NormalizerSpec  3: bool add_dummy_prefix (default true),
//                   4: bool remove_extra_whitespaces (default true)
//   and the fields Model lists below, for the native BPE encoder (spm_bpe.cpp).
// Piece types use the numbering of GGUF's token types (1 normal ... 6 byte).
// The input is untrusted: every length is checked against the bytes that remain.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace megrez::spm_proto {

struct Piece {
  std::string piece;
  float score = 0.0f;
  int32_t type = 1;
};

struct Model {
  std::vector<Piece> pieces;
  // TrainerSpec (ModelProto field 2): 3 model_type (1 unigram, 2 BPE, 3 word, 4 char),
  // 35 byte_fallback, 40-43 unk/bos/eos/pad ids (-1: none).
  int32_t model_type = 1;
  bool byte_fallback = false;
  int32_t unk_id = 0, bos_id = 1, eos_id = 2, pad_id = -1;
  // NormalizerSpec (field 3): 1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
  // 4 remove_extra_whitespaces, 5 escape_whitespaces.
  std::string normalizer_name;
  bool has_precompiled_charsmap = false;
  bool add_dummy_prefix = true;
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// Throws megrez::Error on malformed wire data.
Model parse(std::string_view serialized);

// The same model with normalizer_spec.add_dummy_prefix = false, for encoding text that does
// not start the input (it follows a special token).
std::string without_dummy_prefix(std::string_view serialized);

// The same model with every USER_DEFINED piece made UNUSED, which SentencePiece never emits:
// encoding with it treats "<|turn_end|>" and friends as plain text.
std::string with_user_defined_unused(std::string_view serialized);

}  // namespace megrez::spm_proto
