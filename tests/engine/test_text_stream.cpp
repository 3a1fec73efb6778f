// Utf8Stream: text is released only on character boundaries, whatever the token split.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "runtime/engine/text_stream.h"

using megrez::Utf8Stream;

TEST_CASE("Utf8Stream holds back incomplete characters and releases them when complete") {
  const std::string text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";  // a é € 😀 z
  // Every split of the text into single bytes: the output only ever ends on a boundary.
  Utf8Stream s;
  std::string out;
  std::vector<size_t> cuts;
  for (char c : text) {
    out += s.push(std::string(1, c));
    cuts.push_back(out.size());
  }
  out += s.flush();
  CHECK(out == text);
  CHECK(cuts == std::vector<size_t>{1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 11});
}

TEST_CASE("Utf8Stream passes through bytes that can never complete, and flushes a cut-off tail") {
  Utf8Stream s;
  CHECK(s.push("\x80x") == "\x80x");   // stray continuation byte
  CHECK(s.push("\xFFy") == "\xFFy");   // invalid lead byte
  CHECK(s.push("ok\xE2\x82") == "ok");  // € missing its last byte
  CHECK(s.flush() == "\xE2\x82");
  CHECK(s.flush().empty());
}
