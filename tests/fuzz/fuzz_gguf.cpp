// libFuzzer target: arbitrary bytes as a GGUF file, then (when that parses) as a whole Megrez
// model, touching every tensor view. Anything but megrez::Error escaping is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include "fuzz_common.h"
#include "loader/error.h"
#include "loader/formats/gguf.h"
#include "loader/formats/model_impl.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  try {
    const megrez::GgufContents g = megrez::parse_gguf(bytes, "fuzz.gguf");
    for (const megrez::GgufTensorInfo& t : g.tensors) fuzz::touch(t.view());
  } catch (const megrez::Error&) {
    return 0;
  }
  try {
    const auto model = megrez::open_gguf_bytes(bytes, "fuzz.gguf");
    const megrez::ModelWeights& w = model->weights();
    fuzz::touch(w.token_embd);
    fuzz::touch(w.output);
    for (const megrez::LayerWeights& l : w.layers)
      for (const megrez::TensorView* t :
           {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.ffn_gate, &l.ffn_up, &l.ffn_down, &l.router,
            &l.router_bias, &l.shexp_gate, &l.shexp_up, &l.shexp_down})
        fuzz::touch(*t);
    for (const auto& pool : w.pools)
      for (const megrez::ExpertWeights& e : pool) {
        fuzz::touch(e.gate);
        fuzz::touch(e.up);
        fuzz::touch(e.down);
      }
    if (const megrez::Tokenizer* tok = model->tokenizer()) tok->decode(tok->encode("fuzz the model <|eos|>"));
  } catch (const megrez::Error&) {}
  return 0;
}
