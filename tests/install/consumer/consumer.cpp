// consumer-cxx MODEL_DIR: the same 12 greedy tokens through the C++ engine API; a bad path
// must arrive as a megrez::Error (typeinfo across the shared library).
#include <cstdio>

#include "loader/error.h"
#include "runtime/engine/engine.h"
#include "runtime/engine/generate.h"

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  try {
    megrez::Engine::load("/no/such/model");
    return 1;
  } catch (const megrez::Error& e) {
    if (e.kind() != megrez::ErrorKind::Model) return 1;
  }
  try {
    megrez::EngineOptions options;
    options.ctx_len = 128;
    options.pipeline_cache = "off";
    auto engine = megrez::Engine::load(argv[1], options);
    std::vector<int32_t> cached;
    const std::vector<int32_t> prompt = engine->tokenize("In the beginning", false);
    megrez::TextOptions text;
    text.max_tokens = 12;
    text.on_text = [](std::string_view piece) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      return true;
    };
    megrez::complete_text(*engine, cached, prompt, text);
    std::printf("\n");
  } catch (const megrez::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
