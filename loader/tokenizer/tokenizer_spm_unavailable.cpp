// Stands in for tokenizer_spm.cpp in builds without libsentencepiece (MEGREZ_WITH_SENTENCEPIECE
// off, the Android default): a SentencePiece model is refused with a message saying so, and
// BPE tokenizers (tokenizer.json, GGUF "gpt2") work as everywhere.
#include "loader/error.h"
#include "loader/tokenizer/tokenizer_internal.h"

namespace megrez::detail {

namespace {
[[noreturn]] void unavailable() {
  throw Error("this build of megrez has no SentencePiece support (built with MEGREZ_WITH_SENTENCEPIECE=OFF, "
              "as on Android): a tokenizer.model or GGUF \"llama\" vocabulary cannot be used; "
              "convert the tokenizer to tokenizer.json",
              ErrorKind::Model);
}
}  // namespace

std::unique_ptr<Tokenizer> make_spm_tokenizer(TokenizerData) { unavailable(); }

}  // namespace megrez::detail

namespace megrez {

std::unique_ptr<Tokenizer> Tokenizer::from_sentencepiece(std::string_view) { detail::unavailable(); }

}  // namespace megrez
