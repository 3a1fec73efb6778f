// The SentencePiece encoder of builds with libsentencepiece (MEGREZ_WITH_SENTENCEPIECE=ON),
// and Tokenizer::from_sentencepiece reading the vocabulary through it.
//
// libsentencepiece matches USER_DEFINED pieces anywhere and adds the dummy-prefix space to
// every text it is given; variants of the model (spm_proto.h) turn both off where needed:
// text after a special token gets no dummy prefix, plain text gets the user-defined pieces
// made UNUSED.
#include <sentencepiece_processor.h>

#include <algorithm>

#include "loader/error.h"
#include "loader/tokenizer/spm_encoder.h"
#include "loader/tokenizer/tokenizer_internal.h"

namespace megrez::detail {
namespace {

constexpr const char* kSource = "SentencePiece tokenizer";
constexpr int32_t kUserDefined = 4;

using Processor = sentencepiece::SentencePieceProcessor;

std::unique_ptr<Processor> load_processor(std::string_view bytes) {
  auto sp = std::make_unique<Processor>();
  auto status = sp->LoadFromSerializedProto(bytes);
  if (!status.ok()) throw Error(std::string(kSource) + ": cannot load the model: " + status.ToString());
  return sp;
}

class LibSpmEncoder final : public SpmEncoder {
 public:
  LibSpmEncoder(std::string_view serialized, const spm_proto::Model& proto) {
    sp_ = load_processor(serialized);
    if (size_t(sp_->GetPieceSize()) != proto.pieces.size()) {
      throw Error(std::string(kSource) + ": model has " + std::to_string(sp_->GetPieceSize()) + " pieces but " +
                  std::to_string(proto.pieces.size()) + " are stored");
    }
    const bool user_defined = std::any_of(proto.pieces.begin(), proto.pieces.end(),
                                          [](const spm_proto::Piece& p) { return p.type == kUserDefined; });
    if (proto.add_dummy_prefix) no_prefix_ = load_processor(spm_proto::without_dummy_prefix(serialized));
    if (user_defined) plain_ = load_processor(spm_proto::with_user_defined_unused(serialized));
    if (user_defined && proto.add_dummy_prefix) {
      plain_no_prefix_ = load_processor(spm_proto::with_user_defined_unused(spm_proto::without_dummy_prefix(serialized)));
    }
  }

  void encode(std::string_view text, bool starts_input, bool plain, std::vector<int32_t>& ids) const override {
    if (text.empty()) return;
    const Processor* sp = starts_input || !no_prefix_ ? sp_.get() : no_prefix_.get();
    if (plain && plain_) sp = starts_input || !plain_no_prefix_ ? plain_.get() : plain_no_prefix_.get();
    std::vector<int> piece_ids;
    auto status = sp->Encode(text, &piece_ids);
    if (!status.ok()) throw Error(std::string(kSource) + ": encoding failed: " + status.ToString());
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }

 private:
  std::unique_ptr<Processor> sp_;
  std::unique_ptr<Processor> no_prefix_;        // null: no dummy prefix
  std::unique_ptr<Processor> plain_;            // null: no user-defined pieces
  std::unique_ptr<Processor> plain_no_prefix_;  // both of the above
};

}  // namespace

std::unique_ptr<SpmEncoder> make_spm_encoder(std::string_view serialized, const spm_proto::Model& proto) {
  return std::make_unique<LibSpmEncoder>(serialized, proto);
}

}  // namespace megrez::detail

namespace megrez {

std::unique_ptr<Tokenizer> Tokenizer::from_sentencepiece(std::string_view serialized_model) {
  auto sp = detail::load_processor(serialized_model);
  spm_proto::Model proto = spm_proto::parse(serialized_model);
  TokenizerData data;
  data.model = "llama";
  data.spm_model = std::string(serialized_model);
  for (int i = 0; i < sp->GetPieceSize(); ++i) {
    data.tokens.push_back(sp->IdToPiece(i));
    data.scores.push_back(sp->GetScore(i));
    data.token_types.push_back(size_t(i) < proto.pieces.size() ? proto.pieces[i].type : 0);
  }
  data.bos_id = sp->bos_id();
  data.unk_id = sp->unk_id();
  data.pad_id = sp->pad_id();
  // Megrez ends a text with "<|eos|>" whichever id the model made its eos.
  int eos_piece = sp->PieceToId("<|eos|>");
  bool has_eos_piece = eos_piece != sp->unk_id() || sp->IdToPiece(eos_piece) == "<|eos|>";
  data.eos_id = has_eos_piece ? eos_piece : sp->eos_id();
  return detail::make_spm_tokenizer(std::move(data));
}

}  // namespace megrez
