#pragma once
// Streaming generated text without splitting a UTF-8 character: a byte-level tokenizer may end
// a token in the middle of a multi-byte character (one emoji is often 2-4 tokens), and a
// terminal shows garbage if half a character is written. Front ends push each token's bytes
// and write what comes back.
#include <string>
#include <string_view>

namespace megrez {

class Utf8Stream {
 public:
  // Appends `bytes`; returns the pending text up to the last complete character. Bytes that
  // can never complete (a stray continuation byte, an invalid lead byte) are passed through.
  std::string push(std::string_view bytes);
  // Everything still pending (an incomplete character when generation stopped), as is.
  std::string flush();

 private:
  std::string pending_;
};

}  // namespace megrez
