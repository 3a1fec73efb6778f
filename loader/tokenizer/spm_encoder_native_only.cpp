// The SentencePiece side of builds without libsentencepiece (MEGREZ_WITH_SENTENCEPIECE=OFF, the
// Android default): the native BPE encoder (spm_bpe.cpp), and the vocabulary read from the
// model's protobuf directly. A unigram model is refused with a message saying so.
#include <algorithm>

#include "loader/error.h"
#include "loader/tokenizer/spm_encoder.h"
#include "loader/tokenizer/tokenizer_internal.h"

namespace megrez::detail {

std::unique_ptr<SpmEncoder> make_spm_encoder(std::string_view, const spm_proto::Model& proto) {
  return make_native_spm_encoder(proto);
}

}  // namespace megrez::detail

namespace megrez {

std::unique_ptr<Tokenizer> Tokenizer::from_sentencepiece(std::string_view serialized_model) {
  const spm_proto::Model proto = spm_proto::parse(serialized_model);
  TokenizerData data;
  data.model = "llama";
  data.spm_model = std::string(serialized_model);
  const auto id_in_vocab = [&](int32_t id) { return id >= 0 && size_t(id) < proto.pieces.size() ? id : -1; };
  for (const spm_proto::Piece& p : proto.pieces) {
    data.tokens.push_back(p.piece);
    data.scores.push_back(p.score);
    data.token_types.push_back(p.type);
  }
  data.bos_id = id_in_vocab(proto.bos_id);
  data.unk_id = id_in_vocab(proto.unk_id);
  data.pad_id = id_in_vocab(proto.pad_id);
  // Megrez ends a text with "<|eos|>" whichever id the model made its eos.
  const auto eos = std::find_if(proto.pieces.begin(), proto.pieces.end(),
                                [](const spm_proto::Piece& p) { return p.piece == "<|eos|>"; });
  data.eos_id = eos != proto.pieces.end() ? int32_t(eos - proto.pieces.begin()) : id_in_vocab(proto.eos_id);
  return detail::make_spm_tokenizer(std::move(data));
}

}  // namespace megrez
