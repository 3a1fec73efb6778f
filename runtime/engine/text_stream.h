#pragma once
// Streaming generated text without splitting a UTF-8 character: a byte-level tokenizer may end
// a token in the middle of a multi-byte character (one emoji is often 2-4 tokens), and a
// terminal shows garbage if half a character is written. Front ends push each token's bytes
// and write what comes back.
#include <string>
#include <string_view>
#include <vector>

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

// Stop sequences on streamed text: holds back the tail that could still begin one, so no part
// of a stop sequence is ever shown, and reports when one completes. Work per push is bounded
// by the sequences' total length, whatever the text.
class StopSequences {
 public:
  explicit StopSequences(std::vector<std::string> stops);  // empty strings are ignored

  // Appends `text`; returns what may be shown now. After a match, the text before the
  // sequence is returned, matched() is true and everything else is dropped.
  std::string push(std::string_view text);
  std::string flush();  // the held-back tail when generation ends without a match
  bool matched() const { return matched_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool matched_ = false;
};

}  // namespace megrez
